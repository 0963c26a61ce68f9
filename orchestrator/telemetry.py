"""What this process measures while it runs probes, for ``/metrics``: the rate-budget waits.

A budget wait happens inside one process (the one whose runner asks the budget), so it is
measured there: :class:`BudgetWaits` counts the probes waiting now and how long every
acquisition waited. Each opened home (:class:`~orchestrator.context.Rio`) holds one; the
composition root (:func:`orchestrator.app.budget_for`) hands it to every notice's budget, and
``rio serve --api`` serves the same home the scheduler runs its runs with, so its ``/metrics``
shows the waits of the runs it executes. Like any Prometheus counter, the totals start again at
zero when the process does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["BudgetWaitFigures", "BudgetWaits", "Telemetry"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetWaitFigures:
    """A reading of :class:`BudgetWaits`.

    Attributes:
        waiting: probes waiting for budget right now.
        acquisitions: budget acquisitions finished (granted or not).
        waited: acquisitions that had to wait (longer than :data:`BudgetWaits.WAITED`).
        seconds: seconds all finished acquisitions waited, summed.
    """

    waiting: int
    acquisitions: int
    waited: int
    seconds: float


@dataclass
class BudgetWaits:
    """Probes waiting for rate budget now, and the waits so far (thread-safe: runs execute in
    the scheduler's threads while the API reads)."""

    WAITED = 0.001
    """seconds: a shorter acquisition is not counted as a wait (the budget does not sleep
    that short)."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiting: int = 0
    _acquisitions: int = 0
    _waited: int = 0
    _seconds: float = 0.0

    def started(self) -> None:
        """A probe starts asking the budget."""
        with self._lock:
            self._waiting += 1

    def finished(self, seconds: float) -> None:
        """That probe's acquisition ended after ``seconds`` (granted or not)."""
        with self._lock:
            self._waiting -= 1
            self._acquisitions += 1
            if seconds > self.WAITED:
                self._waited += 1
            self._seconds += max(0.0, seconds)

    def read(self) -> BudgetWaitFigures:
        with self._lock:
            return BudgetWaitFigures(
                waiting=self._waiting,
                acquisitions=self._acquisitions,
                waited=self._waited,
                seconds=self._seconds,
            )


@dataclass
class Telemetry:
    """Everything this process measures (one per opened home)."""

    budget_waits: BudgetWaits = field(default_factory=BudgetWaits)
