"""A rate budget that reports its waits: how many probes wait for budget now, and how long
each acquisition waited (:class:`~orchestrator.telemetry.BudgetWaits`, for ``/metrics``).

The budget itself is unchanged: :meth:`MeteredBudget.acquire` counts around the one call to
:meth:`RateBudget.acquire`, whose :attr:`Grant.waited` is the wait.
"""

from __future__ import annotations

from orchestrator.gate.budget import BudgetLimits, Grant, RateBudget
from orchestrator.telemetry import BudgetWaits

__all__ = ["MeteredBudget"]


class MeteredBudget(RateBudget):
    """:class:`RateBudget` counting its waits into ``waits``."""

    def __init__(
        self,
        limits: BudgetLimits,
        *,
        waits: BudgetWaits,
        storage_url: str = "memory://",
        namespace: str = "rio",
        hold_seconds: float = 0.0,
    ) -> None:
        super().__init__(
            limits, storage_url=storage_url, namespace=namespace, hold_seconds=hold_seconds
        )
        self._waits = waits

    async def acquire(self, ip: str, notice_id: str, *, cost: int = 1, wait_until: float) -> Grant:
        """As :meth:`RateBudget.acquire`; the probe counts as waiting until it returns."""
        self._waits.started()
        waited = 0.0
        try:
            grant = await super().acquire(ip, notice_id, cost=cost, wait_until=wait_until)
            waited = grant.waited
            return grant
        finally:
            self._waits.finished(waited)
