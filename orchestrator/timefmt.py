"""The one way rio writes an instant for people and for scripts: ISO 8601 with its offset.

The command line, the documents (transparency report) and the JSON output all write times
through :func:`format_instant`, so a reader sees one format everywhere:
``2026-12-04T10:50:00+08:00`` in the object's timezone where a person reads it, the same
instant in UTC in JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["format_instant", "utc_instant"]


def utc_instant(value: datetime) -> datetime:
    """``value`` as an aware datetime; a naive one (SQLite hands them back) is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def format_instant(
    value: datetime | None, tz: tzinfo | None = None, *, timespec: str = "seconds"
) -> str:
    """ISO 8601 with an offset, in ``tz`` when given (else as stored); ``-`` for ``None``.

    Args:
        value: The instant; a naive value is UTC, which is how rio stores times.
        tz: The timezone a person reads it in (the object's, ``Settings.tz``).
        timespec: As :meth:`datetime.isoformat`; ``"seconds"`` for people, ``"auto"`` keeps
            microseconds (JSON).
    """
    if value is None:
        return "-"
    aware = utc_instant(value)
    if tz is not None:
        aware = aware.astimezone(tz)
    return aware.isoformat(timespec=timespec)
