"""Two inspections of the same object find the same faults under the same keys.

`rio demo` runs twice in one home (two notices of the demo object, a fresh loopback farm each
time, new certificates included); `rio findings diff` of the two runs must say nothing was fixed
and nothing is new, and export the later run as SARIF that names the same keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _rio(home: Path, *args: str, key: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env.update({"RIO_HOME": str(home), "PYTHONPATH": str(ROOT)})
    if key is not None:
        env["RIO_KEY_FILE"] = str(key)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.interfaces.cli", *args],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_second_inspection_of_the_demo_object_finds_every_finding_again_under_its_key(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    _rio(home, "demo", "--quiet")
    _rio(home, "demo", "--quiet")
    key = home / "demo-keys" / "officer-li.key"
    first, second = sorted(
        (line.split("\t") for line in _rio(home, "run", "list", key=key).splitlines()),
        key=lambda cols: cols[4],
    )[:2]
    diff = json.loads(_rio(home, "findings", "diff", first[0], second[0], "--json", key=key))
    assert diff["still_present"], "the demo farm plants flaws; none was found"
    assert (diff["fixed"], diff["new"]) == ([], [])
    sarif = json.loads(_rio(home, "findings", "export", second[0], "--format", "sarif", key=key))
    fingerprints = {
        r["partialFingerprints"]["rioFindingKey/v1"] for r in sarif["runs"][0]["results"]
    }
    assert fingerprints == {i["key"] for i in diff["still_present"]}
