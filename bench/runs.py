"""Figures 1, 2 and 8: whole runs through the gate against the loopback farm.

* 1: a run whose demand exceeds its budget. Rates are chosen so that the per-IP budgets and the
  global budget bind at the same time (``global = targets x per_ip``), so the run can only keep
  both full if the budget serves every IP evenly. Achieved rates and the largest one-second
  window are measured **at the target**, from the farm's arrival times (1a, 1b, 1c), and beside
  them from the log's send times (the outcome leaves' ``sent_at``; 1a-log, 1c-log).
* 2: the same run's wall time over its lower bound: ``n`` units at ``r`` per sliding second
  need ``(n - r) / r`` seconds (the first ``r`` go at once), for the global budget and for the
  busiest IP, whichever is longer.
* 10: kill latency at the target: from the kill's commit to the last request arriving at the
  farm.
* 8: a run with fragile targets: how long from a target's first 429 to the breaker's cut of its
  rate (the ``health`` leaf, logged right after ``budget.set_factor``), and how many requests the
  target still received while it was paused.
"""

from __future__ import annotations

import asyncio
import bisect
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench._common import Figure, Settings, outcomes_text
from bench._farmproc import FarmProcess
from bench._home import BenchHome, policy_yaml, scope_yaml
from orchestrator.demo.farm import FarmSpec
from orchestrator.ledger.leaves import Leaf, parse_instant
from orchestrator.ledger.log import read_leaves
from orchestrator.run.runner import Runner
from orchestrator.run.runs import request_kill

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
_KILL_NET = "127.0.32.0/27"
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
    """Send times from the log: each outcome's ``sent_at`` with its intent's ip and cost."""
    intents = {leaf.seq: leaf.data for leaf in leaves if leaf.kind == "intent"}
    out = []
    for leaf in leaves:
        if leaf.kind != "outcome" or not leaf.data.get("sent_at"):
            continue
        intent = intents[int(leaf.data["intent"])]
        at = parse_instant(str(leaf.data["sent_at"])).timestamp()
        out.append(Event(at=at, ip=str(intent["ip"]), cost=int(intent["cost"])))
    return out


def _arrivals(times: dict[str, list[float]]) -> list[Event]:
    """Arrival times at the farm (one HTTP request = one unit)."""
    return [Event(at=t, ip=ip, cost=1) for ip, ts in times.items() for t in ts]


def _fills(events: Sequence[Event], per_ip: int, limit: int) -> tuple[list[float], float, float]:
    """Per-IP fills, global fill and the worst window ratio of one set of events."""
    by_ip: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_ip[e.ip].append(e)
    fills = [mean_fill(v) / per_ip for v in by_ip.values()]
    worst = max(max(max_window(v) / per_ip for v in by_ip.values()), max_window(events) / limit)
    return fills, mean_fill(events) / limit, worst


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSample:
    """What one fidelity run measured."""

    per_ip_fill: float
    """median over IPs of (mean one-second window fill / per-IP budget), at the target"""
    worst_ip_fill: float
    global_fill: float
    max_window_ratio: float
    """largest one-second window / its budget, the worse of per-IP and global, at the target"""
    log_per_ip_fill: float
    """the same from the log's send times"""
    log_max_window_ratio: float
    completion_ratio: float
    seconds: float
    bound: float
    intents: int
    outcomes: dict[str, int]


