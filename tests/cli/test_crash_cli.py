"""`rio run start` killed with SIGKILL mid-run, twice; resumed by `run resume` and `run start`.

The listeners (loopback only) count every connection they accept. After two crashes and two
resumptions the run is sealed, no address saw a second connection, every plan item has exactly
one intent and `rio audit verify` passes; in between, `audit verify` says the run is unfinished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.context import Rio as RioHome
from orchestrator.ledger.leaves import Leaf
from orchestrator.run.runs import list_runs
from orchestrator.run.state import PauseReason, RunState
from orchestrator.settings import load_settings
from tests.cli.conftest import ROOT, Rio
from tests.run.conftest import (
    SlowHttp,
    around,
    leaves_of,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)


@pytest.fixture
def listeners() -> Iterator[SlowHttp]:
    import ipaddress

    network = next(ipaddress.IPv4Network(unique_network()).subnets(new_prefix=28))
    server = SlowHttp(network=str(network), count=14, delay=1.5, lifetime=120.0).start()
    try:
        yield server
    finally:
        server.close()


def _people(rio: Rio, tmp_path: Path) -> None:
    rio("init")
    rio("vendor", "add", "acme", "--organisation", "Acme")
    for name, role, extra in (
        ("li", "officer", ["--organisation", "PSB"]),
        ("zhang", "technician", ["--vendor", "acme"]),
    ):
        rio("keys", "generate", name, "--out", str(tmp_path))
        pub = str(tmp_path / f"{name}.pub")
        rio("person", "add", name, "--role", role, *extra, "--public-key", pub)


def _intents(home: RioHome, run_id: str) -> list[Leaf]:
    return [leaf for leaf in leaves_of(home, run_id) if leaf.kind == "intent"]


def _crash(cmd: list[str], env: dict[str, str], home: RioHome, tmp: Path, more_than: int) -> str:
    """Start `rio ...`, wait until its run has more than ``more_than`` intents, SIGKILL it."""
    out = (tmp / f"child-{more_than}.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.interfaces.cli", *cmd],
        cwd=tmp,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    run_id = ""
    try:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and child.poll() is None:
            with home.db.session() as s:
                runs = list_runs(s)
            if runs:
                run_id = runs[-1].id
                if len(_intents(home, run_id)) >= more_than + 3:
                    break
            time.sleep(0.02)
        assert child.poll() is None, (tmp / f"child-{more_than}.log").read_text()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        out.close()
    return run_id


def _orphans(home: RioHome, run_id: str) -> set[int]:
    leaves = leaves_of(home, run_id)
    answered = {leaf.data["intent"] for leaf in leaves if leaf.kind == "outcome"}
    return {leaf.seq for leaf in leaves if leaf.kind == "intent" and leaf.seq not in answered}


@pytest.mark.slow
def test_run_killed_twice_resumes_without_a_second_connection_and_verifies(
    rio: Rio, tmp_path: Path, listeners: SlowHttp
) -> None:
    _people(rio, tmp_path)
    now = now_utc()
    scope = tmp_path / "scope.yaml"
    scope.write_bytes(scope_bytes(listeners.network, [around(now - timedelta(seconds=5))]))
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(policy_bytes(None, http_port=listeners.port, concurrency=4))
    li, zhang = str(tmp_path / "li.key"), str(tmp_path / "zhang.key")
    notice = rio(
        "notice", "announce", "--scope", str(scope), "--policy", str(policy), "--vendor", "acme",
        "--key", li,
    ).stdout.strip()  # fmt: skip
    time.sleep(2.1)  # the demo policy's lead time

    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env |= {"RIO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    home = RioHome(load_settings({"RIO_HOME": str(tmp_path / "home")}))
    try:
        start = ["run", "start", notice, "--key", zhang, "--quiet"]
        run_id = _crash(start, env, home, tmp_path, 2)
        first_orphans = _orphans(home, run_id)
        assert first_orphans, "the slow listeners keep probes in flight: some must be open"

        unfinished = rio("audit", "verify", run_id, "--key", li)
        assert "UNFINISHED" in unfinished.stdout and "crashed" in unfinished.stdout
        assert f"run {run_id}: " in unfinished.stdout and "verified so far" in unfinished.stdout

        status = rio("run", "status", run_id, "--key", li, "--json")
        assert '"state": "paused"' in status.stdout and '"pause_reason": "crash"' in status.stdout

        so_far = len(_intents(home, run_id))
        again = _crash(
            ["run", "resume", run_id, "--key", zhang, "--quiet"], env, home, tmp_path, so_far
        )
        assert again == run_id

        finished = rio("run", "start", notice, "--key", zhang, "--quiet")
        assert f"run {run_id} of notice {notice}: resuming it" in finished.stdout
        assert f"run {run_id}: sealed" in finished.stdout

        with home.db.session() as s:
            runs = list_runs(s, notice)
            assert [r.id for r in runs] == [run_id], "no second run of the notice was created"
            assert runs[0].state == RunState.SEALED.value
        leaves = leaves_of(home, run_id)
        per_item = Counter(leaf.data["item"] for leaf in leaves if leaf.kind == "intent")
        assert max(per_item.values()) == 1, "an item was sent twice"
        assert sorted(per_item) == list(range(len(per_item)))
        crashes = [
            leaf
            for leaf in leaves
            if leaf.kind == "state" and leaf.data["reason"] == PauseReason.CRASH.value
        ]
        assert len(crashes) == 2
        unknown = {
            leaf.data["intent"]
            for leaf in leaves
            if leaf.kind == "outcome" and leaf.data["outcome"] == "unknown"
        }
        assert first_orphans <= unknown
        seen = listeners.accepted()
        assert seen and max(seen.values()) == 1, f"an address saw a second connection: {seen}"

        verified = rio("audit", "verify", run_id, "--key", li)
        assert "UNFINISHED" not in verified.stdout
        assert f"run {run_id}: {len(leaves)} leaves: verified" in verified.stdout
    finally:
        home.close()
