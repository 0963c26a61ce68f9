"""``rio run schedule``, ``rio run jobs`` and ``rio serve`` on the real clock, against loopback.

The notice's window is announced around the present, so the run is due at once: nothing waits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from orchestrator.demo.farm import Farm, FarmSpec
from orchestrator.errors import InputError
from orchestrator.interfaces.cli import app
from orchestrator.ledger.log import read_leaves
from orchestrator.run.runs import get_run
from orchestrator.run.scheduler import RioScheduler, scheduler_lock
from orchestrator.run.state import RunState
from tests.scheduler import NETWORK, SHANGHAI, TECH, Lab, build_lab, policy_doc, scope_doc, window

SH = ZoneInfo(SHANGHAI)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def farm() -> Iterator[Farm]:
    spec = FarmSpec(
        network=NETWORK,
        count=2,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=120.0,
    )
    with Farm(spec) as f:
        yield f


def _open_now_lab(home: Path, farm: Farm) -> Lab:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).astimezone(SH).replace(tzinfo=None, microsecond=0)
    end = (now + timedelta(hours=2)).astimezone(SH).replace(tzinfo=None, microsecond=0)
    return build_lab(
        home,
        scope_doc([window(start.isoformat(), end.isoformat())]),
        policy_doc(http_port=farm.http_port),
        announced_at=now - timedelta(hours=1),
    )


def _state(lab: Lab, run_id: str) -> RunState:
    with lab.rio.db.session() as s:
        return RunState(get_run(s, run_id).state)


def test_serve_once_executes_a_due_run_to_sealed(tmp_path: Path, farm: Farm) -> None:
    lab = _open_now_lab(tmp_path / "home", farm)
    cli = CliRunner()
    scheduled = cli.invoke(
        app, ["run", "schedule", lab.notice.id, "--technician", TECH], env=lab.env
    )
    assert scheduled.exit_code == 0, scheduled.output
    run_id, planned = scheduled.output.splitlines()[:2]
    assert run_id.startswith("R-")
    assert planned.startswith("planned start ") and SHANGHAI in planned

    jobs = cli.invoke(app, ["run", "jobs"], env=lab.env)
    assert jobs.exit_code == 0 and f"\trun\t{run_id}\t" in jobs.output

    served = cli.invoke(app, ["serve", "--once"], env=lab.env)
    assert served.exit_code == 0, served.output
    assert "fired 1 job" in served.output
    assert _state(lab, run_id) is RunState.SEALED
    outcomes = [
        leaf.data["outcome"] for leaf in read_leaves(lab.rio.db, run_id) if leaf.kind == "outcome"
    ]
    assert outcomes == ["ok", "ok"]
    after = cli.invoke(app, ["run", "jobs"], env=lab.env)
    assert after.exit_code == 0 and run_id not in after.output
    assert "no scheduled jobs" in after.output  # an empty list says so (on stderr)


def test_schedule_with_every_prints_the_next_period(tmp_path: Path, farm: Farm) -> None:
    lab = _open_now_lab(tmp_path / "home", farm)
    result = CliRunner().invoke(
        app,
        ["run", "schedule", lab.notice.id, "--technician", TECH, "--every", "7d"],
        env=lab.env,
    )
    assert result.exit_code == 0, result.output
    # The only window ends in two hours: there is no second period.
    assert "recurring every 7d" in result.output and "none (no opening left)" in result.output


def test_schedule_refuses_an_unreadable_period(tmp_path: Path, farm: Farm) -> None:
    lab = _open_now_lab(tmp_path / "home", farm)
    result = CliRunner().invoke(
        app,
        ["run", "schedule", lab.notice.id, "--technician", TECH, "--every", "weekly"],
        env=lab.env,
    )
    assert isinstance(result.exception, InputError)
    assert "--every" in str(result.exception)


def test_serve_daemon_fires_a_due_job_and_stops_cleanly(tmp_path: Path, farm: Farm) -> None:
    lab = _open_now_lab(tmp_path / "home", farm)
    with RioScheduler(lab.rio) as scheduler:
        run_id = scheduler.schedule_run(lab.notice.id, TECH).run_id
    stop = threading.Event()
    daemon = RioScheduler(lab.rio)
    thread = threading.Thread(
        target=lambda: asyncio.run(daemon.serve(stop, poll_seconds=0.1)), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while _state(lab, run_id) is not RunState.SEALED and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    daemon.close()
    assert _state(lab, run_id) is RunState.SEALED
    with RioScheduler(lab.rio) as again:
        assert again.jobs() == []


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_closing_a_store_only_scheduler_leaves_a_due_job_alone(tmp_path: Path, farm: Farm) -> None:
    # APScheduler 3 makes one pass over its stores after shutdown; it must not try to fire.
    lab = _open_now_lab(tmp_path / "home", farm)
    run_ids = []
    for _ in range(5):
        with RioScheduler(lab.rio) as scheduler:
            run_ids.append(scheduler.schedule_run(lab.notice.id, TECH).run_id)
        time.sleep(0.05)  # let a would-be last pass of the closed scheduler's thread happen
    with RioScheduler(lab.rio) as again:
        assert sorted(j.subject for j in again.jobs()) == sorted(run_ids)
    assert {_state(lab, r) for r in run_ids} == {RunState.SCHEDULED}


def test_rio_serve_stops_cleanly_on_sigterm(tmp_path: Path, farm: Farm) -> None:
    lab = _open_now_lab(tmp_path / "home", farm)
    env = {**os.environ, **lab.env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from orchestrator.interfaces.cli import main; main()",
            "serve",
            "--poll",
            "0.2",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(30.0, proc.kill)  # bounds the blocking readline below
    watchdog.start()
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(2)]  # starting, then serving (or dies)
        assert "scheduler serving" in seen[-1], seen
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
    assert "SIGTERM: stopping" in rest
    lock = scheduler_lock(lab.rio)
    assert lock.acquire()  # released on the way out
    lock.release()
