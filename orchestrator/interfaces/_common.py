"""Shared pieces of the command line: the opened home, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.terminal import console, err_console

if TYPE_CHECKING:
    from orchestrator.context import Rio


__all__ = [
    "QuietOpt",
    "console",
    "err_console",
    "iso",
    "open_rio",
    "print_json",
    "print_row",
]

QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only the ids, one a line (for scripts).")
]


@contextmanager
def open_rio(*, require_init: bool = True) -> Iterator[Rio]:
    """The application every command works with: settings read once, built by the
    composition root (:func:`orchestrator.app.build_app`)."""
    from orchestrator.app import build_app
    from orchestrator.settings import load_settings

    rio = build_app(load_settings())
    try:
        if require_init:
            rio.db.require_initialised()
        yield rio
    finally:
        rio.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def print_row(line: str) -> None:
    """A tab-separated row, written as is (for `cut` and friends)."""
    sys.stdout.write(line + "\n")


def iso(value: datetime | None, tz: Any = None) -> str:
    """One time format for people: ISO 8601 with its offset, in ``tz`` when given.

    A naive value (SQLite hands back naive datetimes) is UTC, which is how rio stores times.
    """
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if tz is not None:
        value = value.astimezone(tz)
    return value.isoformat(timespec="seconds")
