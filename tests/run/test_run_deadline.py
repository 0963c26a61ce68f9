"""No probe outlives its permit's deadline (and so never its window): the runner stops it there."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from orchestrator.run.state import RunState

from .conftest import (
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
)


def test_a_probe_slower_than_its_deadline_is_stopped_at_the_deadline(home: Home) -> None:
    # The server answers after 8 s; the http timeout would wait 30 s; the permit allows 2 s.
    slow = SlowHttp(network="127.0.23.0/29", count=6, delay=8.0, lifetime=30.0)
    slow.start()
    try:
        now = now_utc()
        policy = policy_bytes(None, http_port=slow.port, probe_timeout="2s", http_timeout="30s")
        notice = announce_notice(
            home, scope_bytes(slow.network, [around(now)]), policy, at=now - timedelta(minutes=1)
        )
        run_id = new_run(home, notice)
        state = asyncio.run(make_runner(home, run_id).execute())
    finally:
        slow.close()
    assert state is RunState.SEALED
    leaves = leaves_of(home.rio, run_id)
    intents = {leaf.seq: leaf for leaf in leaves if leaf.kind == "intent"}
    outcomes = [leaf for leaf in leaves if leaf.kind == "outcome"]
    assert intents and len(outcomes) == len(intents)
    for outcome in outcomes:
        intent = intents[outcome.data["intent"]]
        deadline = datetime.fromisoformat(intent.data["deadline"])
        assert outcome.data["outcome"] == "timeout"
        # Logged right after the cancellation at the deadline (allow scheduling slack).
        assert outcome.instant <= deadline + timedelta(milliseconds=500)
