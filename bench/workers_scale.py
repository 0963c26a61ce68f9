"""1 vs 2 ``rio worker`` processes on a run that no budget holds back (issue #18).

``python -m bench.workers_scale [--hosts N]``: Debian's nginx on port 80 of N loopback
addresses, a Redis broker (``RIO_TEST_WORKER_REDIS_URL``'s server, db 12), one http probe per
address with budgets far above what the run can reach, timed with one worker and with two
(each ``--concurrency 16``). Prints the run times, the speed-up, and the largest one-second window
nginx logged against the global budget. Reuses the worker tests' nginx and worker fixtures.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import yaml

from tests.integration.field.lab import claim_block
from tests.integration.workers.conftest import Nginx, _celery_home
from tests.run.conftest import (
    Home,
    announce_notice,
    around,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
)
from tests.workers.conftest import WORKER_REDIS_URL


def _max_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _one(workers: int, hosts: int, global_: int) -> tuple[float, int, int]:
    tmp = Path(tempfile.mkdtemp(prefix="rio-bench-workers-"))
    block = claim_block()
    nginx = Nginx(block=block, ips=[block.ip(n) for n in range(1, hosts + 1)], root=tmp / "ng")
    homes = _celery_home(tmp, WORKER_REDIS_URL.rsplit("/", 1)[0] + "/12")
    ch = next(homes)
    try:
        nginx.start()
        names = [f"w{i}" for i in range(1, workers + 1)]
        for n in names:
            ch.workers.start(n, concurrency=16)
        ch.workers.wait_ready(names)
        doc = yaml.safe_load(policy_bytes(None, http_port=80, rates=(10, 1000, 1000, global_)))
        doc["probes"]["http"]["paths"] = ["/a"]
        doc["concurrency"] = 32
        now = now_utc()
        home = Home(settings=ch.settings, rio=ch.rio, path=ch.settings.home)
        prefix = 32 - (hosts + 1).bit_length()
        notice = announce_notice(
            home,
            scope_bytes(f"{block.prefix}.0/{prefix}", [around(now)]),
            yaml.safe_dump(doc).encode(),
            at=now - timedelta(minutes=1),
        )
        runner = make_runner(home, new_run(home, notice))
        started = time.monotonic()
        asyncio.run(runner.execute())
        took = time.monotonic() - started
        arrivals = nginx.arrivals()
        return took, len(arrivals), _max_in_a_second([a[0] for a in arrivals])
    finally:
        nginx.stop()
        block.release()
        for _ in homes:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--global-budget", type=int, default=400)
    args = parser.parse_args()
    results = {}
    for workers in (1, 2):
        took, arrived, window = _one(workers, args.hosts, args.global_budget)
        results[workers] = took
        print(f"{workers} worker(s): {args.hosts} probes in {took:.2f} s "
              f"({args.hosts / took:.1f}/s); nginx got {arrived}; "
              f"largest 1 s window {window} (global budget {args.global_budget})")  # fmt: skip
    print(f"speed-up 2 vs 1 worker: {results[1] / results[2]:.2f}x")


if __name__ == "__main__":
    main()
