"""Figures 1, 2 and 8: whole runs through the gate against the loopback farm.

* 1: a run whose demand exceeds its budget. Rates are chosen so that the per-IP budgets and the
  global budget bind at the same time (``global = targets x per_ip``), so the run can only keep
  both full if the budget serves every IP evenly. Achieved rates and the largest one-second
  window are replayed from the run's intent leaves (``at``, ``ip``, ``cost``).
* 2: the same run's wall time over its lower bound (planned cost / global rate).
* 8: a run with fragile targets: how long from a target's first 429 to the breaker's cut of its
  rate (the ``health`` leaf, logged right after ``budget.set_factor``), and how many requests the
  target still received while it was paused.
"""

from __future__ import annotations

import asyncio
import bisect
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench._common import Figure, Settings
from bench._farmproc import FarmProcess
from bench._home import BenchHome, policy_yaml, scope_yaml
from orchestrator.demo.farm import FarmSpec
from orchestrator.ledger.leaves import Leaf
from orchestrator.ledger.log import read_leaves
from orchestrator.run.runner import Runner

__all__ = [
    "Event",
    "RunSample",
    "fidelity_run",
    "fragile_run",
    "max_window",
    "mean_fill",
    "run_figures",
]

_FIDELITY_NET = "127.0.30.0/26"
_FRAGILE_NET = "127.0.31.0/28"
_FRAGILE_DELAY = 0.2
"""seconds a fragile farm target waits before it answers 429 (FarmSpec's documented 200 ms)"""
_SAMPLE_STEP = 0.01


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """One granted probe replayed from an intent leaf: when (epoch seconds), where, how much."""

    at: float
    ip: str
    cost: int


def max_window(events: Sequence[Event], width: float = 1.0) -> int:
    """The largest total cost inside any half-open window ``[t, t + width)``.

    The maximum is reached by a window that starts at an event, so only those are tried.
    """
    ordered = sorted(events, key=lambda e: e.at)
    best = total = 0
    end = 0
    for start, first in enumerate(ordered):
        if start > 0:
            total -= ordered[start - 1].cost
        while end < len(ordered) and ordered[end].at < first.at + width:
            total += ordered[end].cost
            end += 1
        best = max(best, total)
    return best


def mean_fill(events: Sequence[Event], width: float = 1.0) -> float:
    """The mean total cost of windows ``[t, t + width)`` for ``t`` every 10 ms from the first
    event to ``width`` before the last (the span in which the run still had demand)."""
    ordered = sorted(events, key=lambda e: e.at)
    if not ordered:
        return 0.0
    first, last = ordered[0].at, ordered[-1].at
    if last - first <= width:
        return float(sum(e.cost for e in ordered))
    times = [e.at for e in ordered]
    prefix = [0]
    for e in ordered:
        prefix.append(prefix[-1] + e.cost)
    sums = []
    t = first
    while t <= last - width:
        lo = bisect.bisect_left(times, t)
        hi = bisect.bisect_left(times, t + width)
        sums.append(prefix[hi] - prefix[lo])
        t += _SAMPLE_STEP
    return statistics.fmean(sums)


def _events(leaves: Sequence[Leaf]) -> list[Event]:
    return [
        Event(at=leaf.instant.timestamp(), ip=str(leaf.data["ip"]), cost=int(leaf.data["cost"]))
        for leaf in leaves
        if leaf.kind == "intent"
    ]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSample:
    """What one fidelity run measured."""

    per_ip_fill: float
    """median over IPs of (mean one-second window fill / per-IP budget)"""
    worst_ip_fill: float
    global_fill: float
    max_window_ratio: float
    """largest one-second window / its budget, the worse of per-IP and global"""
    completion_ratio: float
    seconds: float
    bound: float
    intents: int
    outcomes: dict[str, int]


def _http_probes(port: int, *, path_count: int = 1) -> str:
    paths = ", ".join(f"'/p{i}'" for i in range(path_count)) if path_count > 1 else "'/'"
    return (
        f"{{http: {{ports: [{port}], https_ports: [], paths: [{paths}], method: GET, "
        "timeout: 5s}}"
    )


