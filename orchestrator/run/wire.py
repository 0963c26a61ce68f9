"""What a probe actually sent, as it sends: its budget units follow it onto the wire.

The gate stamps a grant immediately before the probe starts (:meth:`Gate.admit`), but the
probe's packets leave when the event loop gets to them. In a burst of grants (every per-IP
window opening at the same second) that is milliseconds later and varies, so two sends to one
target can arrive closer together than their stamps. A :class:`WireMark` is handed to the
probe as ``ProbeContext.on_wire``; each call moves the grant's units to that moment
(:meth:`RateBudget.restamp`), and its first call is the send time the outcome leaf records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from orchestrator.gate.budget import RateBudget

__all__ = ["WireMark"]


class WireMark:
    """The wire times of one admitted probe.

    Args:
        budget: the run's rate budget (the one that granted the units).
        ip: the permit's address.
        notice_id: the run's notice.
        cost: the units granted.
        stamp: the grant's stamp on the loop's clock (``Admission.stamp``).
        at: the admission's instant on the gate's clock (``Admission.at``). Make the mark at
            once, with no await since the admission: that instant is then the loop's now, and
            send times convert from there. (Not from ``stamp``: the pacer may stamp a grant a
            loop turn or more before its waiter resumes and is admitted.)
    """

    __slots__ = (
        "_anchor",
        "_answered",
        "_at",
        "_budget",
        "_cost",
        "_ip",
        "_loop",
        "_notice",
        "_stamp",
        "first",
    )

    def __init__(
        self,
        budget: RateBudget,
        *,
        ip: str,
        notice_id: str,
        cost: int,
        stamp: float,
        at: datetime,
    ) -> None:
        self._budget = budget
        self._ip = ip
        self._notice = notice_id
        self._cost = cost
        self._stamp = stamp
        self._at = at
        self._loop = asyncio.get_running_loop()
        self._anchor = self._loop.time()
        """the loop's time at ``at``"""
        self.first: float | None = None
        """the loop time of the first thing sent, ``None`` until the probe reports one"""
        self._answered = False
        """an answer came in after the last send: the units sit where the target had it all"""

    def __call__(self, *, end: bool = False) -> None:
        """Something went out now; ``end``: an answer to everything sent so far is in (the
        probe's own report of a response, or the runner's once the probe is over).

        The units move to each send, and to the first answer after it: by then the target has
        received all of it, so the next grant a window later cannot reach it within a window
        of this one. A later ``end`` with nothing sent in between moves nothing (the target's
        view is already covered), which keeps the probe's own tail (reading and closing)
        out of the target's budget.
        """
        if end and self._answered:
            return
        now = self._loop.time()
        if end:
            self._answered = True
        else:
            self._answered = False
            if self.first is None:
                self.first = now
        if now > self._stamp:
            self._stamp = self._budget.restamp(
                self._ip, self._notice, cost=self._cost, old=self._stamp, new=now, answered=end
            )

    def traced(self, times: Sequence[float]) -> None:
        """The probe's sends as its tool traced them (epoch seconds): the units move there."""
        offset = time.time() - self._loop.time()
        self._stamp = self._budget.restamp(
            self._ip,
            self._notice,
            cost=self._cost,
            old=self._stamp,
            new=[t - offset for t in times],
        )

    @property
    def sent_at(self) -> datetime:
        """The send time on the gate's clock: the first wire event, else the grant."""
        if self.first is None:
            return self._at
        return self._at + timedelta(seconds=max(0.0, self.first - self._anchor))
