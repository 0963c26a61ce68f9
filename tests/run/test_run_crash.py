"""A runner killed with SIGKILL mid-run: nothing logged is lost, nothing in flight is sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.context import Rio
from orchestrator.errors import StateError
from orchestrator.gate.resolve import Resolver
from orchestrator.ledger.leaves import parse_leaf
from orchestrator.ledger.log import ProbeLog
from orchestrator.ledger.verify import verify_run
from orchestrator.run.lease import RunLease, open_intents, recover_crashed, runner_alive
from orchestrator.run.lifecycle import move
from orchestrator.run.runs import get_run
from orchestrator.run.scheduler import RioScheduler
from orchestrator.run.state import RunState
from orchestrator.settings import load_settings
from tests.support.postgres import loopback_pg_url

from .conftest import (
    REPO,
    Home,
    SlowHttp,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    raw_leaves,
    scope_bytes,
    unique_network,
    wait_for_intents,
)

# The child builds its settings from argv (no environment), like the tests do.
_CHILD = """
import asyncio, sys
from orchestrator.context import Rio
from orchestrator.gate.resolve import Resolver
from orchestrator.run.runner import Runner
from orchestrator.settings import load_settings

settings = load_settings({"RIO_HOME": sys.argv[1], "RIO_CHECKPOINT_EVERY": "25"})
runner = Runner(
    Rio(settings), sys.argv[2], resolver=Resolver(["127.0.0.1"], port=9, timeout=0.5), dns_port=9
)
asyncio.run(runner.execute())
"""


async def _start_and_kill_9(home: Home, slow_http: SlowHttp, tmp_path: Path) -> str:
    """A run executed by a child process that is SIGKILLed with probes in flight."""
    now = now_utc()
    policy = policy_bytes(None, http_port=slow_http.port, concurrency=4)
    notice = announce_notice(
        home, scope_bytes(slow_http.network, [around(now)]), policy, at=now - timedelta(minutes=1)
    )
    run_id = new_run(home, notice)
    script = tmp_path / "crash_runner.py"
    script.write_text(_CHILD)
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, str(script), str(home.path), run_id],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        found = await wait_for_intents(home.rio, run_id, 5, seconds=30.0)
        assert child.poll() is None, (tmp_path / "child.log").read_text()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        log.close()
    assert found >= 5, (tmp_path / "child.log").read_text()
    return run_id


@pytest.mark.slow
async def test_run_resumes_after_kill_9_without_losing_or_repeating_a_probe(
    home: Home, slow_http: SlowHttp, tmp_path: Path
) -> None:
    run_id = await _start_and_kill_9(home, slow_http, tmp_path)
    before = raw_leaves(home.rio, run_id)
    parsed = [parse_leaf(body) for _, body in before]
    answered = {leaf.data["intent"] for leaf in parsed if leaf.kind == "outcome"}
    orphans = [leaf for leaf in parsed if leaf.kind == "intent" and leaf.seq not in answered]
    # Each slow probe takes 1.5 s, so the newest intents were surely still in flight.
    assert orphans
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == RunState.RUNNING.value

    runner = make_runner(home, run_id)
    state = await runner.execute()

    assert state is RunState.SEALED
    after = raw_leaves(home.rio, run_id)
    assert after[: len(before)] == before  # nothing lost, nothing altered
    leaves = leaves_of(home.rio, run_id)
    outcomes = [leaf for leaf in leaves if leaf.kind == "outcome"]
    for orphan in orphans:
        mine = [o for o in outcomes if o.data["intent"] == orphan.seq]
        assert [o.data["outcome"] for o in mine] == ["unknown"], f"intent {orphan.seq}"
    intents = [leaf for leaf in leaves if leaf.kind == "intent"]
    per_item = Counter(leaf.data["item"] for leaf in intents)
    assert max(per_item.values()) == 1, "an item was sent twice"
    assert set(per_item) == set(range(runner.progress.planned))
    assert all(slow_http.served(ip) <= 1 for ip in slow_http.ips())
    assert any(
        leaf.kind == "state" and leaf.data["reason"] == "resumed after crash" for leaf in leaves
    )
    verdict = verify_run(home.rio, run_id)
    assert verdict, verdict.problems


@pytest.mark.slow
async def test_serve_resumes_a_crashed_run_at_the_next_opening(
    home: Home, slow_http: SlowHttp, tmp_path: Path
) -> None:
    run_id = await _start_and_kill_9(home, slow_http, tmp_path)
    orphans = open_intents(home.rio, run_id)
    assert orphans
    options = {"resolver": Resolver(["127.0.0.1"], port=9, timeout=0.5), "dns_port": 9}
    with RioScheduler(home.rio, runner_options=options) as scheduler:
        fired = await scheduler.fire_due()
    assert [job.split(":")[1] for job in fired] == [run_id]
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == RunState.SEALED.value
    leaves = leaves_of(home.rio, run_id)
    states = [(leaf.data["state"], leaf.data["reason"]) for leaf in leaves if leaf.kind == "state"]
    assert ("paused", "crash") in states and ("running", "resumed after crash") in states
    per_item = Counter(leaf.data["item"] for leaf in leaves if leaf.kind == "intent")
    assert max(per_item.values()) == 1, "an item was sent twice"
    assert max(slow_http.accepted().values()) == 1
    for seq in orphans:
        assert [
            o.data["outcome"] for o in leaves if o.kind == "outcome" and o.data["intent"] == seq
        ] == ["unknown"]
    assert verify_run(home.rio, run_id)


def _idle_run(home: Home, now: datetime) -> str:
    """A new run of a notice open now, over a network nothing listens on; nobody runs it."""
    notice = announce_notice(
        home,
        scope_bytes(unique_network(), [around(now)]),
        policy_bytes(None, http_port=9),
        at=now - timedelta(minutes=1),
    )
    return new_run(home, notice)


async def test_a_run_being_run_by_another_process_is_refused_and_untouched(
    home: Home, tmp_path: Path
) -> None:
    now = now_utc()
    run_id = _idle_run(home, now)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home.path), run_id],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert runner_alive(home.rio, run_id)
        with pytest.raises(StateError, match="being run by another process"):
            await make_runner(home, run_id).execute()
        assert await recover_crashed(home.rio) == []
    finally:
        holder.communicate("", timeout=30)
    assert raw_leaves(home.rio, run_id) == []
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == RunState.SCHEDULED.value
    assert not runner_alive(home.rio, run_id)


_HOLDER = """
import sys
from orchestrator.context import Rio
from orchestrator.run.lease import RunLease
from orchestrator.settings import load_settings

