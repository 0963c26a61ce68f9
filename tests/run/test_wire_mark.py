"""A probe's send time (the outcome's ``sent_at``) is its first wire event on the gate's clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orchestrator.gate.budget import _GUARD_MARGIN, _WINDOW, BudgetLimits, RateBudget
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


def _next_grant_after(events: list[tuple[float, bool]], final_end: float) -> float:
    """When the next per-IP grant comes, after a probe granted at 0 reported ``events``
    (loop times, ``end``) and the runner's own end call at ``final_end``."""

    async def scenario() -> float:
        budget = RateBudget(LIMITS)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            grant = await budget.acquire("127.0.1.1", "N-1", wait_until=t0 + 10)
            assert grant.at is not None
            mark = WireMark(budget, ip="127.0.1.1", notice_id="N-1", cost=1, stamp=grant.at, at=AT)
            for at, end in [*events, (final_end, True)]:
                await asyncio.sleep(t0 + at - loop.time())
                mark(end=end)
            nxt = await budget.acquire("127.0.1.1", "N-1", wait_until=t0 + 10)
            assert nxt.at is not None
            return nxt.at - t0
        finally:
            await budget.close()

    return run_virtual(scenario())


def test_the_next_grant_counts_from_the_answer_not_from_the_probes_tail() -> None:
    # Connected at 0.01, request at 0.02, its answer's head at 0.05; the probe then read and
    # closed until 0.4. The target had everything at 0.05: the next grant comes a window after
    # that (no guard: the answer proves the target had the request), not after 0.4.
    nxt = _next_grant_after([(0.01, False), (0.02, False), (0.05, True)], final_end=0.4)
    assert abs(nxt - 1.05) < 1e-6


def test_a_send_after_an_answer_moves_the_units_again() -> None:
    # A second request at 0.1 (after the first answer at 0.05), no answer reported for it:
    # only the runner's end at 0.4 proves the target had it.
    nxt = _next_grant_after([(0.02, False), (0.05, True), (0.1, False)], final_end=0.4)
    assert abs(nxt - 1.4) < 1e-6


def test_a_probe_that_reports_no_answer_is_counted_from_its_end() -> None:
    nxt = _next_grant_after([(0.01, False)], final_end=0.3)
    assert abs(nxt - 1.3) < 1e-6


def test_an_answer_within_the_guard_of_its_send_keeps_the_guard_after_the_send() -> None:
    # Request at 0.02, answer 1 ms later: the send's own guard (3 ms) is the later bound.
    nxt = _next_grant_after([(0.02, False), (0.021, True)], final_end=0.4)
    assert abs(nxt - (0.02 + _WINDOW + _GUARD_MARGIN)) < 1e-6
