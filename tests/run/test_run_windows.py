"""Windows: a run stops before its announced window closes, resumes in the next, never runs late.

The gate reads the runner's clock; a FakeClock moved from the progress callback plays the time.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from orchestrator.clock import FakeClock
from orchestrator.demo.farm import Farm
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runner import Progress
from orchestrator.run.runs import get_run
from orchestrator.run.state import PauseReason, RunState

from .conftest import (
    Home,
    announce_notice,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
)


async def test_run_pauses_before_window_closes_and_resumes_in_next_window(
    home: Home, farm: Farm
) -> None:
    t0 = now_utc()
    first = (t0 - timedelta(minutes=10), t0 + timedelta(seconds=12))
    second = (t0 + timedelta(hours=1), t0 + timedelta(hours=2))
    # http, https and tls on 30 targets: 90 items, far more than fit before the clock runs out.
    policy = policy_bytes(farm, https=True, concurrency=2, probe_timeout="3s")
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [first, second]), policy, at=t0 - timedelta(minutes=1)
    )
    run_id = new_run(home, notice, at=t0)
    clock = FakeClock(t0)
    # Half a second per progress report, never past the window: the gate must stop on its own.
    latest = first[1] - timedelta(seconds=1)

    def tick(_: Progress) -> None:
        clock.set(min(clock.now() + timedelta(seconds=0.5), latest))

    runner = make_runner(home, run_id, clock=clock, on_progress=tick)
    state = await runner.execute()
    planned = runner.progress.planned
    assert planned == 90

    assert state is RunState.PAUSED
    with home.rio.db.session() as s:
        row = get_run(s, run_id)
        assert (row.state, row.pause_reason) == (RunState.PAUSED.value, PauseReason.WINDOW.value)
    leaves = leaves_of(home.rio, run_id)
    paused = [
        leaf.seq for leaf in leaves if leaf.kind == "state" and leaf.data["state"] == "paused"
    ]
    assert len(paused) == 1
    closing = [
        leaf
        for leaf in leaves
        if leaf.kind == "refusal" and leaf.data["reason"] == "window-closing"
    ]
    assert closing, "the gate should refuse because the window is closing"
    intents = {leaf.seq: leaf for leaf in leaves if leaf.kind == "intent"}
    assert 0 < len(intents) < planned
    outcome_seq = {leaf.data["intent"]: leaf.seq for leaf in leaves if leaf.kind == "outcome"}
    for seq, intent in intents.items():
        assert datetime.fromisoformat(intent.data["deadline"]) <= first[1], f"intent {seq}"
        # Nothing in flight once paused: every probe got its outcome before the pause leaf.
        assert outcome_seq[seq] < paused[0], f"intent {seq} still in flight at the pause"
    assert all(leaf.instant < first[1] for leaf in leaves)
    assert verify_run(home.rio, run_id)

    resumed_clock = FakeClock(second[0] + timedelta(seconds=1))
    state = await make_runner(home, run_id, clock=resumed_clock).execute()

    assert state is RunState.SEALED
    leaves = leaves_of(home.rio, run_id)
    intents_after = [leaf for leaf in leaves if leaf.kind == "intent"]
    per_item = Counter(leaf.data["item"] for leaf in intents_after)
    assert set(per_item) == set(range(planned)) and max(per_item.values()) == 1
    for leaf in intents_after:
        assert first[0] <= leaf.instant < first[1] or second[0] <= leaf.instant < second[1]
    verdict = verify_run(home.rio, run_id)
    assert verdict, verdict.problems


async def test_run_whose_windows_all_passed_sends_nothing(home: Home, farm: Farm) -> None:
    t0 = now_utc()
    past = (t0 - timedelta(hours=2), t0 - timedelta(hours=1))
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [past]), policy_bytes(farm), at=t0 - timedelta(hours=3)
    )
    run_id = new_run(home, notice)

    state = await make_runner(home, run_id).execute()

    assert state is RunState.PAUSED
    with home.rio.db.session() as s:
        assert get_run(s, run_id).pause_reason == PauseReason.WINDOW.value
    leaves = leaves_of(home.rio, run_id)
    assert not [leaf for leaf in leaves if leaf.kind == "intent"]
    refusals = [leaf for leaf in leaves if leaf.kind == "refusal"]
    assert refusals and {r.data["reason"] for r in refusals} == {"outside-announced-window"}
    assert all(sum(c.values()) == 0 for c in farm.counters().values())
    assert verify_run(home.rio, run_id)
