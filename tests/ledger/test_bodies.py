"""Typed leaf bodies: the bytes of every leaf they build are the bytes the dict literals made."""

from __future__ import annotations

import re
import tarfile
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import UNSET

from orchestrator.audit._leafchecks import OUTCOMES
from orchestrator.gate.decide import CHECKS
from orchestrator.gate.health import HealthChange
from orchestrator.ledger.bodies import (
    BodyError,
    Check,
    HealthBody,
    IntentBody,
    KillBody,
    NotSent,
    Outcome,
    OutcomeBody,
    RefusalBody,
    StateBody,
    unknown_outcome,
)
from orchestrator.ledger.leaves import make_leaf, parse_leaf
from orchestrator.run.state import RunState
from tests.record.golden_archive import GOLDEN

AT = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
_text = st.text(max_size=40)


def _leaf(kind: str, data: dict[str, Any]) -> bytes:
    return make_leaf("R-20300102-abcdef", 7, kind, AT, data)


@given(st.sampled_from(list(RunState)), st.none() | _text)
def test_a_state_body_makes_the_bytes_of_the_old_literal(
    state: RunState, reason: str | None
) -> None:
    body = StateBody(state=state.value, reason=reason)
    assert _leaf("state", body.to_json()) == _leaf(
        "state", {"state": state.value, "reason": reason}
    )
    assert StateBody.from_json(body.to_json()) == body


@given(_text, _text)
def test_a_kill_body_makes_the_bytes_of_the_old_literal(by: str, reason: str) -> None:
    body = KillBody(by=by, reason=reason)
    assert _leaf("kill", body.to_json()) == _leaf("kill", {"by": by, "reason": reason})
    assert KillBody.from_json(body.to_json()) == body


def test_the_unknown_outcome_of_a_crash_is_the_leaf_it_always_was() -> None:
    old = {
        "intent": 3,
        "outcome": "unknown",
        "elapsed_us": None,
        "connections": None,
        "evidence_digest": None,
        "findings": [],
    }
    assert _leaf("outcome", unknown_outcome(3)) == _leaf("outcome", old)


@pytest.mark.parametrize(
    "value", ["ok", "timeout", "unreachable", "error", "refused", "killed", "unknown", "unsent"]
)
def test_outcome_values_are_the_strings_archives_hold(value: str) -> None:
    assert Outcome(value) == value and value in OUTCOMES
    assert _leaf("outcome", {"outcome": Outcome(value)}) == _leaf("outcome", {"outcome": value})
    assert len(OUTCOMES) == len(Outcome)


# -- intent, refusal, outcome, health: the literals the gate and the runner used to build -------

_ip = st.from_regex(r"127\.0\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True)
_resolution = st.none() | st.fixed_dictionaries(
    {
        "name": _text,
        "addresses": st.lists(_ip, max_size=3),
        "cname_chain": st.lists(_text, max_size=2),
        "nameserver": _ip,
        "answered_at": st.just("2030-01-02T03:04:05.000000Z"),
    }
)
_int = st.integers(min_value=-1, max_value=2**31)


@given(
    item=_int,
    ip=_ip,
    port=st.none() | st.integers(1, 65535),
    ports=st.lists(st.integers(1, 65535), max_size=4),
    server_name=st.none() | _text,
    cost=st.integers(1, 64),
    max_rate=st.integers(1, 1000) | st.floats(0.5, 1000.0),
    resolution=_resolution,
)
def test_an_intent_body_makes_the_bytes_of_the_gates_old_literal(
    item: int,
    ip: str,
    port: int | None,
    ports: list[int],
    server_name: str | None,
    cost: int,
    max_rate: float,
    resolution: dict[str, Any] | None,
) -> None:
    old = {
        "item": item,
        "probe": "http",
        "target": f"cidr:{ip}/32",
        "ip": ip,
        "port": port,
        "ports": list(ports),
        "server_name": server_name,
        "cost": cost,
        "deadline": "2030-01-02T03:04:15.678901+00:00",
        "max_rate": max_rate,
        "resolution": resolution,
    }
    body = IntentBody(
        item=item,
        probe="http",
        target=f"cidr:{ip}/32",
        ip=ip,
        port=port,
        ports=tuple(ports),
        server_name=server_name,
        cost=cost,
        deadline="2030-01-02T03:04:15.678901+00:00",
        max_rate=max_rate,
        resolution=resolution,
    )
    assert _leaf("intent", body.to_json()) == _leaf("intent", old)
    assert IntentBody.from_json(old) == body


@given(check=st.sampled_from(list(Check)), reason=_text, sentence=_text, resolution=_resolution)
def test_a_refusal_body_makes_the_bytes_of_the_gates_old_literal(
    check: Check, reason: str, sentence: str, resolution: dict[str, Any] | None
) -> None:
    request = {"item": 3, "probe": "http", "target": "host:www.x.test", "host": "www.x.test"}
    old = {
        "request": request,
        "check": check.value,
        "reason": reason,
        "sentence": sentence,
        "at": "2030-01-02T03:04:05.678901+00:00",
        "resolution": resolution,
    }
    body = RefusalBody(
        request=request,
        check=check,
        reason=reason,
        sentence=sentence,
        at="2030-01-02T03:04:05.678901+00:00",
        resolution=resolution,
    )
    assert _leaf("refusal", body.to_json()) == _leaf("refusal", old)
    assert RefusalBody.from_json(old) == body


@given(
    outcome=st.sampled_from(list(Outcome)),
    elapsed_us=st.none() | st.integers(0, 10**9),
    digest=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    findings=st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), max_size=3),
    sent_at=st.none() | st.just("2030-01-02T03:04:05.678901000Z"),
    error=st.none() | _text,
    sends_us=st.none() | st.lists(st.integers(0, 10**7), min_size=1, max_size=4),
    not_sent=st.booleans(),
)
def test_an_outcome_body_makes_the_bytes_of_the_runners_old_literal(
    outcome: Outcome,
    elapsed_us: int | None,
    digest: str | None,
    findings: list[str],
    sent_at: str | None,
    error: str | None,
    sends_us: list[int] | None,
    not_sent: bool,
) -> None:
    old: dict[str, Any] = {
        "intent": 11,
        "outcome": outcome.value,
        "elapsed_us": elapsed_us,
        "connections": 1,
        "evidence_digest": digest,
        "findings": findings,
        "sent_at": sent_at,
        "error": error,
    }
    if sends_us is not None:
        old["sends_us"] = sends_us
    if not_sent:
        old["not_sent"] = {"check": "rate", "reason": "rate:per_ip", "sentence": "no budget"}
    body = OutcomeBody(
        intent=11,
        outcome=outcome,
        elapsed_us=elapsed_us,
        connections=1,
        evidence_digest=digest,
        findings=tuple(findings),
        sent_at=sent_at,
        error=error,
        sends_us=UNSET if sends_us is None else tuple(sends_us),
        not_sent=NotSent(check=Check.RATE, reason="rate:per_ip", sentence="no budget")
        if not_sent
        else UNSET,
    )
    assert _leaf("outcome", body.to_json()) == _leaf("outcome", old)
    assert OutcomeBody.from_json(old) == body
    assert OutcomeBody.from_json(old).to_json() == old


