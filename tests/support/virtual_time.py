"""An asyncio event loop on a fake clock: timers fire in order, no wall-clock time passes.

``loop.time()`` is virtual. Whenever no callback is ready, the loop jumps its clock to the next
timer instead of sleeping, so a test of pacing logic runs in milliseconds and asserts exact
times. Only for code that waits with asyncio's own timers (``sleep``, ``call_at``): real I/O
still happens in real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualTimeLoop", "run_virtual"]

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose clock only moves to the next scheduled timer."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self._virtual = start

    def time(self) -> float:
        return self._virtual

    def _run_once(self) -> None:
        # asyncio internals (3.11-3.13): _ready holds callbacks due now, _scheduled the timers.
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        if not ready and scheduled:
            live = [h.when() for h in scheduled if not h.cancelled()]
            if live and min(live) > self._virtual:
                self._virtual = min(live)
        super()._run_once()  # type: ignore[misc]


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
