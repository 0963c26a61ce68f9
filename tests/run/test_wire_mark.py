"""A probe's send time (the outcome's ``sent_at``) is its first wire event on the gate's clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orchestrator.gate.budget import BudgetLimits, RateBudget
from orchestrator.run.wire import WireMark
from tests.support.virtual_time import run_virtual

LIMITS = BudgetLimits(per_ip=1, per_network=10, per_notice=10, global_=10)
AT = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def test_sent_at_counts_from_the_admission_not_from_an_earlier_grant_stamp() -> None:
    # The pacer stamped the grant 0.3 s before its waiter was admitted (a busy loop); the
    # probe connects 0.01 s after the admission. sent_at is admission + 0.01 s: counting
    # from the stamp would put the send 0.3 s later than it was.
    async def scenario() -> tuple[datetime, float]:
        budget = RateBudget(LIMITS)
        loop = asyncio.get_running_loop()
        try:
            grant = await budget.acquire("127.0.1.1", "N-1", wait_until=loop.time() + 10)
            assert grant.at is not None
            await asyncio.sleep(0.3)
            mark = WireMark(budget, ip="127.0.1.1", notice_id="N-1", cost=1, stamp=grant.at, at=AT)
            await asyncio.sleep(0.01)
            mark()
            assert mark.first is not None
            return mark.sent_at, mark.first - grant.at
        finally:
            await budget.close()

    sent_at, after_stamp = run_virtual(scenario())
    assert abs((sent_at - AT).total_seconds() - 0.01) < 1e-6
    assert abs(after_stamp - 0.31) < 1e-6


def test_sent_at_is_the_admission_when_nothing_was_reported_on_the_wire() -> None:
    async def scenario() -> datetime:
        budget = RateBudget(LIMITS)
        try:
            mark = WireMark(budget, ip="127.0.1.1", notice_id="N-1", cost=1, stamp=0.0, at=AT)
            await asyncio.sleep(0.5)
            mark(end=True)
            return mark.sent_at
        finally:
            await budget.close()

    assert run_virtual(scenario()) == AT
