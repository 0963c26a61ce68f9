"""Run the real ``rio`` command in a subprocess with its own RIO_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
Rio = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def rio(tmp_path: Path) -> Rio:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env["RIO_HOME"] = str(tmp_path / "home")
    env["PYTHONPATH"] = str(ROOT)

    def run(
        *args: str, check: bool = True, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.interfaces.cli", *args],
            cwd=tmp_path,
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"rio {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run
