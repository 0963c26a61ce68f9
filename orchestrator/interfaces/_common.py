"""Shared pieces of the command line: the opened home; output lives in :mod:`._output`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.interfaces._output import console, err_console, print_json, print_row, when

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


def iso(value: datetime | None, tz: Any = None) -> str:
    """The one time format for people (:func:`._output.when`)."""
    return when(value, tz)