def test_an_outcome_of_rio_s_first_version_reads_and_writes_back_as_it_was() -> None:
    # Before elapsed_us, sent_at and error existed: float seconds, no send time, no error.
    old = {
        "intent": 4,
        "outcome": "ok",
        "elapsed": 0.1,
        "connections": 1,
        "evidence_digest": None,
        "findings": [],
    }
    body = OutcomeBody.from_json(old)
    assert body.sent_at is UNSET and body.error is UNSET and body.elapsed == 0.1
    assert body.to_json() == old


@given(
    state=st.sampled_from(["throttled", "paused", "recovered"]),
    factor=st.floats(0.01, 1.0),
    until=st.none() | st.floats(0.0, 1e7),
    reason=st.sampled_from(["http-429", "timeouts", "latency", "successes"]),
)
def test_a_health_body_makes_the_bytes_of_the_breakers_old_literal(
    state: str, factor: float, until: float | None, reason: str
) -> None:
    change = HealthChange(ip="127.0.0.9", state=state, factor=factor, until=until, reason=reason)
    old = {"ip": "127.0.0.9", "state": state, "factor": factor, "until": until, "reason": reason}
    assert _leaf("health", change.to_json()) == _leaf("health", old)
    assert HealthBody.from_json(old).to_json() == old


def test_gate_check_names_are_the_strings_archives_hold() -> None:
    assert CHECKS == (
        "request",
        "run",
        "notice",
        "entrusted",
        "window",
        "probe",
        "scope",
        "health",
        "rate",
    )
    assert tuple(Check) == CHECKS


@pytest.mark.parametrize(
    ("body", "data", "field"),
    [
        (IntentBody, {"item": "3"}, "$.item"),
        (OutcomeBody, {"intent": True, "outcome": "ok"}, "$.intent"),
        (OutcomeBody, {"intent": 3, "outcome": "fine"}, "$.outcome"),
        (RefusalBody, {"check": "moon"}, "$.check"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused_naming_the_field(
    body: type[IntentBody | OutcomeBody | RefusalBody], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(BodyError, match=re.escape(field) + "|missing required field"):
        body.from_json(data)


def test_every_leaf_of_the_golden_archive_reads_into_its_body_and_back() -> None:
    with tarfile.open(GOLDEN) as tar:
        handle = tar.extractfile("ledger/leaves.jsonl")
        assert handle is not None
        lines = handle.read().splitlines()
    kinds = {
        "state": StateBody,
        "intent": IntentBody,
        "refusal": RefusalBody,
        "outcome": OutcomeBody,
        "health": HealthBody,
        "kill": KillBody,
    }
    for raw in lines:
        leaf = parse_leaf(raw)
        body = kinds[leaf.kind].from_json(leaf.data)
        assert make_leaf(leaf.run, leaf.seq, leaf.kind, leaf.instant, body.to_json()) == raw
