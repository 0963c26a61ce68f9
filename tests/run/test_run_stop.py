"""Stopping a run from outside: the kill switch, and a technician revoked mid-run."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from orchestrator.demo.farm import Farm
from orchestrator.intake.registry import revoke_person
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runs import get_run, request_kill
from orchestrator.run.state import PauseReason, RunState

from .conftest import (
    TECHNICIAN,
    Home,
    SlowHttp,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    wait_for_intents,
)


async def _kill_a_slow_run(
    home: Home, slow_http: SlowHttp, reason: str, *, poll_seconds: float = 0.05
) -> tuple[str, RunState]:
    """Run over the slow server; once 4 probes are in flight, kill it from another session
    (as `rio run kill` does); the run id and the state the runner ended in."""
    now = now_utc()
    policy = policy_bytes(None, http_port=slow_http.port, concurrency=4)
    notice = announce_notice(
        home, scope_bytes(slow_http.network, [around(now)]), policy, at=now - timedelta(minutes=1)
    )
    run_id = new_run(home, notice)
    runner = make_runner(home, run_id, poll_seconds=poll_seconds)
    execution = asyncio.create_task(runner.execute())
    try:
        assert await wait_for_intents(home.rio, run_id, 4) >= 4
        officer = home.other()
        try:
            with officer.db.session() as s:
                request_kill(s, run_id, "officer-li", reason, now=home.rio.clock.now())
        finally:
            officer.close()
        return run_id, await asyncio.wait_for(execution, 30.0)
    finally:
        execution.cancel()


async def test_kill_switch_stops_run_and_cancels_probes_in_flight(
    home: Home, slow_http: SlowHttp
) -> None:
    run_id, state = await _kill_a_slow_run(home, slow_http, "target owner reports an outage")

    assert state is RunState.SEALED
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == RunState.SEALED.value
    leaves = leaves_of(home.rio, run_id)
    kills = [leaf for leaf in leaves if leaf.kind == "kill"]
    assert len(kills) == 1 and kills[0].data["by"] == "officer-li"
    kill_seq = kills[0].seq
    assert not [leaf for leaf in leaves if leaf.kind == "intent" and leaf.seq > kill_seq]
    states = [leaf.data["state"] for leaf in leaves if leaf.kind == "state" and leaf.seq > kill_seq]
    assert states == ["aborted", "sealed"]
    outcome_of = {leaf.data["intent"]: leaf for leaf in leaves if leaf.kind == "outcome"}
    intents = [leaf for leaf in leaves if leaf.kind == "intent"]
    assert all(i.seq in outcome_of for i in intents)
    in_flight = [i for i in intents if outcome_of[i.seq].seq > kill_seq]
    assert in_flight, "the slow probes should have been in flight at the kill"
    assert {outcome_of[i.seq].data["outcome"] for i in in_flight} == {"killed"}
    assert len(intents) < 14
    verdict = verify_run(home.rio, run_id)
    assert verdict, verdict.problems


async def test_a_committed_kill_rings_the_runner_without_waiting_for_its_poll(
    home: Home, slow_http: SlowHttp
) -> None:
    # The runner polls only every hour: only the bell (rung by the kill's commit in another
    # session) can stop it within the test's bound.
    run_id, state = await _kill_a_slow_run(home, slow_http, "rung, not polled", poll_seconds=3600)

    assert state is RunState.SEALED
    kills = [leaf for leaf in leaves_of(home.rio, run_id) if leaf.kind == "kill"]
    assert [k.data["reason"] for k in kills] == ["rung, not polled"]


async def test_revoked_technician_mid_run_stops_the_run(home: Home, farm: Farm) -> None:
    now = now_utc()
    # 30 items at 10 per second: the run is still going when the technician is revoked.
    policy = policy_bytes(farm, rates=(2, 10, 10, 20))
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [around(now)]), policy, at=now - timedelta(minutes=1)
    )
    run_id = new_run(home, notice)
    execution = asyncio.create_task(make_runner(home, run_id).execute())
    try:
        assert await wait_for_intents(home.rio, run_id, 5) >= 5
        admin = home.other()
        try:
            with admin.db.session() as s:
                revoke_person(s, TECHNICIAN, when=home.rio.clock.now())
        finally:
            admin.close()
        state = await asyncio.wait_for(execution, 30.0)
    finally:
        execution.cancel()

    assert state is RunState.PAUSED
    with home.rio.db.session() as s:
        assert get_run(s, run_id).pause_reason == PauseReason.OPERATOR.value
    leaves = leaves_of(home.rio, run_id)
    # The gate sees the revocation when it decides (a refusal) or when it admits a permit
    # immediately before sending (an unsent outcome): either way, nothing is sent after it.
    refused = [
        leaf
        for leaf in leaves
        if (
            leaf.kind == "refusal"
            and (leaf.data["check"], leaf.data["reason"]) == ("entrusted", "revoked")
        )
        or (
            leaf.kind == "outcome"
            and leaf.data["outcome"] == "unsent"
            and leaf.data["not_sent"]["reason"] == "revoked"
        )
    ]
    assert refused
    first = refused[0].seq
    late = [leaf.seq for leaf in leaves if leaf.kind == "intent" and leaf.seq > first]
    assert late == [], "intents were permitted after the gate saw the revocation"
    assert len([leaf for leaf in leaves if leaf.kind == "intent"]) < 30
    verdict = verify_run(home.rio, run_id)
    assert verdict, verdict.problems
