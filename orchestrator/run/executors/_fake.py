"""A scripted executor for runner tests: records every permit, answers without a network."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from probes.base import Permit, ProbeContext, ProbeResult

__all__ = ["FakeExecutor", "Sent"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Sent:
    """One permit the fake was asked to send, with the grant and the context it came with."""

    permit: Permit
    ctx: ProbeContext
    granted_at: datetime


class FakeExecutor:
    """Answers each permit with ``answer(permit)`` (default: ``ok``, nothing seen).

    ``hold`` makes every call wait on an event the test releases, so kills and crashes can be
    placed exactly between send and answer, without timing races.
    """

    def __init__(
        self,
        answer: Callable[[Permit], ProbeResult] | None = None,
        *,
        hold: asyncio.Event | None = None,
    ) -> None:
        self.sent: list[Sent] = []
        self.cancelled: list[Permit] = []
        self.closed = False
        self._answer = answer or (
            lambda p: ProbeResult(probe=p.probe, ip=p.ip, outcome="ok", connections=1)
        )
        self._hold = hold

    async def execute(
        self, permit: Permit, ctx: ProbeContext, *, granted_at: datetime
    ) -> ProbeResult:
        self.sent.append(Sent(permit=permit, ctx=ctx, granted_at=granted_at))
        try:
            if self._hold is not None:
                await self._hold.wait()
        except asyncio.CancelledError:
            self.cancelled.append(permit)
            raise
        return self._answer(permit)

    async def aclose(self) -> None:
        self.closed = True
