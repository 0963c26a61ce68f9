"""Every answer of the gate is logged, malformed requests included; one name normalisation; CNAMEs.

The red team's 15,600 decisions: 13,335 never reached the log because a non-canonical address
made ``Gate.decide`` raise. An excluded name typed in another case, with a trailing dot or in
full-width letters passed its exclude, and so did a name whose CNAME chain runs through it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.clock import FakeClock
from orchestrator.gate.decide import CheckVerdict, ProbeRequest, Refusal
from orchestrator.gate.resolve import Resolver
from orchestrator.ledger.leaves import make_leaf, parse_leaf
from probes.base import Permit
from tests.gate.conftest import (
    T0,
    ListSink,
    announced,
    make_gate,
    make_notice,
    policy_yaml,
    scope_yaml,
)
from tests.support.dns_server import StubDNSServer

LAB = scope_yaml(
    "[{cidr: 127.0.40.0/24}, {host: www.lab.test}, {host: cname-to-admin.lab.test}]",
    excludes="[{host: admin.lab.test}]",
)
ZONE = {
    "admin.lab.test": [("A", "127.0.40.20")],
    "cname-to-admin.lab.test": [("CNAME", "alias.lab.test.")],
    "alias.lab.test": [("CNAME", "admin.lab.test.")],
    "www.lab.test": [("CNAME", "edge.lab.test.")],
    "edge.lab.test": [("A", "127.0.40.21")],
}


def _request(**fields: Any) -> ProbeRequest:
    base: dict[str, Any] = {
        "item": 0,
        "probe": "http",
        "target": "cidr:127.0.40.0/24",
        "ip": "127.0.40.5",
        "port": 80,
        "params": {"scheme": "http"},
    }
    return ProbeRequest(**(base | fields))


def _loggable(kind: str, body: dict[str, Any]) -> None:
    """The body makes a canonical leaf, as the probe log would write it."""
    parse_leaf(make_leaf("R-test", 0, kind, datetime(2026, 12, 7, tzinfo=UTC), body))


@pytest.mark.parametrize(
    "fields",
    [
        {"ip": "127.000.40.5"},
        {"ip": "0x7f.0.40.5"},
        {"ip": "2130706433"},
        {"ip": " 127.0.40.5"},
        {"ip": "fe80::1%eth0"},
        {"ip": 2130706433},
        {"ip": None, "host": "bad..name"},
        {"ip": None, "host": "127.0.40.5"},
        {"ip": None, "host": ""},
        {"port": 0},
        {"port": 70000},
        {"port": "80"},
        {"ports": (80, -1)},
        {"cost": 0},
        {"item": "first"},
        {"ip": "\udcff"},
    ],
    ids=repr,
)
async def test_malformed_request_is_a_logged_refusal_not_an_exception(
    fields: dict[str, Any],
) -> None:
    sink = ListSink()
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0), sink=sink
    )
    decision = await gate.decide(_request(**fields))
    assert isinstance(decision, Refusal)
    assert (decision.check, decision.reason) == ("request", "malformed"), decision
    assert [kind for kind, _ in sink.leaves] == ["refusal"] and decision.decision == 0
    _loggable(*sink.leaves[0])


_junk = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.sampled_from(["127.0.40.5", "::ffff:127.0.40.5", "127.0.40.013", "WWW.LAB.TEST."]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ip=_junk,
    host=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["ADMIN.lab.test."])),
    port=st.one_of(st.none(), st.integers(min_value=-5, max_value=70000), st.text(max_size=3)),
    cost=st.integers(min_value=-2, max_value=5),
)
async def test_every_answer_is_logged_exactly_once(
    ip: Any, host: Any, port: Any, cost: int
) -> None:
    sink = ListSink()
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0), sink=sink
    )
    gate.resolver = Resolver(["127.0.0.1"], port=9, timeout=0.2)  # loopback, nobody answers
    decision = await gate.decide(_request(ip=ip, host=host, port=port, cost=cost))
    assert isinstance(decision, Permit | Refusal)
    assert len(sink.leaves) == 1
    assert sink.leaves[0][0] == ("intent" if isinstance(decision, Permit) else "refusal")
    _loggable(*sink.leaves[0])


async def _decide_host(name: str) -> tuple[Permit | Refusal, ListSink, list[CheckVerdict]]:
    """Decide (and explain) an http probe of ``name`` against the stub zone."""
    sink = ListSink()
    with StubDNSServer(ZONE) as dns:
        gate = make_gate(
            make_notice(LAB, policy_yaml(), announced_at=announced(2)),
            clock=FakeClock(T0),
            resolver=Resolver([dns.host], port=dns.port),
            sink=sink,
        )
        decision = await gate.decide(_request(ip=None, host=name))
        explained = await gate.explain(_request(ip=None, host=name), at=T0)
    return decision, sink, explained


@pytest.mark.parametrize(
    "name",
    [
        "admin.lab.test",
        "ADMIN.lab.test",
        "admin.lab.test.",
        "Admin.LAB.Test.",
        "\uff41\uff44\uff4d\uff49\uff4e.lab.test",  # full-width letters,
    ],
)
async def test_excluded_name_is_refused_whatever_its_case_dot_or_width(name: str) -> None:
    decision, _, explained = await _decide_host(name)
    assert isinstance(decision, Refusal)
    assert (decision.check, decision.reason) == ("scope", "excluded"), decision
    assert decision.request.host == "admin.lab.test"
    scope = next(v for v in explained if v.check == "scope")
    assert not scope and scope.reason == "excluded", explained


async def test_name_whose_cname_chain_runs_through_an_excluded_name_is_refused() -> None:
    decision, sink, _ = await _decide_host("cname-to-admin.lab.test")
    assert isinstance(decision, Refusal)
    assert (decision.check, decision.reason) == ("scope", "excluded"), decision
    assert "admin.lab.test" in decision.sentence
    [(kind, body)] = sink.leaves
    assert kind == "refusal"
    assert body["resolution"]["cname_chain"] == ["alias.lab.test", "admin.lab.test"]


async def test_permit_through_a_cname_pins_the_address_and_logs_the_chain() -> None:
    decision, sink, _ = await _decide_host("WWW.lab.test.")
    assert isinstance(decision, Permit)
    assert decision.ip == "127.0.40.21" and decision.server_name == "www.lab.test"
    [(kind, body)] = sink.leaves
    assert kind == "intent"
    assert body["resolution"]["name"] == "www.lab.test"
    assert body["resolution"]["cname_chain"] == ["edge.lab.test"]
