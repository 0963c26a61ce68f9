"""rio as a user installs it: from a wheel, not from the checkout (#19: Docker and pip)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("rio-*.whl")
    return wheel


@pytest.mark.slow
@pytest.mark.nmap
def test_demo_runs_from_a_non_editable_install(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "wheel")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "orchestrator/shipped/scopes/demo-loopback.yaml",
        "orchestrator/shipped/policies/demo.yaml",
        "orchestrator/shipped/scopes/loopback.yaml",
        "orchestrator/record/calendar.schema.json",
        "orchestrator/record/calendars/example-2026.yaml",
    ):
        assert shipped in names, shipped
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "elsewhere"  # not the checkout: nothing beside the package to lean on
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "RIO_HOME": str(work / ".rio")}
    code = (
        "import sys, orchestrator; print(orchestrator.__file__, file=sys.stderr);"
        "from orchestrator.interfaces.cli import main; sys.argv = ['rio', 'demo']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.splitlines()[0].startswith(str(target))
    assert "audit verify: PASS" in done.stdout
