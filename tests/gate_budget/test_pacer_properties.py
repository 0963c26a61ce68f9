"""The pacer on a fake clock: grants (send times) are exact, never over and never idle.

Each scenario runs on :class:`tests.support.virtual_time.VirtualTimeLoop`: ``loop.time()`` is
virtual, so the properties are asserted on exact send times, never on the wall clock.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.gate.budget import _GUARD_MARGIN, _SPREAD, _WINDOW, BudgetLimits, RateBudget
from tests.support.virtual_time import run_virtual

IPS = ("127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.2.1", "127.0.2.2")
FOREVER = 1e9

Request = tuple[int, int, float]
"""(index into IPS, cost, arrival offset in seconds)"""


async def _grants(limits: BudgetLimits, requests: list[Request]) -> list[tuple[float, str, int]]:
    budget = RateBudget(limits)
    loop = asyncio.get_running_loop()
    start = loop.time()
    out: list[tuple[float, str, int]] = []

    async def one(ip: str, cost: int, offset: float) -> None:
        await asyncio.sleep(offset)
        grant = await budget.acquire(ip, "N-1", cost=cost, wait_until=loop.time() + FOREVER)
        assert grant.granted and grant.at is not None, grant
        assert grant.at == loop.time()  # stamped and returned with no await in between
        out.append((grant.at - start, ip, cost))

    try:
        await asyncio.gather(*(one(IPS[i], cost, offset) for i, cost, offset in requests))
    finally:
        await budget.close()
    return out


def _keys(ip: str, limits: BudgetLimits) -> list[tuple[str, int]]:
    net = str(ipaddress.ip_network(f"{ip}/{limits.network_prefix_v4}", strict=False))
    return [
        (f"ip:{ip}", limits.per_ip),
        (f"net:{net}", limits.per_network),
        ("notice", limits.per_notice),
        ("global", limits.global_),
    ]


def _overshoots(grants: list[tuple[float, str, int]], limits: BudgetLimits) -> list[str]:
    """(budget key) whose units inside some closed one-second window exceed its limit."""
    series: dict[tuple[str, int], list[float]] = defaultdict(list)
    for at, ip, cost in grants:
        for key in _keys(ip, limits):
            series[key].extend([at] * cost)
    found = []
    for (name, limit), times in series.items():
        times.sort()
        for i in range(len(times) - limit):
            if times[i + limit] - times[i] <= _WINDOW:
                found.append(f"{name}: {limit + 1} units within {times[i + limit] - times[i]:.4f}s")
    return found


limits_st = st.builds(
    BudgetLimits,
    per_ip=st.integers(2, 4),
    per_network=st.integers(2, 6),
    per_notice=st.integers(2, 8),
    global_=st.integers(2, 8),
)
requests_st = st.lists(
    st.tuples(st.integers(0, len(IPS) - 1), st.integers(1, 2), st.floats(0.0, 3.0)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, database=None)
@given(limits=limits_st, requests=requests_st)
def test_send_times_never_put_more_than_a_budget_into_one_second(
    limits: BudgetLimits, requests: list[Request]
) -> None:
    grants = run_virtual(_grants(limits, requests))
    assert len(grants) == len(requests)  # a budget refusal means wait: nothing is dropped
    assert _overshoots(grants, limits) == []


@settings(max_examples=30, deadline=None, database=None)
@given(per_ip=st.integers(1, 5), ips=st.integers(1, len(IPS)), rounds=st.integers(2, 6))
def test_a_saturated_target_is_released_spread_once_per_window_plus_guard(
    per_ip: int, ips: int, rounds: int
) -> None:
    # Only the per-IP budget binds; every IP has its whole demand queued from the start.
    limits = BudgetLimits(per_ip=per_ip, per_network=1000, per_notice=1000, global_=1000)
    requests = [(i, 1, 0.0) for i in range(ips) for _ in range(per_ip * rounds)]
    grants = run_virtual(_grants(limits, requests))
    by_ip: dict[str, list[float]] = defaultdict(list)
    for at, ip, _ in grants:
        by_ip[ip].append(at)
    gap = _WINDOW + _GUARD_MARGIN
    spacing = _WINDOW / (per_ip * _SPREAD)
    for times in by_ip.values():
        times.sort()
        # A window's units go spread over a quarter of it, each one exactly one window + guard
        # after the unit it replaces.
        expected = [r * gap + j * spacing for r in range(rounds) for j in range(per_ip)]
        assert all(abs(a - b) < 1e-6 for a, b in zip(times, expected, strict=True)), times


@settings(max_examples=30, deadline=None, database=None)
@given(ips=st.integers(2, len(IPS)), rounds=st.integers(2, 5))
def test_when_the_global_budget_binds_every_release_is_used(ips: int, rounds: int) -> None:
    # Global = ips units/s, per-IP 1/s: both bind; the pacer must keep the global window full.
    limits = BudgetLimits(per_ip=1, per_network=1000, per_notice=1000, global_=ips)
    requests = [(i, 1, 0.0) for i in range(ips) for _ in range(rounds)]
    grants = run_virtual(_grants(limits, requests))
    last = max(at for at, _, _ in grants)
    spread = (ips - 1) * _WINDOW / (ips * _SPREAD)
    assert abs(last - (rounds - 1) * (_WINDOW + _GUARD_MARGIN) - spread) < 1e-6
    assert _overshoots(grants, limits) == []


@settings(max_examples=30, deadline=None, database=None)
@given(
    ips=st.integers(1, len(IPS)),
    rounds=st.integers(2, 5),
    answers=st.lists(st.floats(0.0, 0.3), min_size=len(IPS), max_size=len(IPS)),
)
def test_a_saturated_target_gets_its_next_grant_a_window_after_its_answer(
    ips: int, rounds: int, answers: list[float]
) -> None:
    # Fill: demand above supply, every request queued ahead; each probe's answer is in
    # ``answers[ip]`` after its grant and its units move there (the runner's end restamp). The
    # pacer adds nothing of its own: each next grant is exactly window + guard after the answer.
    limits = BudgetLimits(per_ip=1, per_network=1000, per_notice=1000, global_=1000)

    async def scenario() -> dict[str, list[tuple[float, float]]]:
        budget = RateBudget(limits)
        loop = asyncio.get_running_loop()
        seen: dict[str, list[tuple[float, float]]] = defaultdict(list)

        async def one(i: int) -> None:
            grant = await budget.acquire(IPS[i], "N-1", wait_until=loop.time() + FOREVER)
            assert grant.at is not None
            await asyncio.sleep(answers[i])
            end = loop.time()
            budget.restamp(IPS[i], "N-1", cost=1, old=grant.at, new=end)
            seen[IPS[i]].append((grant.at, end))

        try:
            await asyncio.gather(*(one(i) for i in range(ips) for _ in range(rounds)))
        finally:
            await budget.close()
        return seen

    for pairs in run_virtual(scenario()).values():
        pairs.sort()
        assert len(pairs) == rounds
        for (_, end), (grant, _) in itertools.pairwise(pairs):
            assert abs(grant - (end + _WINDOW + _GUARD_MARGIN)) < 1e-6, pairs


async def _wire_times(
    limits: BudgetLimits, requests: list[Request], delays: list[float], *, traced: bool = False
) -> list[tuple[float, str, int]]:
    """Each grant's probe reaches the wire ``delay`` after its grant and restamps its units
    (``traced``: one send per unit, ``delay`` apart, reported together as a tool traced them)."""
    budget = RateBudget(limits)
    loop = asyncio.get_running_loop()
    start = loop.time()
    out: list[tuple[float, str, int]] = []

    async def one(ip: str, cost: int, offset: float, delay: float) -> None:
        await asyncio.sleep(offset)
        grant = await budget.acquire(ip, "N-1", cost=cost, wait_until=loop.time() + FOREVER)
        assert grant.at is not None
        if traced:
            sends = []
            for _ in range(cost):
                await asyncio.sleep(delay)
                sends.append(loop.time())
            assert budget.restamp(ip, "N-1", cost=cost, old=grant.at, new=sends) == sends[-1]
            out.extend((t - start, ip, 1) for t in sends)
            return
        await asyncio.sleep(delay)
        wire = loop.time()
        assert budget.restamp(ip, "N-1", cost=cost, old=grant.at, new=wire) == wire
        out.append((wire - start, ip, cost))

    try:
        await asyncio.gather(
            *(
                one(IPS[i], cost, offset, delay)
                for (i, cost, offset), delay in zip(requests, delays, strict=False)
            )
        )
    finally:
        await budget.close()
    return out


@settings(max_examples=60, deadline=None, database=None)
@given(
    limits=limits_st,
    requests=requests_st,
    delays=st.lists(st.floats(0.0, 0.5), min_size=40, max_size=40),
)
def test_wire_times_never_put_more_than_a_budget_into_one_second(
    limits: BudgetLimits, requests: list[Request], delays: list[float]
) -> None:
    # The sends leave later than their grants, each by its own delay (a burst the event loop
    # serves one after another): counted where they went out, no budget is ever over.
    sends = run_virtual(_wire_times(limits, requests, delays))
    assert len(sends) == len(requests)
    assert _overshoots(sends, limits) == []


@settings(max_examples=60, deadline=None, database=None)
@given(
    limits=limits_st,
    requests=requests_st,
    delays=st.lists(st.floats(0.0, 0.4), min_size=40, max_size=40),
)
def test_traced_sends_never_put_more_than_a_budget_into_one_second(
    limits: BudgetLimits, requests: list[Request], delays: list[float]
) -> None:
    # As an nmap batch reports them: each unit its own send, the grant's units moved to them.
    sends = run_virtual(_wire_times(limits, requests, delays, traced=True))
    assert sum(cost for _, _, cost in sends) == sum(cost for _, cost, _ in requests)
    assert _overshoots(sends, limits) == []


def test_without_the_restamp_late_sends_do_overshoot_at_the_target() -> None:
    # The reason restamp exists: per-IP 1/s, the first send leaves 0.2 s after its grant, the
    # second at once. Counted at their grants they are a window apart; on the wire they are not.
    limits = BudgetLimits(per_ip=1, per_network=10, per_notice=10, global_=10)

    async def scenario(restamp: bool) -> list[float]:
        budget = RateBudget(limits)
        loop = asyncio.get_running_loop()
        sent: list[float] = []
        try:
            first = await budget.acquire(IPS[0], "N-1", wait_until=loop.time() + FOREVER)
            assert first.at is not None
            await asyncio.sleep(0.2)
            sent.append(loop.time())
            if restamp:
                budget.restamp(IPS[0], "N-1", cost=1, old=first.at, new=loop.time())
            second = await budget.acquire(IPS[0], "N-1", wait_until=loop.time() + FOREVER)
            assert second.at is not None
            sent.append(second.at)
        finally:
            await budget.close()
        return sent

    late = run_virtual(scenario(False))
    assert late[1] - late[0] < _WINDOW
    kept = run_virtual(scenario(True))
    assert kept[1] - kept[0] >= _WINDOW + _GUARD_MARGIN - 1e-9


async def _answered_arrivals(
    limits: BudgetLimits,
    requests: list[Request],
    probes: list[tuple[float, float, float]],
) -> tuple[list[tuple[float, str, int]], list[tuple[str, float, float, float]]]:
    """Each grant's probe sends ``d1`` after its grant and has its answer ``d2`` after that,
    both restamped as the runner's WireMark does (the answer with ``answered``). The target
    received the request at some moment between the send and the answer (``f`` of the way).

    Returns:
        The arrivals at the target, and per probe (ip, grant, send, answer).
    """
    budget = RateBudget(limits)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals: list[tuple[float, str, int]] = []
    rounds: list[tuple[str, float, float, float]] = []

    async def one(ip: str, cost: int, offset: float, d1: float, d2: float, f: float) -> None:
        await asyncio.sleep(offset)
        grant = await budget.acquire(ip, "N-1", cost=cost, wait_until=loop.time() + FOREVER)
        assert grant.at is not None
        await asyncio.sleep(d1)
        send = loop.time()
        stamp = budget.restamp(ip, "N-1", cost=cost, old=grant.at, new=send)
        await asyncio.sleep(d2)
        answer = loop.time()
        budget.restamp(ip, "N-1", cost=cost, old=stamp, new=answer, answered=True)
        # Strictly before its answer: the target answers only what it has received.
        arrival = send + f * max(0.0, answer - send - 1e-6)
        arrivals.append((arrival - start, ip, cost))
        rounds.append((ip, grant.at - start, send - start, answer - start))

    try:
        await asyncio.gather(
            *(
                one(IPS[i], cost, offset, d1, d2, f)
                for (i, cost, offset), (d1, d2, f) in zip(requests, probes, strict=False)
            )
        )
    finally:
        await budget.close()
    return arrivals, rounds


probes_st = st.lists(
    st.tuples(st.floats(0.0, 0.2), st.floats(0.0, 0.3), st.floats(0.0, 1.0)),
    min_size=40,
    max_size=40,
)


@settings(max_examples=60, deadline=None, database=None)
@given(limits=limits_st, requests=requests_st, probes=probes_st)
def test_answered_probes_never_put_more_than_a_budget_into_one_second_at_the_target(
    limits: BudgetLimits, requests: list[Request], probes: list[tuple[float, float, float]]
) -> None:
    # Without the guard after an answer: wherever between its send and its answer the target
    # received each request, no one-second window (closed) at the target holds more than a
    # budget.
    arrivals, _ = run_virtual(_answered_arrivals(limits, requests, probes))
    assert len(arrivals) == len(requests)
    assert _overshoots(arrivals, limits) == []


@settings(max_examples=30, deadline=None, database=None)
@given(rounds=st.integers(2, 5), probe=st.tuples(st.floats(0.0, 0.2), st.floats(0.0, 0.3)))
def test_a_saturated_target_gets_its_next_grant_a_window_after_its_answer_without_the_guard(
    rounds: int, probe: tuple[float, float]
) -> None:
    # One target, demand above supply: each next grant is a window after the previous answer,
    # or window + guard after its send when the answer came within the guard of it.
    limits = BudgetLimits(per_ip=1, per_network=1000, per_notice=1000, global_=1000)
    d1, d2 = probe
    requests = [(0, 1, 0.0)] * rounds
    _, seen = run_virtual(_answered_arrivals(limits, requests, [(d1, d2, 0.0)] * rounds))
    seen.sort(key=lambda r: r[1])
    for (_, _, send, answer), (_, grant, _, _) in itertools.pairwise(seen):
        expected = max(answer + _WINDOW, send + _WINDOW + _GUARD_MARGIN)
        assert abs(grant - expected) < 1e-6, seen
