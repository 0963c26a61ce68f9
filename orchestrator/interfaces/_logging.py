"""How ``rio serve`` logs: a timestamp and a level on every line, text or JSON, no repeats.

A daemon's output is read later, in a log collector or ``docker logs``: every line says when
(ISO 8601 with the offset, :func:`~orchestrator.timefmt.format_instant`) and how bad. The same
message coming again and again (a standby scheduler "retrying in 10 s" for hours) is written
once, then at most once per ``repeat_window`` seconds with how many times it came meanwhile.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TextIO

from orchestrator.timefmt import format_instant

__all__ = ["LOG_FORMATS", "RepeatFilter", "configure_daemon_logging"]

LOG_FORMATS = ("text", "json")
_HANDLER_NAME = "rio-daemon"


class RepeatFilter(logging.Filter):
    """Drop a record that repeats one already written within ``window`` seconds.

    The key is (logger, level, message). When the window has passed, the next repeat is
    written with ``(repeated N times in the last S s)`` appended, and the count starts again.
    """

    def __init__(self, window: float = 300.0, *, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window = window
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        now = self._clock()
        last = self._seen.get(key)
        if last is None:
            self._seen[key] = (now, 0)
            return True
        written_at, suppressed = last
        if now - written_at < self.window:
            self._seen[key] = (written_at, suppressed + 1)
            return False
        self._seen[key] = (now, 0)
        if suppressed:
            record.msg = (
                f"{record.getMessage()} (repeated {suppressed} times in the last "
                f"{now - written_at:.0f} s)"
            )
            record.args = None
        return True


class _TextFormatter(logging.Formatter):
    def __init__(self, tz: tzinfo | None) -> None:
        super().__init__()
        self.tz = tz

    def format(self, record: logging.LogRecord) -> str:
        at = format_instant(
            datetime.fromtimestamp(record.created, UTC), self.tz, timespec="milliseconds"
        )
        line = f"{at} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": format_instant(
                datetime.fromtimestamp(record.created, UTC), timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_daemon_logging(
    fmt: str = "text",
    *,
    tz: tzinfo | None = None,
    stream: TextIO | None = None,
    repeat_window: float = 300.0,
) -> logging.Handler:
    """Send rio's (and uvicorn's) log records to ``stream`` (stderr), one line each.

    Args:
        fmt: ``text`` (time in ``tz``, level, logger, message) or ``json`` (one object a line,
            time in UTC).
        tz: The timezone text lines are written in (``Settings.tz``).
        stream: Where to write (default: stderr, read as it is written).
        repeat_window: Seconds within which a repeated message is not written again.

    Returns:
        The handler, installed on the root logger (a second call replaces it).

    Raises:
        ValueError: ``fmt`` is neither ``text`` nor ``json``.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter(tz))
    handler.addFilter(RepeatFilter(repeat_window))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("orchestrator").setLevel(logging.INFO)
    logging.getLogger("rio").setLevel(logging.INFO)
    logging.getLogger("uvicorn").setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job it runs
    return handler
