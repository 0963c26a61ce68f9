"""A runner killed with SIGKILL mid-run: nothing logged is lost, nothing in flight is sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.ledger.leaves import parse_leaf
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runs import get_run
from orchestrator.run.state import RunState

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


@pytest.mark.slow
async def test_run_resumes_after_kill_9_without_losing_or_repeating_a_probe(
    home: Home, slow_http: SlowHttp, tmp_path: Path
) -> None:
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
