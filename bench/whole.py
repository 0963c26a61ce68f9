"""Figures 3, 4 and 9: whole runs through the gate against what a user would run instead.

* 3: a whole port run (plan, gate, log before send, batched nmap, outcomes, sealing) over 1022
  and 4094 loopback addresses x 6 ports, against ONE plain
  ``nmap -sT -Pn -n -p PORTS --max-rate R -iL hosts`` over the same addresses: wall time
  ratio, with CPU per probe (rio's process plus its nmap children) beside it.
* 4: a whole HTTP run (GET / per target) over a loopback farm of 1022 and 4094 targets,
  against a plain asyncio script with one shared ``httpx.AsyncClient``, the same URLs and the
  same concurrency.
* 9a: peak RSS of a child process running a port run of 100k probes (full variant only);
  9b: ledger bytes per probe (every leaf of the largest port run, divided by its probes).

A *probe* is one planned request (one gate decision: one target and its port chunk, or one
URL). Nothing here is sent anywhere but 127.0.0.0/8: the port runs scan addresses with no
listener (the kernel answers RST), the HTTP runs a farm in a child process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import multiprocessing
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import Figure, Settings, outcomes_text
from bench._farmproc import FarmProcess
from bench._home import BenchHome, policy_yaml, scope_yaml
from orchestrator.demo.farm import FarmSpec
from orchestrator.ledger.log import read_leaf_bytes
from orchestrator.run.runner import Runner
from probes.port import find_nmap

__all__ = ["HttpRunSample", "PortRunSample", "http_runs", "port_run", "rss_child", "whole_figures"]

PORTS = (21, 22, 80, 443, 8080, 8443)
_PORT_RATE = 5000
"""connections per second: rio's global/per-notice/per-network budget and nmap's --max-rate"""
_PORT_NETS = {1022: "127.0.64.0/22", 4094: "127.0.80.0/20"}
_HTTP_NETS = {1022: "127.0.96.0/22", 4094: "127.0.112.0/20"}
_RSS_NETS_FULL = ("127.128.0.0/16", "127.129.0.0/17", "127.129.128.0/19")
"""106,490 addresses: a run of more than 100k probes"""
_RSS_PORT = 9
_RSS_RATE = 20_000
_HTTP_CONCURRENCY = 256
_USER_AGENT = "rio-bench/0 (+loopback benchmark)"


def _cpu() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _hosts(network: str) -> list[str]:
    return [str(ip) for ip in ipaddress.ip_network(network).hosts()]


@dataclass(frozen=True, kw_only=True, slots=True)
class PortRunSample:
    """One whole port run and the plain nmap over the same hosts."""

    probes: int
    rio_seconds: float
    rio_cpu: float
    nmap_seconds: float
    nmap_cpu: float
    batches: int
    ledger_bytes: int
    outcomes: dict[str, int]


def _port_policy(rate: int, ports: Sequence[int] = PORTS, concurrency: int = 1024) -> bytes:
    listed = ", ".join(map(str, ports))
    return policy_yaml(
        per_ip=len(ports),
        per_network=rate,
        per_notice=rate,
        global_=rate,
        concurrency=concurrency,
        probes=f"{{port: {{ports: [{listed}], retries: 0, host_timeout: 20s}}}}",
    )


def _plain_nmap(hosts: Sequence[str], rate: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one plain nmap over ``hosts``."""
    nmap = find_nmap(None)
    with tempfile.TemporaryDirectory(prefix="rio-bench-") as tmp:
        listing = Path(tmp) / "hosts"
        listing.write_text("".join(f"{h}\n" for h in hosts))
        argv = [nmap, "-sT", "-Pn", "-n", "-p", ",".join(map(str, PORTS))]
        argv += ["--max-rate", str(rate), "-iL", str(listing)]
        cpu0, t0 = _cpu(), time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0, _cpu() - cpu0


