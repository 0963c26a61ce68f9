"""``rio serve`` logs like a daemon: time and level on every line, text or JSON, a last
"stopped" line, and a standby's "retrying" once rather than every 10 seconds (#19)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.interfaces._logging import RepeatFilter, configure_daemon_logging
from orchestrator.run.scheduler import RioScheduler, scheduler_lock
from tests.scheduler import SHANGHAI, Lab, build_lab, policy_doc, scope_doc, window

REPO = Path(__file__).resolve().parents[2]
SH = ZoneInfo(SHANGHAI)
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def _lab(home: Path) -> Lab:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).astimezone(SH).replace(tzinfo=None, microsecond=0)
    end = (now + timedelta(hours=2)).astimezone(SH).replace(tzinfo=None, microsecond=0)
    return build_lab(
        home,
        scope_doc([window(start.isoformat(), end.isoformat())]),
        policy_doc(),
        announced_at=now - timedelta(hours=1),
    )


def _record(message: str, name: str = "orchestrator.run.scheduler") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)


def test_a_repeated_message_is_written_once_per_window_with_its_count() -> None:
    now = [0.0]
    repeats = RepeatFilter(300.0, clock=lambda: now[0])
    written = []
    for _ in range(30):  # a standby's "retrying in 10 s" over five minutes
        record = _record("another scheduler holds the lock; retrying in 10 s")
        if repeats.filter(record):
            written.append(record.getMessage())
        now[0] += 10.0
    assert written == ["another scheduler holds the lock; retrying in 10 s"]
    record = _record("another scheduler holds the lock; retrying in 10 s")
    assert repeats.filter(record)
    assert record.getMessage().endswith("(repeated 29 times in the last 300 s)")
    assert repeats.filter(_record("scheduler serving"))  # another message is not held back


def test_text_lines_carry_an_iso_time_with_offset_and_the_level() -> None:
    out = io.StringIO()
    handler = configure_daemon_logging("text", tz=SH, stream=out)
    try:
        logging.getLogger("orchestrator.run.scheduler").info("scheduler serving")
        logging.getLogger("orchestrator.run.scheduler").warning("job J: the window closed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.getvalue().splitlines()
    pattern = STAMP + r" INFO    orchestrator\.run\.scheduler: scheduler serving"
    assert re.fullmatch(pattern, lines[0]) and lines[0].split()[0].endswith("+08:00")
    assert re.match(STAMP + " WARNING ", lines[1])


def test_json_lines_parse_and_say_time_level_logger_message() -> None:
    out = io.StringIO()
    handler = configure_daemon_logging("json", stream=out)
    try:
        logging.getLogger("rio.serve").info("rio serve stopped")
    finally:
        logging.getLogger().removeHandler(handler)
    entry = json.loads(out.getvalue())
    assert entry["level"] == "INFO" and entry["logger"] == "rio.serve"
    assert entry["message"] == "rio serve stopped"
    assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)


def test_a_standby_scheduler_says_retrying_once_not_at_every_retry(tmp_path: Path) -> None:
    lab = _lab(tmp_path / "home")
    leader = scheduler_lock(lab.rio)
    assert leader.acquire()
    out = io.StringIO()
    handler = configure_daemon_logging("text", stream=out)
    stop = threading.Event()
    standby = RioScheduler(lab.rio)
    thread = threading.Thread(
        target=lambda: asyncio.run(standby.serve(stop, retry_seconds=0.02)), daemon=True
    )
    try:
        thread.start()
        time.sleep(1.0)  # some fifty retries
    finally:
        stop.set()
        thread.join(timeout=30)
        standby.close()
        leader.release()
        logging.getLogger().removeHandler(handler)
    assert not thread.is_alive()
    retrying = [line for line in out.getvalue().splitlines() if "retrying" in line]
    assert len(retrying) == 1, out.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_rio_serve_logs_each_line_with_time_and_level_and_says_it_stopped(
    tmp_path: Path, fmt: str
) -> None:
    lab = _lab(tmp_path / "home")
    env = {**os.environ, **lab.env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    env["RIO_TIMEZONE"] = SHANGHAI
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.interfaces.cli", "serve", "--poll", "0.2",
         "--log-format", fmt],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(60.0, proc.kill)  # bounds the blocking readline below
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        while not any("scheduler serving" in line for line in lines):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    lines += rest.splitlines()
    assert proc.returncode == 0, "\n".join(lines)
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
        messages = [e["message"] for e in entries]
    else:
        assert all(re.match(STAMP + r" (INFO|WARNING|ERROR) ", line) for line in lines), lines
        assert all("+08:00" in line.split()[0] for line in lines)
        messages = [line.split(": ", 1)[1] for line in lines]
    assert messages[0].startswith("rio serve ") and "starting" in messages[0]
    assert "SIGTERM: stopping" in messages
    assert messages[-1] == "rio serve stopped"
