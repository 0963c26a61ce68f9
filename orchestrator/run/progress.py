"""The live figures of a run, for the progress display and ``rio run status``."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Progress"]


@dataclass
class Progress:
    """Live figures of a run, for the progress display and ``rio run status``."""

    planned: int = 0
    decided: int = 0
    permits: int = 0
    refusals: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: int = 0
    paused_targets: set[str] = field(default_factory=set)
    budget_per_s: int = 0
    started: float = field(default_factory=time.monotonic)
    _recent: deque[float] = field(default_factory=deque)

    def note_intent(self, cost: int) -> None:
        now = time.monotonic()
        for _ in range(cost):
            self._recent.append(now)

    def rate(self) -> float:
        """Connections in the last second."""
        cutoff = time.monotonic() - 1.0
        while self._recent and self._recent[0] < cutoff:
            self._recent.popleft()
        return float(len(self._recent))

    def eta(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if self.decided == 0 or elapsed <= 0:
            return None
        return (self.planned - self.decided) * elapsed / self.decided