def port_run(network: str, *, rate: int = _PORT_RATE) -> PortRunSample:
    """A whole port run over ``network``'s hosts, then one plain nmap over the same hosts."""
    with BenchHome() as home:
        notice = home.notice(scope_yaml([f"{{cidr: {network}}}"]), _port_policy(rate))
        run_id = home.run(notice.id)
        runner = Runner(home.opened, run_id)
        cpu0, t0 = _cpu(), time.perf_counter()
        asyncio.run(runner.execute())
        rio_seconds, rio_cpu = time.perf_counter() - t0, _cpu() - cpu0
        ledger = sum(len(body) for _, body in read_leaf_bytes(home.opened.db, run_id))
        probes = runner.progress.planned
        outcomes = dict(runner.progress.outcomes)
        batches = runner._ports.batches if runner._ports is not None else 0
    nmap_seconds, nmap_cpu = _plain_nmap(_hosts(network), rate)
    return PortRunSample(
        probes=probes,
        rio_seconds=rio_seconds,
        rio_cpu=rio_cpu,
        nmap_seconds=nmap_seconds,
        nmap_cpu=nmap_cpu,
        batches=batches,
        ledger_bytes=ledger,
        outcomes=outcomes,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpRunSample:
    """One whole HTTP run and the plain shared-client script over the same URLs."""

    probes: int
    rio_seconds: float
    rio_cpu: float
    plain_seconds: float
    plain_cpu: float
    outcomes: dict[str, int]


async def _plain_http(urls: Sequence[str], concurrency: int) -> int:
    """The script a user would write: one shared client, ``concurrency`` workers."""
    queue = list(reversed(urls))
    async with httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        verify=False,
        timeout=httpx.Timeout(10.0),
        headers={"User-Agent": _USER_AGENT},
        limits=httpx.Limits(max_connections=concurrency),
    ) as client:

        async def worker() -> int:
            done = 0
            while queue:
                response = await client.get(queue.pop())
                if response.status_code >= 400:
                    raise RuntimeError(f"bench: {response.url} answered {response.status_code}")
                done += 1
            return done

        return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


def http_runs(count: int, network: str, repeats: int = 1) -> list[HttpRunSample]:
    """Whole HTTP runs (GET / on every farm target), each followed by the plain script on the
    same URLs; one farm serves them all."""
    spec = FarmSpec(
        network=network,
        count=count,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=900.0,
    )
    samples = []
    with FarmProcess(spec) as farm:
        probes = (
            f"{{http: {{ports: [{farm.http_port}], https_ports: [], paths: ['/'], method: GET, "
            "timeout: 10s}}"
        )
        policy = policy_yaml(
            per_ip=10,
            per_network=100_000,
            per_notice=100_000,
            global_=100_000,
            concurrency=_HTTP_CONCURRENCY,
            probes=probes,
        )
        urls = [f"http://{ip}:{farm.http_port}/" for ip in farm.targets]
        for _ in range(repeats):
            with BenchHome() as home:
                notice = home.notice(scope_yaml([f"{{cidr: {network}}}"]), policy)
                run_id = home.run(notice.id)
                runner = Runner(home.opened, run_id)
                cpu0, t0 = _cpu(), time.perf_counter()
                asyncio.run(runner.execute())
                rio_seconds, rio_cpu = time.perf_counter() - t0, _cpu() - cpu0
            cpu0, t0 = _cpu(), time.perf_counter()
            done = asyncio.run(_plain_http(urls, _HTTP_CONCURRENCY))
            plain_seconds, plain_cpu = time.perf_counter() - t0, _cpu() - cpu0
            if done != len(urls):
                raise RuntimeError(f"bench: the plain script did {done} of {len(urls)} GETs")
            samples.append(
                HttpRunSample(
                    probes=runner.progress.planned,
                    rio_seconds=rio_seconds,
                    rio_cpu=rio_cpu,
                    plain_seconds=plain_seconds,
                    plain_cpu=plain_cpu,
                    outcomes=dict(runner.progress.outcomes),
                )
            )
    return samples


def _rss_target(networks: Sequence[str], rate: int, conn: Any) -> None:
    with BenchHome() as home:
        scope = scope_yaml([f"{{cidr: {n}}}" for n in networks])
        notice = home.notice(scope, _port_policy(rate, ports=(_RSS_PORT,)))
        run_id = home.run(notice.id)
        runner = Runner(home.opened, run_id)
        t0 = time.perf_counter()
        asyncio.run(runner.execute())
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send(
        {
            "peak_mib": peak,
            "probes": runner.progress.planned,
            "seconds": seconds,
            "outcomes": dict(runner.progress.outcomes),
        }
    )