def _http_farm(network: str, targets: int, **fragile: Any) -> FarmSpec:
    """A farm of ``targets`` plain-HTTP targets (no TLS, TCP services or DNS)."""
    return FarmSpec(
        network=network,
        count=targets,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=300.0,
        **fragile,
    )


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
    with FarmProcess(_http_farm(_FIDELITY_NET, targets)) as farm, BenchHome() as home:
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
        arrived = _arrivals(farm.request_times())
    events = _events(leaves)
    planned_cost = sum(e.cost for e in events)
    fills, global_fill, worst_window = _fills(arrived, per_ip, limit)
    log_fills, _, log_worst = _fills(events, per_ip, limit)
    busiest = max(Counter(e.ip for e in events for _ in range(e.cost)).values())
    # n units at r per sliding second: the first r at once, then r per second.
    # (A demand within one window has a bound of 0 s; the floor keeps the ratio finite.)
    bound = max((planned_cost - limit) / limit, (busiest - per_ip) / per_ip, 1e-3)
    return RunSample(
        per_ip_fill=statistics.median(fills),
        worst_ip_fill=min(fills),
        global_fill=global_fill,
        max_window_ratio=worst_window,
        log_per_ip_fill=statistics.median(log_fills),
        log_max_window_ratio=log_worst,
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


def _http_run(
    home: BenchHome, farm: FarmProcess, *, per_ip: int, urls: int, health: str | None = None
) -> str:
    """A run over every farm target (its ip + ``urls`` URLs each), budgets all bound at once."""
    port = farm.http_port
    announced = [f"{{ip: {ip}}}" for ip in farm.targets]
    announced += [f"{{url: 'http://{ip}:{port}/u{r}'}}" for r in range(urls) for ip in farm.targets]
    limit = len(farm.targets) * per_ip
    extra = {"health": health} if health is not None else {}
    policy = policy_yaml(
        per_ip=per_ip,
        per_network=limit,
        per_notice=limit,
        global_=limit,
        concurrency=min(1024, 4 * limit),
        probes=_http_probes(port),
        **extra,
    )
    notice = home.notice(scope_yaml(announced), policy)
    return home.run(notice.id)


def fragile_run(*, targets: int, fragile: int, per_ip: int, urls: int) -> FragileSample:
    """A run where ``fragile`` of ``targets`` answer 429 above 5 requests/s; per-IP ``per_ip``."""
    rps = 5.0
    spec = _http_farm(_FRAGILE_NET, targets, fragile=tuple(range(1, fragile + 1)), fragile_rps=rps)
    with FarmProcess(spec) as farm, BenchHome() as home:
        health = "{consecutive_failures: 3, latency_factor: 50, cooldown: 2s}"
        run_id = _http_run(home, farm, per_ip=per_ip, urls=urls, health=health)
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


def kill_run(*, targets: int, per_ip: int, urls: int) -> float:
    """Seconds from a kill's commit to the last request arriving at the farm (0 if none)."""
    with FarmProcess(_http_farm(_KILL_NET, targets)) as farm, BenchHome() as home:
        run_id = _http_run(home, farm, per_ip=per_ip, urls=urls)
        runner = Runner(home.opened, run_id)
        committed: list[float] = []

        def kill() -> None:
            with home.opened.db.session() as s:
                request_kill(s, run_id, "bench", "kill latency", now=home.opened.clock.now())
            committed.append(time.monotonic())  # the session's commit has returned

        timer = threading.Timer(1.5, kill)
        timer.start()
        try:
            asyncio.run(runner.execute())
        finally:
            timer.cancel()
        times = [t for ts in farm.request_times().values() for t in ts]
    if not committed:
        raise RuntimeError("bench: the run ended before the kill; give it more demand")
    return max(0.0, max(times, default=committed[0]) - committed[0])


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
            name="fill per IP at the target: achieved / allowed rate",
            unit="ratio",
            samples=tuple(s.per_ip_fill for s in samples),
            op=">=",
            goal=0.99,
            detail=f"farm arrival times; median over IPs; worst IP "
            f"{min(s.worst_ip_fill for s in samples):.3f}; " + where,
        ),
        Figure(
            key="1a-log",
            name="fill per IP from the log's send times",
            unit="ratio",
            samples=tuple(s.log_per_ip_fill for s in samples),
            op=">=",
            goal=0.99,
            detail="outcome leaves' sent_at (the probe's first wire event, its grant if none)",
        ),
        Figure(
            key="1b",
            name="fill global at the target: achieved / allowed rate",
            unit="ratio",
            samples=tuple(s.global_fill for s in samples),
            op=">=",
            goal=0.99,
            detail="farm arrival times; " + where,
        ),
        Figure(
            key="1c",
            name="largest 1-s window / budget at the target (per IP and global)",
            unit="ratio",
            samples=tuple(s.max_window_ratio for s in samples),
            op="<=",
            goal=1.0,
            detail="farm arrival times (not the log), half-open windows [t, t+1); the worse of "
            f"per-IP and global; worst run {max(s.max_window_ratio for s in samples):.3f}",
        ),
        Figure(
            key="1c-log",
            name="largest 1-s window / budget from the log's send times",
            unit="ratio",
            samples=tuple(s.log_max_window_ratio for s in samples),
            op="<=",
            goal=1.0,
            detail="replayed from the outcome leaves' sent_at (what the offline audit checks)",
        ),
        Figure(
            key="2",
            name="completion time / lower bound",
            unit="ratio",
            samples=tuple(s.completion_ratio for s in samples),
            op="<=",
            goal=1.05,
            detail=f"run {statistics.median(s.seconds for s in samples):.2f} s, bound "
            f"{last.bound:.2f} s ((n - r) / r for n units at r per sliding second); "
            + outcomes_text(last.outcomes),
        ),
    ]
    kills = [
        kill_run(targets=16, per_ip=2, urls=settings.pick(8, 12)) for _ in range(settings.repeats)
    ]
    figures.append(
        Figure(
            key="10",
            name="kill committed -> last request at a listener",
            unit="s",
            samples=tuple(kills),
            op="<=",
            goal=0.3,
            detail="farm arrival times after the kill's commit (the commit rings the runner's "
            "bell, run/bell.py; its 0.25 s poll is the fallback); "
            f"worst {max(kills):.3f} s",
        )
    )
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
