"""1 vs 2 ``rio worker`` processes on a run that no budget holds back (issue #18).

``python -m bench.workers_scale [--hosts N] [--page a|wire] [--rounds R]``: Debian's nginx on
port 80 of every address of a loopback network of about N addresses, a Redis broker
(``RIO_TEST_WORKER_REDIS_URL``'s server, db 12), one http probe per address with budgets far
above what the run can reach, timed with one worker and with two (each ``--concurrency``, 16 by
default), alternating 1, 2, 1, 2 ... for ``--rounds`` rounds in this one process so that the
machine's other load falls on both alike; the median of each is compared.

Two pages: ``a`` is answered at once (the run is CPU-bound: runner, workers and nginx share
the machine's cores), ``wire`` is sent at 16 KiB/s and keeps each probe about half a second on
the wire, as a distant server does (the run is bound by the probes the workers hold in flight).
Prints, per run: its time, what nginx logged (arrivals, the largest one-second window against
the global budget), the CPU seconds the runner and the workers used; then the speed-up. Reuses
the worker tests' nginx and worker fixtures. ``--profile FILE`` writes a pyinstrument profile of
the runner's last 1-worker run (``pip install pyinstrument``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.integration.field.lab import claim_block
from tests.integration.workers.conftest import Nginx, _celery_home
from tests.run.conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
)
from tests.workers.conftest import WORKER_REDIS_URL


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    workers: int
    probes: int
    seconds: float
    arrivals: int
    window: int
    served: float
    """median seconds nginx took per request (its request_time)"""
    runner_cpu: float
    worker_cpu: float
    outcomes: dict[str, int]


def _max_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(coro: Coroutine[Any, Any, Any], profile: Path | None) -> None:
    if profile is None:
        asyncio.run(coro)
        return
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="disabled")
    profiler.start()
    try:
        asyncio.run(coro)
    finally:
        profiler.stop()
        profile.write_text(profiler.output_text(unicode=False, show_all=False))


def _one(args: argparse.Namespace, workers: int, profile: Path | None = None) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="rio-bench-workers-"))
    block = claim_block()
    prefix = 32 - (args.hosts + 1).bit_length()
    usable = min(254, 2 ** (32 - prefix) - 2)
    nginx = Nginx(
        block=block,
        ips=[block.ip(n) for n in range(1, usable + 1)],
        root=tmp / "ng",
        # Each listening address takes one of nginx's connections too.
        connections=4 * usable + 256,
    )
    homes = _celery_home(tmp, WORKER_REDIS_URL.rsplit("/", 1)[0] + "/12")
    ch = next(homes)
    try:
        nginx.start()
        names = [f"w{i}" for i in range(1, workers + 1)]
        procs = [ch.workers.start(n, concurrency=args.concurrency) for n in names]
        ch.workers.wait_ready(names)
        rates = (10, 10_000, 10_000, args.global_budget)
        doc = yaml.safe_load(policy_bytes(None, http_port=80, rates=rates))
        doc["probes"]["http"]["paths"] = [f"/{args.page}"]
        doc["probes"]["http"]["timeout"] = "10s"
        doc["probe_timeout"] = "20s"
        # Room for every worker slot: the policy's concurrency must not be what binds.
        doc["concurrency"] = 4 * args.concurrency
        now = now_utc()
        home = Home(settings=ch.settings, rio=ch.rio, path=ch.settings.home)
        notice = announce_notice(
            home,
            scope_bytes(f"{block.prefix}.0/{prefix}", [around(now)]),
            yaml.safe_dump(doc).encode(),
            at=now - timedelta(minutes=1),
        )
        runner = make_runner(home, new_run(home, notice))
        cpu_before = [_cpu(p.pid) for p in procs]
        runner_before = time.process_time()
        started = time.monotonic()
        _run(runner.execute(), profile)
        took = time.monotonic() - started
        runner_cpu = time.process_time() - runner_before
        worker_cpu = sum(_cpu(p.pid) - b for p, b in zip(procs, cpu_before, strict=True))
        time.sleep(0.3)  # nginx writes its last lines
        arrivals = nginx.arrivals()
        outcomes = Counter(
            str(leaf.data["outcome"])
            for leaf in leaves_of(ch.rio, runner.run_id)
            if leaf.kind == "outcome"
        )
        return Result(
            workers=workers,
            probes=sum(outcomes.values()),
            seconds=took,
            arrivals=len(arrivals),
            window=_max_in_a_second([a[0] for a in arrivals]),
            served=statistics.median(a[1] - a[0] for a in arrivals) if arrivals else 0.0,
            runner_cpu=runner_cpu,
            worker_cpu=worker_cpu,
            outcomes=dict(outcomes),
        )
    finally:
        nginx.stop()
        block.release()
        for _ in homes:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--page", choices=["a", "wire"], default="a")
    parser.add_argument("--concurrency", type=int, default=16, help="per worker")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--global-budget", type=int, default=400)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        for workers in (1, 2):
            last = r == args.rounds - 1 and workers == 1
            res = _one(args, workers, args.profile if last else None)
            times[workers].append(res.seconds)
            print(f"{workers} worker(s): {res.probes} probes of /{args.page} in "
                  f"{res.seconds:.2f} s ({res.probes / res.seconds:.1f}/s); nginx got "
                  f"{res.arrivals} (median {res.served:.2f} s each), largest 1 s window "
                  f"{res.window} (global budget "
                  f"{args.global_budget}); CPU s: runner {res.runner_cpu:.2f}, workers "
                  f"{res.worker_cpu:.2f}; outcomes {res.outcomes}", flush=True)  # fmt: skip
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"median of {args.rounds}: 1 worker {one:.2f} s, 2 workers {two:.2f} s; "
          f"speed-up 2 vs 1 worker: {one / two:.2f}x (load {os.getloadavg()[0]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
