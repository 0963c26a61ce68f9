"""The live progress display, piped: its last frame ends with a newline (#19).

On a terminal rich redraws the display in place; into a pipe or a log file it writes the last
frame once, and without the newline that frame's last row ran on into the next line of output
(``eta -run R: sealed ...``). A child process with stdout on a pipe shows it as a user's
``rio run start ... | tee log`` would.
"""

from __future__ import annotations

import subprocess
import sys

from tests.cli.conftest import ROOT

SHOW = """
from orchestrator.run.runner import Progress
from orchestrator.terminal import console, live_progress

with live_progress("run R-1") as show:
    assert show is not None
    show(Progress(planned=4, decided=4, permits=4, outcomes={"ok": 4}))
console.print("run R-1: sealed")
"""


def test_the_piped_progress_display_ends_with_a_newline() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert "run R-1: sealed" in lines, proc.stdout  # on a line of its own
    assert any(line.startswith("eta") for line in lines), proc.stdout  # the last frame's row
    assert "4 / 4 decided" in proc.stdout
