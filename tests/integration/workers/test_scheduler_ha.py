"""Two ``rio serve`` processes on one PostgreSQL database: one holds the advisory lock and
schedules; kill -9 it, and the standby takes over within its retry interval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres import loopback_pg_url

from .conftest import ROOT

pytestmark = pytest.mark.slow

_DB = "rio_celery_ha"


@pytest.fixture
def ha_database() -> Iterator[str]:
    url = loopback_pg_url()
    admin = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {_DB}")
    try:
        yield url.rsplit("/", 1)[0] + f"/{_DB}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_DB} WITH (FORCE)")


def _wait_for(path: Path, text: str, seconds: float) -> float:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if text in path.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path.name} after {seconds} s:\n{path.read_text()}")


def test_a_standby_scheduler_takes_over_when_the_leader_is_killed(
    ha_database: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env.update({"RIO_DATABASE_URL": ha_database, "PYTHONPATH": str(ROOT)})
    cli = [sys.executable, "-m", "orchestrator.interfaces.cli"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("a", "b"):
            home = tmp_path / name
            env_n = {**env, "RIO_HOME": str(home)}
            if name == "a":
                subprocess.run([*cli, "init"], env=env_n, check=True, timeout=120,
                               capture_output=True)  # fmt: skip
            else:
                home.mkdir()
                for f in ("orchestrator.key", "master.key"):
                    (home / f).write_bytes((tmp_path / "a" / f).read_bytes())
                    (home / f).chmod(0o600)
            log = (tmp_path / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [*cli, "serve", "--poll", "0.5"],
                    env=env_n,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            if name == "a":
                _wait_for(tmp_path / "a.log", "scheduler serving", 60)
        _wait_for(tmp_path / "b.log", "another scheduler holds the lock", 60)
        assert "scheduler serving" not in (tmp_path / "b.log").read_text()

        killed = time.monotonic()
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        took = _wait_for(tmp_path / "b.log", "scheduler serving", 30) - killed
        print(f"standby serving {took:.2f} s after kill -9 of the leader")
        assert took <= 12.0  # its retry interval (10 s) and a poll
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
