"""The executor seam: where a permitted probe is sent from.

The runner decides, logs the intent, takes the budget (``Gate.admit``) and then hands the permit
to an :class:`Executor`. One method, in the shape of httpx's ``BaseTransport.handle_request``:
the executor sends the probe (here, or in a worker process) and returns its result. Executors
never decide anything; a permit is the only thing they act on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from probes.base import Permit, ProbeContext, ProbeResult

__all__ = ["Executor"]


@runtime_checkable
class Executor(Protocol):
    """Sends one permitted probe and returns what it saw."""

    async def execute(
        self, permit: Permit, ctx: ProbeContext, *, granted_at: datetime
    ) -> ProbeResult:
        """Send the probe ``permit`` allows, now; ``granted_at`` is the gate's budget grant.

        Cancelling the call stops the probe (wherever it runs) as soon as it can.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the executor is not used afterwards."""
        ...
