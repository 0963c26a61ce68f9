"""What the command line prints, in one place: JSON, times, tables, counts.

Services return frozen results that carry data (datetimes, enums, tuples, paths); every
command turns them into text or JSON here, so no command formats a time or a list its own way:

* :func:`print_json` writes any result as JSON: dataclasses field by field, times as ISO 8601
  with an offset (:func:`~orchestrator.timefmt.format_instant`), durations as a policy file
  writes them (``3d``), enums by value, bytes as base64. A type it does not know is an error,
  not a ``str()`` that would leak a Python repr into a script's input.
* :func:`when` is the one time format for people: ISO 8601 with the offset, in the timezone
  the reader works in (``Settings.tz``, ``RIO_TIMEZONE``).
* :func:`print_table` prints a header and tab-separated rows, or says on stderr that the list
  is empty (stdout stays clean for ``cut`` and ``-q``).
* :func:`counted` writes ``1 technician`` / ``2 technicians``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from pathlib import PurePath
from typing import Any

from orchestrator.terminal import console, err_console
from orchestrator.timefmt import format_instant

__all__ = [
    "console",
    "counted",
    "err_console",
    "print_json",
    "print_lines",
    "print_row",
    "print_table",
    "to_jsonable",
    "when",
]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers, booleans, ``None``).

    Raises:
        TypeError: A type this function has not been taught (add it here, once).
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return format_instant(value, timespec="auto")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        from orchestrator.intake._types import format_duration

        return format_duration(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_jsonable(to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"no JSON form for {type(value).__name__} (teach interfaces/_output.py)")


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout (keys sorted, non-ASCII text as is)."""
    text = json.dumps(to_jsonable(data), indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write(text + "\n")


def when(
    value: datetime | str | None, tz: tzinfo | None = None, *, timespec: str = "seconds"
) -> str:
    """The one time format for people: ISO 8601 with its offset, in ``tz``; ``-`` for none.

    ``value`` may be an ISO 8601 string as documents store it (a record's ``announced_at``).
    ``timespec="milliseconds"`` where a reader compares instants (a probe log).
    """
    if isinstance(value, str):
        try:
            return format_instant(datetime.fromisoformat(value), tz, timespec=timespec)
        except ValueError:
            return value  # not a time after all: shown as written
    return format_instant(value, tz, timespec=timespec)


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 technician``, ``0 technicians``, ``2 technicians`` (``plural`` when not +s)."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def print_row(line: str) -> None:
    """A tab-separated row, written as is (for ``cut`` and friends)."""
    sys.stdout.write(line + "\n")


def print_lines(lines: Iterable[str]) -> None:
    """Lines of text as they are (no rich markup, no highlighting)."""
    for line in lines:
        console.print(line, markup=False)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | str):
        return str(value)
    raise TypeError(f"a table cell must be text or a number, not {type(value).__name__}")


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str) -> int:
    """A header and tab-separated rows on stdout, or ``empty`` on stderr; returns the row count.

    Cells are text or numbers (times already through :func:`when`); ``None`` prints ``-``.
    """
    lines = ["\t".join(_cell(c) for c in row) for row in rows]
    if not lines:
        err_console.print(empty, markup=False)
        return 0
    print_row("\t".join(header))
    for line in lines:
        print_row(line)
    return len(lines)


def _flag_type_hidden() -> None:
    """Typer's rich help shows ``<bool>`` beside every flag (``--json``, ``--help``), which
    reads as a value to type: flags show no type. Applied once, when the CLI is built."""
    from typer.core import TyperOption

    original = TyperOption.display_type_rich
    if getattr(original, "_rio_flags_untyped", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        result: str | None = original(self, ctx)
        return result

    display_type_rich._rio_flags_untyped = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flag_type_hidden()