lease = RunLease(Rio(load_settings({"RIO_HOME": sys.argv[1]})), sys.argv[2])
print("held" if lease.try_acquire() else "not held", flush=True)
sys.stdin.read()
"""


def test_postgres_run_lease_admits_one_holder(tmp_path: Path) -> None:
    url = loopback_pg_url()
    settings = load_settings({"RIO_HOME": str(tmp_path / "home"), "RIO_DATABASE_URL": url})
    first_rio, second_rio = Rio(settings), Rio(settings)
    try:
        first, second = RunLease(first_rio, "R-1"), RunLease(second_rio, "R-1")
        other = RunLease(second_rio, "R-2")
        assert first.try_acquire()
        assert not second.try_acquire()
        assert other.try_acquire(), "another run's lease is independent"
        first.release()
        assert second.try_acquire()
        second.release()
        other.release()
    finally:
        first_rio.close()
        second_rio.close()


def test_run_schedule_of_a_crashed_run_marks_it_paused_crash_and_places_it(home: Home) -> None:
    now = now_utc()
    run_id = _idle_run(home, now)
    with home.rio.db.session() as s:  # its runner is gone: nobody holds it
        move(get_run(s, run_id), RunState.RUNNING, now=datetime.now(UTC))
    with RioScheduler(home.rio) as scheduler:
        start = asyncio.run(scheduler.resume_run(run_id))
        jobs = [job.id for job in scheduler.jobs()]
    assert start <= now + timedelta(seconds=5)
    assert any(job.startswith(f"run:{run_id}:") for job in jobs)
    with home.rio.db.session() as s:
        row = get_run(s, run_id)
        assert (row.state, row.pause_reason) == ("paused", "crash")
    states = [leaf.data for leaf in leaves_of(home.rio, run_id) if leaf.kind == "state"]
    assert states == [{"state": "paused", "reason": "crash"}]
    assert verify_run(home.rio, run_id, unfinished=True)
    assert asyncio.run(recover_crashed(home.rio)) == []  # found once


async def test_runner_that_died_after_logging_the_seal_leaves_a_sealed_run(home: Home) -> None:
    now = now_utc()
    run_id = _idle_run(home, now)
    with home.rio.db.session() as s:
        move(get_run(s, run_id), RunState.RUNNING, now=datetime.now(UTC))
    log = ProbeLog(home.rio.db, run_id, home.rio.signing_key, clock=home.rio.clock)
    for state in ("running", "completed", "sealed"):
        await log.append("state", {"state": state, "reason": None})
    await log.close()  # ... and the process died before the database said sealed
    before = raw_leaves(home.rio, run_id)
    assert await recover_crashed(home.rio) == []
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == RunState.SEALED.value
    assert raw_leaves(home.rio, run_id) == before  # nothing appended after the seal
    assert verify_run(home.rio, run_id)
