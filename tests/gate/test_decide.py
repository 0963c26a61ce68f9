"""The gate's decision, rule by rule (Art. 16: announced, in window, in scope, in budget, healthy)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.clock import FakeClock
from orchestrator.gate.decide import ProbeRequest, Refusal
from orchestrator.intake.registry import Person, Role
from probes.base import Permit
from tests.gate.conftest import (
    T0,
    ListSink,
    RunStub,
    announced,
    make_gate,
    make_notice,
    policy_yaml,
    scope_yaml,
)
from tests.support.dns_server import StubDNSServer

LAB = scope_yaml("[{cidr: 127.0.40.0/24}, {host: www.lab.test}]", excludes="[{ip: 127.0.40.13}]")


def req(
    probe: str = "http",
    *,
    ip: str | None = "127.0.40.5",
    host: str | None = None,
    port: int | None = 80,
) -> ProbeRequest:
    return ProbeRequest(
        item=0,
        probe=probe,
        target="cidr:127.0.40.0/24",
        ip=ip,
        host=host,
        port=port,
        params={"scheme": "http"} if probe == "http" else {},
    )


async def test_permit_pins_the_requested_address_and_logs_the_intent_first() -> None:
    sink = ListSink()
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0), sink=sink
    )
    decision = await gate.decide(req())
    assert isinstance(decision, Permit)
    assert decision.ip == "127.0.40.5"
    assert sink.leaves[decision.decision][0] == "intent"
    assert sink.leaves[decision.decision][1]["ip"] == "127.0.40.5"


async def test_probe_refused_when_notice_announced_one_second_too_late_for_the_lead_time() -> None:
    notice = make_notice(
        LAB, policy_yaml(lead="1h"), announced_at=T0 - timedelta(hours=1) + timedelta(seconds=1)
    )
    decision = await make_gate(notice, clock=FakeClock(T0)).decide(req())
    assert isinstance(decision, Refusal)
    assert (decision.check, decision.reason) == ("notice", "lead-time")


async def test_probe_allowed_exactly_when_the_lead_time_is_met() -> None:
    notice = make_notice(LAB, policy_yaml(lead="1h"), announced_at=T0 - timedelta(hours=1))
    assert isinstance(await make_gate(notice, clock=FakeClock(T0)).decide(req()), Permit)


async def test_probe_refused_for_a_revoked_technician() -> None:
    revoked = Person(
        id=1,
        name="zhang",
        role=Role.TECHNICIAN,
        organisation="Acme",
        vendor="acme",
        revoked_at=T0 - timedelta(minutes=1),
    )
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)),
        clock=FakeClock(T0),
        person=revoked,
    )
    decision = await gate.decide(req())
    assert isinstance(decision, Refusal) and decision.reason == "revoked"


async def test_probe_refused_for_a_vendor_not_entrusted_by_this_notice() -> None:
    other = Person(
        id=2, name="wu", role=Role.TECHNICIAN, organisation="Other", vendor="other", revoked_at=None
    )
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)),
        clock=FakeClock(T0),
        person=other,
    )
    decision = await gate.decide(req())
    assert isinstance(decision, Refusal) and (decision.check, decision.reason) == (
        "entrusted",
        "not-entrusted",
    )


async def test_probe_refused_when_the_window_closes_during_its_timeout() -> None:
    # The announced window ends 5 s after now; the policy's probe timeout is 10 s.
    scope = scope_yaml(
        "[{cidr: 127.0.40.0/24}]", start="2026-12-07T09:00:00", end="2026-12-07T10:00:05"
    )
    gate = make_gate(
        make_notice(scope, policy_yaml(timeout="10s"), announced_at=announced(2)),
        clock=FakeClock(T0),
    )
    decision = await gate.decide(req())
    assert isinstance(decision, Refusal) and (decision.check, decision.reason) == (
        "window",
        "window-closing",
    )


async def test_probe_refused_outside_the_policy_window_even_inside_the_announced_one() -> None:
    nights = '[{days: [mon, tue, wed, thu, fri], start: "00:00", end: "06:00"}]'
    gate = make_gate(
        make_notice(LAB, policy_yaml(windows=nights), announced_at=announced(2)),
        clock=FakeClock(T0),
    )
    decision = await gate.decide(req())
    assert isinstance(decision, Refusal) and decision.reason == "outside-policy-window"


async def test_probe_refused_on_a_blackout_date() -> None:
    policy = policy_yaml(blackouts="[2026-12-07]")
    decision = await make_gate(
        make_notice(LAB, policy, announced_at=announced(2)), clock=FakeClock(T0)
    ).decide(req())
    assert isinstance(decision, Refusal) and decision.reason == "blackout"


async def test_intrusive_probe_refused_under_a_light_policy() -> None:
    policy = policy_yaml(probes="{dns: {}, dns-axfr: {}}")
    gate = make_gate(make_notice(LAB, policy, announced_at=announced(2)), clock=FakeClock(T0))
    decision = await gate.decide(req("dns-axfr", port=None))
    assert isinstance(decision, Refusal) and (decision.check, decision.reason) == (
        "probe",
        "too-disruptive",
    )


async def test_probe_not_in_the_policy_is_refused() -> None:
    policy = policy_yaml(probes="{port: {ports: [80]}}")
    decision = await make_gate(
        make_notice(LAB, policy, announced_at=announced(2)), clock=FakeClock(T0)
    ).decide(req("http"))
    assert isinstance(decision, Refusal) and decision.reason == "probe-not-allowed"


async def test_excluded_address_is_refused_even_inside_an_included_network() -> None:
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0)
    )
    decision = await gate.decide(req(ip="127.0.40.13"))
    assert isinstance(decision, Refusal) and decision.reason == "excluded"


@pytest.mark.parametrize(
    "address", ["192.0.2.1", "10.0.0.1", "169.254.169.254", "127.0.41.1", "::1"]
)
async def test_address_outside_the_scope_is_refused(address: str) -> None:
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0)
    )
    decision = await gate.decide(req(ip=address))
    assert isinstance(decision, Refusal) and decision.check == "scope"


async def test_ipv4_mapped_address_is_checked_as_its_ipv4_address() -> None:
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0)
    )
    refused = await gate.decide(req(ip="::ffff:127.0.40.13"))
    assert isinstance(refused, Refusal) and refused.reason == "excluded"


async def test_killed_run_gets_no_permit() -> None:
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)),
        clock=FakeClock(T0),
        run=RunStub(killed=True),
    )
    decision = await gate.decide(req())
    assert isinstance(decision, Refusal) and (decision.check, decision.reason) == ("run", "killed")


async def test_refusals_are_logged_too() -> None:
    sink = ListSink()
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0), sink=sink
    )
    decision = await gate.decide(req(ip="127.0.41.1"))
    assert isinstance(decision, Refusal)
    assert sink.leaves == [("refusal", decision.to_json())] and decision.decision == 0


async def test_probe_refused_when_hostname_has_one_answer_outside_the_scope() -> None:
    with StubDNSServer({"www.lab.test": [("A", "127.0.40.7"), ("A", "127.0.99.1")]}) as dns:
        from orchestrator.gate.resolve import Resolver

        gate = make_gate(
            make_notice(LAB, policy_yaml(), announced_at=announced(2)),
            clock=FakeClock(T0),
            resolver=Resolver([dns.host], port=dns.port),
        )
        decision = await gate.decide(req(ip=None, host="www.lab.test"))
    assert isinstance(decision, Refusal) and decision.check == "scope"
    assert "127.0.99.1" in decision.sentence
    assert decision.resolution is not None and decision.resolution.addresses == (
        "127.0.40.7",
        "127.0.99.1",
    )


async def test_rebinding_resolver_cannot_move_a_permit_outside_the_scope() -> None:
    # First answer in scope, second out of scope: the first permit is pinned to the in-scope
    # address (the probe connects there, never re-resolving); the second decision is refused.
    with StubDNSServer({}) as dns:
        dns.set_sequence("www.lab.test", [[("A", "127.0.40.9")], [("A", "127.0.99.9")]])
        from orchestrator.gate.resolve import Resolver

        gate = make_gate(
            make_notice(LAB, policy_yaml(), announced_at=announced(2)),
            clock=FakeClock(T0),
            resolver=Resolver([dns.host], port=dns.port),
        )
        first = await gate.decide(req(ip=None, host="www.lab.test"))
        second = await gate.decide(req(ip=None, host="www.lab.test"))
    assert (
        isinstance(first, Permit)
        and first.ip == "127.0.40.9"
        and first.server_name == "www.lab.test"
    )
    assert isinstance(second, Refusal) and second.check == "scope"


async def test_a_permit_cannot_be_altered_after_the_gate_issued_it() -> None:
    import dataclasses

    from probes.errors import PermitError

    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0)
    )
    permit = await gate.decide(req())
    assert isinstance(permit, Permit)
    with pytest.raises(PermitError):
        dataclasses.replace(permit, ip="127.0.99.1")


async def test_explain_reports_every_check_without_logging() -> None:
    sink = ListSink()
    gate = make_gate(
        make_notice(LAB, policy_yaml(lead="72h"), announced_at=announced(2)),
        clock=FakeClock(T0),
        sink=sink,
    )
    verdicts = await gate.explain(req(ip="127.0.40.13"))
    by_name = {v.check: v for v in verdicts}
    assert not by_name["notice"].ok and not by_name["scope"].ok and by_name["window"].ok
    assert sink.leaves == []


# Probes of one request each: a policy whose dns or tls probe cannot fit one second of its
# per-IP budget is refused when it is loaded.
_ONE_REQUEST_PROBES = "{port: {ports: [80, 443]}, http: {ports: [80], https_ports: [443]}}"


async def test_target_paused_while_a_probe_waits_for_budget_is_not_admitted() -> None:
    import asyncio

    gate = make_gate(
        make_notice(
            LAB, policy_yaml(per_ip=1, probes=_ONE_REQUEST_PROBES), announced_at=announced(2)
        ),
        clock=FakeClock(T0),
    )
    try:
        first, second = await gate.decide(req()), await gate.decide(req())
        assert isinstance(first, Permit) and isinstance(second, Permit)
        assert await gate.admit(first, cost=1)
        waiting = asyncio.create_task(gate.admit(second, cost=1))
        await asyncio.sleep(0.2)  # the second permit now waits for the per-IP budget
        gate.health.observe(
            "127.0.40.5", outcome="ok", latency=0.01, http_status=429, retry_after=60.0
        )
        admission = await waiting
    finally:
        await gate.budget.close()
    assert not admission and (admission.check, admission.reason) == ("health", "target-paused")


async def test_permit_is_admitted_with_its_send_instant_when_budget_frees() -> None:
    clock = FakeClock(T0)
    gate = make_gate(
        make_notice(
            LAB, policy_yaml(per_ip=1, probes=_ONE_REQUEST_PROBES), announced_at=announced(2)
        ),
        clock=clock,
    )
    try:
        permit = await gate.decide(req())
        assert isinstance(permit, Permit)
        admission = await gate.admit(permit, cost=1)
    finally:
        await gate.budget.close()
    assert admission and admission.at == T0 and admission.check is None


async def test_probe_whose_cost_never_fits_a_budget_is_refused_for_rate() -> None:
    gate = make_gate(
        make_notice(
            LAB, policy_yaml(per_ip=2, probes=_ONE_REQUEST_PROBES), announced_at=announced(2)
        ),
        clock=FakeClock(T0),
    )
    request = ProbeRequest(
        item=0, probe="http", target="cidr:127.0.40.0/24", ip="127.0.40.5", port=80, cost=3
    )
    decision = await gate.decide(request)
    assert isinstance(decision, Refusal)
    assert (decision.check, decision.reason) == ("rate", "rate:per_ip")


@pytest.mark.parametrize(
    ("probe", "port", "ports", "params", "why"),
    [
        ("port", None, (80, 22), {}, "ports [22]"),
        ("port", None, (80,), {"version_detection": True}, "version detection"),
        ("port", None, (80,), {"scripts": ["vuln"]}, "scripts"),
        ("http", 8080, (), {"scheme": "http"}, "port 8080"),
        ("http", 80, (), {"paths": ["/admin"]}, "paths"),
        ("http", 80, (), {"method": "POST"}, "method"),
        ("http", 80, (), {"timeout": 3600}, "timeout"),
        ("http", 80, (), {"follow_redirects": True}, "not part of the policy"),
        ("tls", 8443, (), {}, "port 8443"),
    ],
)
async def test_probe_refused_when_its_parameters_exceed_the_policy(
    probe: str, port: int | None, ports: tuple[int, ...], params: dict[str, object], why: str
) -> None:
    gate = make_gate(
        make_notice(LAB, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0)
    )
    request = ProbeRequest(
        item=0,
        probe=probe,
        target="cidr:127.0.40.0/24",
        ip="127.0.40.5",
        port=port,
        ports=ports,
        params=params,
    )
    decision = await gate.decide(request)
    assert isinstance(decision, Refusal)
    assert (decision.check, decision.reason) == (
        "probe",
        "params-not-allowed",
    ) and why in decision.sentence


async def test_announced_url_port_and_path_are_allowed_for_http() -> None:
    scope = scope_yaml("[{cidr: 127.0.40.0/24}, {url: 'http://127.0.40.5:8081/status'}]")
    gate = make_gate(
        make_notice(scope, policy_yaml(), announced_at=announced(2)), clock=FakeClock(T0)
    )
    request = ProbeRequest(
        item=0,
        probe="http",
        target="url:http://127.0.40.5:8081/status",
        ip="127.0.40.5",
        port=8081,
        params={"scheme": "http", "paths": ["/status"]},
    )
    assert isinstance(await gate.decide(request), Permit)
