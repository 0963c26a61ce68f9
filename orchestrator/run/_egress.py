"""Which announced scanner source a probe leaves from, when workers are pinned to egresses.

A notice announces the addresses its probes come from (``sources``). With ``RIO_EGRESS`` set, the
deployment's workers are each pinned to one source address (``rio worker --egress ADDR``, one
queue per address); every probe goes to the queue of an egress its notice announces, in turn.
A probe whose notice announces none of the deployment's egresses is not sent, and neither is
one the runner would send itself (a port batch's nmap runs in the runner's process, not pinned).
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator

__all__ = ["Egress"]


class Egress:
    """The egress choice of one run: ``pick()`` per probe, or why it may not be sent."""

    def __init__(self, configured: tuple[str, ...], announced: tuple[str, ...]) -> None:
        self.announced = tuple(str(ipaddress.ip_address(a)) for a in announced)
        self.pinned = bool(configured)
        usable = [a for a in configured if a in self.announced]
        self._turn: Iterator[str] | None = itertools.cycle(usable) if usable else None
        self.refusal: str | None = None
        if configured and not usable:
            self.refusal = (
                f"not sent: no announced source: the workers' egresses "
                f"({', '.join(configured)}, RIO_EGRESS) are not among the notice's scanner "
                f"sources ({', '.join(self.announced)})"
            )

    def pick(self, probe: str, *, in_runner: bool) -> tuple[str | None, str | None]:
        """``(source, None)`` to send from ``source`` (``None``: unpinned), or ``(None, why)``."""
        if not self.pinned:
            return None, None
        if self.refusal is not None:
            return None, self.refusal
        if in_runner:
            return None, (
                f"not sent: the {probe} probe runs in the runner's process, which is not pinned "
                f"to an announced egress (RIO_EGRESS)"
            )
        assert self._turn is not None
        return next(self._turn), None
