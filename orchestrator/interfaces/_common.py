"""Shared pieces of the command line: the opened home, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from orchestrator.context import Rio
from orchestrator.settings import load_settings

__all__ = ["console", "err_console", "open_rio", "print_json", "print_row"]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def open_rio(*, require_init: bool = True) -> Iterator[Rio]:
    rio = Rio(load_settings())
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
