"""A fault in the middle of a run (an exception that is no probe's answer: a bug, the broker, the
log's store) ends the run as a crash would: nothing more is started, every logged intent gets an
outcome, the run is ``paused (crash)`` and resumable, and whoever started it hears why. Before,
the lane's exception was swallowed: the run was sealed with an intent that had no outcome, or hung
on a concurrency slot that was never given back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from orchestrator.errors import FailureError
from orchestrator.gate.decide import Gate
from orchestrator.ledger.verify import verify_run
from orchestrator.run.executors import FakeExecutor
from orchestrator.run.runs import get_run
from orchestrator.run.state import PauseReason, RunState
from probes.base import Permit, ProbeResult

from .conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)

# A hang guard, not a speed claim: before the fix these runs never ended.
_HANG = 120.0


def _run_over_six_hosts(home: Home, *, concurrency: int = 16) -> str:
    network = unique_network().rsplit("/", 1)[0] + "/29"
    now = now_utc()
    notice = announce_notice(
        home,
        scope_bytes(network, [around(now)]),
        policy_bytes(None, http_port=9, rates=(4, 60, 60, 80), concurrency=concurrency),
        at=now - timedelta(minutes=1),
    )
    return new_run(home, notice)


def _pairs(home: Home, run_id: str) -> tuple[list[int], dict[int, str]]:
    leaves = leaves_of(home.rio, run_id)
    intents = [leaf.seq for leaf in leaves if leaf.kind == "intent"]
    outcomes = {
        int(leaf.data["intent"]): str(leaf.data["outcome"])
        for leaf in leaves
        if leaf.kind == "outcome"
    }
    return intents, outcomes


def _ok(permit: Permit) -> ProbeResult:
    return ProbeResult(probe=permit.probe, ip=permit.ip, outcome="ok", connections=1)


async def test_a_probe_that_raises_pauses_the_run_as_a_crash_and_resume_finishes_it(
    home: Home,
) -> None:
    run_id = _run_over_six_hosts(home)
    faulty: list[str] = []

    def answer(permit: Permit) -> ProbeResult:
        if not faulty:
            faulty.append(permit.ip)
            raise RuntimeError("a bug in a probe")
        return _ok(permit)

    with pytest.raises(FailureError, match=r"stopped by a fault \(RuntimeError: a bug in a probe"):
        await asyncio.wait_for(
            make_runner(home, run_id, executor=FakeExecutor(answer)).execute(), _HANG
        )

    with home.rio.db.session() as s:
        row = get_run(s, run_id)
        assert (row.state, row.pause_reason) == (RunState.PAUSED.value, PauseReason.CRASH.value)
    intents, outcomes = _pairs(home, run_id)
    assert intents and set(intents) == set(outcomes)  # no intent left without an outcome
    assert "unknown" in outcomes.values()  # the faulted probe: maybe sent, never sent again
    assert verify_run(home.rio, run_id)

    again = FakeExecutor(_ok)
    state = await asyncio.wait_for(make_runner(home, run_id, executor=again).execute(), _HANG)
    assert state is RunState.SEALED
    assert faulty[0] not in {sent.permit.ip for sent in again.sent}
    intents, outcomes = _pairs(home, run_id)
    assert set(intents) == set(outcomes)
    assert verify_run(home.rio, run_id)


async def test_a_fault_while_admitting_gives_its_concurrency_slot_back(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One slot: had the faulted admission kept it, the next target's lane would wait forever.
    run_id = _run_over_six_hosts(home, concurrency=1)
    admit = Gate.admit
    calls: list[int] = []

    async def failing_once(self: Gate, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("budget store answered nonsense")
        return await admit(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Gate, "admit", failing_once)
    with pytest.raises(FailureError, match="budget store answered nonsense"):
        await asyncio.wait_for(
            make_runner(home, run_id, executor=FakeExecutor(_ok)).execute(), _HANG
        )
    intents, outcomes = _pairs(home, run_id)
    assert set(intents) == set(outcomes)
    assert verify_run(home.rio, run_id)