def fidelity_run(*, targets: int, per_ip: int, urls: int, global_factor: float = 1.0) -> RunSample:
    """One budget-bound run: ``targets`` farm targets, each with ``urls + 1`` http probes.

    Args:
        targets: farm targets (at most 62, the hosts of the bench's /26).
        per_ip: per-IP budget; the global budget is ``targets * per_ip * global_factor``.
        urls: announced URLs per target besides the cidr's own http probe (the demand).
        global_factor: 1.0 makes per-IP and global bind together; above 1 only per-IP binds.
    """
    spec = FarmSpec(
        network=_FIDELITY_NET,
        count=targets,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=300.0,
    )
    with FarmProcess(spec) as farm, BenchHome() as home:
        port = farm.http_port
        announced = (
            [f"{{cidr: {_FIDELITY_NET}}}"]
            if targets == 62
            else [f"{{ip: {ip}}}" for ip in farm.targets]
        )
        # Interleaved by IP so the plan's stream reaches every target early (round-robin too).
        announced += [
            f"{{url: 'http://{ip}:{port}/u{r}'}}" for r in range(urls) for ip in farm.targets
        ]
        limit = int(targets * per_ip * global_factor)
        policy = policy_yaml(
            per_ip=per_ip,
            per_network=limit,
            per_notice=limit,
            global_=limit,
            concurrency=min(1024, 4 * targets * per_ip),
            probes=_http_probes(port),
        )
        notice = home.notice(scope_yaml(announced), policy)
        run_id = home.run(notice.id)
        runner = Runner(home.opened, run_id)
        t0 = time.monotonic()
        asyncio.run(runner.execute())
        seconds = time.monotonic() - t0
        leaves = list(read_leaves(home.opened.db, run_id))
    events = _events(leaves)
    planned_cost = sum(e.cost for e in events)
    by_ip: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_ip[e.ip].append(e)
    fills = [mean_fill(v) / per_ip for v in by_ip.values()]
    worst_window = max(
        max(max_window(v) / per_ip for v in by_ip.values()), max_window(events) / limit
    )
    bound = max(planned_cost / limit, max(sum(e.cost for e in v) for v in by_ip.values()) / per_ip)
    return RunSample(
        per_ip_fill=statistics.median(fills),
        worst_ip_fill=min(fills),
        global_fill=mean_fill(events) / limit,
        max_window_ratio=worst_window,
        completion_ratio=seconds / bound,
        seconds=seconds,
        bound=bound,
        intents=len(events),
        outcomes=dict(runner.progress.outcomes),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class FragileSample:
    """What one fragile-target run measured, per fragile target that answered 429."""

    cut_delays: tuple[float, ...]
    """seconds from the first 429 leaving the farm to the health leaf cutting the rate"""
    granted_paused: int
    """intents (permits) logged for fragile targets while a pause was in force"""
    arrived_paused: int
    """requests the farm saw at fragile targets while a pause was in force (includes requests
    sent just before the pause that the farm read after it)"""
    first_pause: float


def _first_429(arrivals: Sequence[float], rps: float) -> float | None:
    """The arrival time of the first request the farm answered 429 (its rule, replayed)."""
    for i, t in enumerate(arrivals):
        recent = sum(1 for u in arrivals[: i + 1] if u > t - 1.0)
        if recent > rps:
            return t
    return None


def fragile_run(*, targets: int, fragile: int, per_ip: int, urls: int) -> FragileSample:
    """A run where ``fragile`` of ``targets`` answer 429 above 5 requests/s; per-IP ``per_ip``."""
    rps = 5.0
    spec = FarmSpec(
        network=_FRAGILE_NET,
        count=targets,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        fragile=tuple(range(1, fragile + 1)),
        fragile_rps=rps,
        dns_ip=None,
        lifetime=300.0,
    )
    with FarmProcess(spec) as farm, BenchHome() as home:
        port = farm.http_port
        announced = [f"{{ip: {ip}}}" for ip in farm.targets]
        announced += [
            f"{{url: 'http://{ip}:{port}/u{r}'}}" for r in range(urls) for ip in farm.targets
        ]
        limit = targets * per_ip
        policy = policy_yaml(
            per_ip=per_ip,
            per_network=limit,
            per_notice=limit,
            global_=limit,
            concurrency=min(1024, 4 * limit),
            probes=_http_probes(port),
            health="{consecutive_failures: 3, latency_factor: 50, cooldown: 2s}",
        )
        notice = home.notice(scope_yaml(announced), policy)
        run_id = home.run(notice.id)
        runner = Runner(home.opened, run_id)
        # Farm arrival times are monotonic, leaves carry wall-clock instants: one offset maps.
        offset = time.time() - time.monotonic()
        asyncio.run(runner.execute())
        leaves = list(read_leaves(home.opened.db, run_id))
        every = farm.request_times()
        arrivals = {ip: every[ip] for ip in farm.targets[:fragile]}
    delays: list[float] = []
    granted = arrived = 0
    first_pause = 0.0
    for ip, times in arrivals.items():
        first = _first_429(times, rps)
        cuts = [
            leaf
            for leaf in leaves
            if leaf.kind == "health" and leaf.data["ip"] == ip and leaf.data["state"] == "paused"
        ]
        if first is None or not cuts:
            continue
        cut = cuts[0].instant.timestamp() - offset
        delays.append(cut - (first + _FRAGILE_DELAY))
        # Pauses on the monotonic clock; every 429 in flight logs one, so they overlap.
        # ``until`` is on the breaker's monotonic clock, the same as the farm's.
        pauses = [
            (leaf.instant.timestamp() - offset, float(leaf.data["until"] or 0.0)) for leaf in cuts
        ]
        first_pause = max(first_pause, pauses[0][1] - pauses[0][0])

        def paused(t: float, spans: list[tuple[float, float]] = pauses) -> bool:
            return any(start < t < until for start, until in spans)

        granted += sum(
            1
            for leaf in leaves
            if leaf.kind == "intent"
            and leaf.data["ip"] == ip
            and paused(leaf.instant.timestamp() - offset)
        )
        arrived += sum(1 for t in times if paused(t))
    return FragileSample(
        cut_delays=tuple(delays),
        granted_paused=granted,
        arrived_paused=arrived,
        first_pause=first_pause,
    )


def run_figures(settings: Settings) -> list[Figure]:
    """Figures 1a-1c, 2 and 8a-8b."""
    targets = 62
    per_ip = 1
    urls = settings.pick(4, 12)
    samples = [
        fidelity_run(targets=targets, per_ip=per_ip, urls=urls) for _ in range(settings.repeats)
    ]
    last = samples[-1]
    where = (
        f"{targets} targets in {_FIDELITY_NET}, per-IP {per_ip}/s, global {targets * per_ip}/s, "
        f"{last.intents} probes"
    )
    figures = [
        Figure(
            key="1a",
            name="run fidelity: achieved / allowed rate per IP",
            unit="ratio",
            samples=tuple(s.per_ip_fill for s in samples),
            op=">=",
            goal=0.98,
            detail=f"median over IPs; worst IP {min(s.worst_ip_fill for s in samples):.3f}; "
            + where,
        ),
        Figure(
            key="1b",
            name="run fidelity: achieved / allowed rate global",
            unit="ratio",
            samples=tuple(s.global_fill for s in samples),
            op=">=",
            goal=0.98,
            detail=where,
        ),
        Figure(
            key="1c",
            name="largest 1-s window / budget (per IP and global)",
            unit="ratio",
            samples=tuple(s.max_window_ratio for s in samples),
            op="<=",
            goal=1.0,
            detail="replayed from intent leaves (at, ip, cost); the worse of per-IP and global",
        ),
        Figure(
            key="2",
            name="completion time / lower bound",
            unit="ratio",
            samples=tuple(s.completion_ratio for s in samples),
            op="<=",
            goal=1.05,
            detail=f"run {statistics.median(s.seconds for s in samples):.2f} s, bound "
            f"{last.bound:.2f} s (planned cost / global rate); outcomes {last.outcomes}",
        ),
    ]
    fragile = [
        fragile_run(targets=8, fragile=2, per_ip=20, urls=settings.pick(12, 20))
        for _ in range(settings.repeats)
    ]
    delays = [d for f in fragile for d in f.cut_delays]
    figures.append(
        Figure(
            key="8a",
            name="first 429 -> rate cut (breaker -> set_factor)",
            unit="s",
            samples=tuple(statistics.median(f.cut_delays) for f in fragile if f.cut_delays),
            op="<=",
            goal=0.1,
            detail=f"{len(delays)} fragile targets (429 above 5 req/s, per-IP 20/s); worst "
            f"{max(delays, default=float('nan')):.3f} s; goal set by the bench (brief gave none)",
            skipped=None if delays else "no fragile target answered 429",
        )
    )
    figures.append(
        Figure(
            key="8b",
            name="probes granted to a paused target",
            unit="count",
            samples=tuple(float(f.granted_paused) for f in fragile),
            op="<=",
            goal=0.0,
            detail="intent leaves for fragile targets inside a pause (union of pause leaves); "
            f"farm saw {statistics.median(f.arrived_paused for f in fragile):.0f} requests in "
            f"pauses; pause {statistics.median(f.first_pause for f in fragile):.1f} s",
        )
    )
    return figures