def rss_child(networks: Sequence[str], *, rate: int) -> dict[str, Any]:
    """Peak RSS (MiB, interpreter included) of a fresh process running one port run over
    ``networks`` (one port per address, so one probe per address)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_rss_target, args=(tuple(networks), rate, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(900):
            raise RuntimeError("bench: the RSS run did not finish in 900 s")
        answer: dict[str, Any] = parent.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    return answer


def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def whole_figures(settings: Settings) -> list[Figure]:
    """Figures 3a/3b (port runs), 4a/4b (HTTP runs), 9a (RSS) and 9b (ledger bytes)."""
    figures: list[Figure] = []
    try:
        find_nmap(None)
        missing = None
    except Exception as exc:  # ToolMissingError: say so in the table
        missing = str(exc)
    sizes = (1022,) if settings.quick else (1022, 4094)
    repeats = 1 if settings.quick else 2
    port_samples: dict[int, list[PortRunSample]] = {}
    for key, size in zip(("3a", "3b"), sizes, strict=False):
        name = f"whole port run / one plain nmap, {size} targets x {len(PORTS)} ports"
        if missing is not None:
            figures.append(
                Figure(key=key, name=name, unit="ratio", samples=(), op="<=", goal=3.0,
                       skipped=missing)
            )  # fmt: skip
            continue
        runs = [port_run(_PORT_NETS[size]) for _ in range(repeats)]
        port_samples[size] = runs
        cpu = _med([r.rio_cpu / r.probes * 1000 for r in runs])
        figures.append(
            Figure(
                key=key,
                name=name,
                unit="ratio",
                samples=tuple(r.rio_seconds / r.nmap_seconds for r in runs),
                op="<=",
                goal=3.0,
                baseline=tuple(r.rio_cpu / r.probes * 1000 for r in runs),
                baseline_label="ms CPU/probe",
                detail=f"rio {_med([r.rio_seconds for r in runs]):.2f} s, {cpu:.2f} ms CPU per "
                f"probe (goal <= 1; rio + its nmap, {runs[-1].batches} batches); plain nmap "
                f"{_med([r.nmap_seconds for r in runs]):.2f} s, "
                f"{_med([r.nmap_cpu / r.probes * 1000 for r in runs]):.2f} ms CPU per probe; "
                f"--max-rate {_PORT_RATE}, {runs[-1].probes} probes; "
                + outcomes_text(runs[-1].outcomes),
            )
        )
    for key, size in zip(("4a", "4b"), sizes, strict=False):
        runs_h = http_runs(size, _HTTP_NETS[size], repeats)
        figures.append(
            Figure(
                key=key,
                name=f"whole HTTP run / plain shared-client script, {size} targets",
                unit="ratio",
                samples=tuple(r.rio_seconds / r.plain_seconds for r in runs_h),
                op="<=",
                goal=1.5,
                baseline=tuple(r.rio_cpu / r.probes * 1000 for r in runs_h),
                baseline_label="ms CPU/probe",
                detail=f"GET / per target, concurrency {_HTTP_CONCURRENCY}; rio "
                f"{_med([r.rio_seconds for r in runs_h]):.2f} s, plain script "
                f"{_med([r.plain_seconds for r in runs_h]):.2f} s, "
                f"{_med([r.plain_cpu / r.probes * 1000 for r in runs_h]):.2f} ms CPU per "
                "request; " + outcomes_text(runs_h[-1].outcomes),
            )
        )
    if missing is None and settings.quick:
        figures.append(
            Figure(
                key="9a",
                name="peak RSS of a port run of 100k probes",
                unit="MiB",
                samples=(),
                op="<=",
                goal=256,
                skipped="full variant only (the run takes minutes)",
            )
        )
    elif missing is None:
        rss = rss_child(_RSS_NETS_FULL, rate=_RSS_RATE)
        figures.append(
            Figure(
                key="9a",
                name=f"peak RSS of a port run of {rss['probes']:,} probes",
                unit="MiB",
                samples=(float(rss["peak_mib"]),),
                op="<=",
                goal=256,
                detail=f"ru_maxrss of a fresh process (interpreter included); "
                f"{rss['seconds']:.1f} s; " + outcomes_text(rss["outcomes"]),
            )
        )
    if missing is None:
        big = port_samples[sizes[-1]]
        figures.append(
            Figure(
                key="9b",
                name="ledger bytes per probe",
                unit="B",
                samples=tuple(r.ledger_bytes / r.probes for r in big),
                op="<=",
                goal=1024,
                detail=f"every leaf of the {sizes[-1]}-target port run (intent + outcome, "
                "state leaves) / its probes; goal set by the bench (brief gave none)",
            )
        )
    return figures
