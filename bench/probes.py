"""Figures 3 and 4: rio's probes against the plain tools they wrap, on the loopback farm.

Permits come from the real gate (a bench notice with budgets far above what is sent) and are
issued before the clock starts, so only the probes are timed.

* 3: rio's port probe against plain nmap with the very argument vector rio builds
  (:func:`probes.port.build_nmap_args`): same ports, same ``--max-rate``, same target.
* 4: HTTP requests per second: rio's http probe with one client per target (``make_client``),
  50 targets at once, against one shared ``httpx.AsyncClient`` doing the same GETs at the same
  concurrency.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence

import httpx

from bench._common import Figure, Settings
from bench._farmproc import FarmProcess
from bench._home import BenchHome, issue_permits, policy_yaml, scope_yaml
from orchestrator.demo.farm import FarmSpec
from orchestrator.gate.decide import ProbeRequest
from probes.base import Permit, ProbeContext
from probes.http import HttpProbe, make_client
from probes.port import PortProbe, build_nmap_args, find_nmap

__all__ = ["http_sample", "port_sample", "probe_figures"]

_PORT_NET = "127.0.32.0/29"
_HTTP_NET = "127.0.33.0/26"
_CTX = ProbeContext(user_agent="rio-bench/0 (+loopback benchmark)")
_RATES = 5000


def _policy(probes: str) -> bytes:
    return policy_yaml(
        per_ip=_RATES,
        per_network=_RATES,
        per_notice=_RATES,
        global_=_RATES,
        concurrency=64,
        probes=probes,
    )


async def _plain_nmap(argv: Sequence[str]) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.wait_for(proc.communicate(), timeout=60.0)
    if proc.returncode != 0:
        raise RuntimeError(f"bench: plain nmap exited with {proc.returncode}")
    return time.perf_counter() - started


async def _port_pairs(permits: Sequence[Permit]) -> tuple[list[float], list[float]]:
    """Alternate rio's probe and plain nmap, one pair per permit."""
    nmap_path = find_nmap(None)
    probe = PortProbe()
    rio_times: list[float] = []
    nmap_times: list[float] = []
    for permit in permits:
        started = time.perf_counter()
        result = await probe.run(permit, _CTX)
        rio_times.append(time.perf_counter() - started)
        if result.outcome != "ok":
            raise RuntimeError(f"bench: port probe {result.outcome}: {result.error}")
        nmap_times.append(await _plain_nmap(build_nmap_args(permit, nmap_path)))
    return rio_times, nmap_times


def port_sample(
    *, pairs: int, home: BenchHome, farm: FarmProcess
) -> tuple[float, float, float, int]:
    """``pairs`` alternating scans; returns (rio / nmap, rio median s, nmap median s, ports)."""
    ip = farm.targets[0]
    ports = tuple(sorted({farm.http_port, farm.https_port, *farm.open_ports, *range(20, 120)}))
    probes = f"{{port: {{ports: [{', '.join(map(str, ports))}], retries: 0, host_timeout: 20s}}}}"
    notice = home.notice(scope_yaml([f"{{ip: {ip}}}"]), _policy(probes))
    run_id = home.run(notice.id)
    params = {"retries": 0, "host_timeout": 20, "version_detection": False, "scripts": []}
    requests = [
        ProbeRequest(
            item=i,
            probe="port",
            target=f"ip:{ip}",
            ip=ip,
            ports=ports,
            params=params,
            cost=len(ports),
        )
        for i in range(pairs)
    ]
    permits = asyncio.run(issue_permits(home, notice, run_id, requests))
    rio_times, nmap_times = asyncio.run(_port_pairs(permits))
    rio_s, nmap_s = statistics.median(rio_times), statistics.median(nmap_times)
    return rio_s / nmap_s, rio_s, nmap_s, len(ports)


async def _rio_http(by_target: Sequence[Sequence[Permit]]) -> tuple[float, int]:
    """One client per target, every target at once; returns (seconds, requests)."""
    probe = HttpProbe()

    async def worker(permits: Sequence[Permit]) -> int:
        sent = 0
        async with make_client(permits[0], _CTX) as client:
            for permit in permits:
                result = await probe.run(permit, _CTX, client)
                if result.outcome != "ok":
                    raise RuntimeError(f"bench: http probe {result.outcome}: {result.error}")
                sent += result.connections
        return sent

    started = time.perf_counter()
    counts = await asyncio.gather(*(worker(p) for p in by_target))
    return time.perf_counter() - started, sum(counts)


async def _naive_http(urls: Sequence[str], concurrency: int) -> tuple[float, int]:
    """One shared client for everything, ``concurrency`` workers; returns (seconds, requests)."""
    queue = list(reversed(urls))
    async with httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        verify=False,
        timeout=httpx.Timeout(10.0),
        headers={"User-Agent": _CTX.user_agent},
    ) as client:

        async def worker() -> int:
            sent = 0
            while queue:
                url = queue.pop()
                response = await client.get(url)
                if response.status_code >= 400:
                    raise RuntimeError(f"bench: {url} answered {response.status_code}")
                sent += 1
            return sent

        started = time.perf_counter()
        counts = await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, sum(counts)


def http_sample(
    *, home: BenchHome, farm: FarmProcess, rounds: int, paths: int
) -> tuple[float, float, float, int]:
    """Same GETs both ways; returns (rio / naive, rio req/s, naive req/s, requests)."""
    port = farm.http_port
    path_list = [f"/b{i}" for i in range(paths)]
    probes = (
        f"{{http: {{ports: [{port}], https_ports: [], paths: [{', '.join(path_list)}], "
        "method: GET, timeout: 10s}}"
    )
    notice = home.notice(scope_yaml([f"{{ip: {ip}}}" for ip in farm.targets]), _policy(probes))
    run_id = home.run(notice.id)
    params = {
        "scheme": "http",
        "paths": path_list,
        "method": "GET",
        "max_body": 65536,
        "timeout": 10.0,
    }
    requests = [
        ProbeRequest(
            item=r * len(farm.targets) + n,
            probe="http",
            target=f"ip:{ip}",
            ip=ip,
            port=port,
            params=params,
            cost=paths,
        )
        for r in range(rounds)
        for n, ip in enumerate(farm.targets)
    ]
    permits = asyncio.run(issue_permits(home, notice, run_id, requests))
    by_target = [[p for p in permits if p.ip == ip] for ip in farm.targets]
    rio_s, rio_n = asyncio.run(_rio_http(by_target))
    urls = [f"http://{p.ip}:{port}{path}" for p in permits for path in path_list]
    naive_s, naive_n = asyncio.run(_naive_http(urls, len(farm.targets)))
    if rio_n != naive_n:
        raise RuntimeError(f"bench: rio sent {rio_n} requests, the naive client {naive_n}")
    rio_rate, naive_rate = rio_n / rio_s, naive_n / naive_s
    return rio_rate / naive_rate, rio_rate, naive_rate, rio_n


def probe_figures(settings: Settings) -> list[Figure]:
    """Figures 3 and 4."""
    figures: list[Figure] = []
    try:
        find_nmap(None)
        missing = None
    except Exception as exc:  # ToolMissingError: say so in the table
        missing = str(exc)
    port_spec = FarmSpec(
        network=_PORT_NET,
        count=1,
        http_port=0,
        https_port=0,
        open_ports=(0, 0),
        weak=(),
        dns_ip=None,
        lifetime=300.0,
    )
    http_spec = FarmSpec(
        network=_HTTP_NET,
        count=50,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=300.0,
    )
    with BenchHome() as home:
        if missing is None:
            with FarmProcess(port_spec) as farm:
                port = [
                    port_sample(pairs=settings.pick(5, 15), home=home, farm=farm)
                    for _ in range(settings.repeats)
                ]
            figures.append(
                Figure(
                    key="3",
                    name="port probe time: rio / plain nmap",
                    unit="ratio",
                    samples=tuple(p[0] for p in port),
                    op="<=",
                    goal=1.10,
                    detail=f"{port[-1][3]} ports on one loopback target, same argv "
                    f"(--max-rate {_RATES}); rio {statistics.median(p[1] for p in port):.3f} s, "
                    f"nmap {statistics.median(p[2] for p in port):.3f} s per scan",
                )
            )
        else:
            figures.append(
                Figure(
                    key="3",
                    name="port probe time: rio / plain nmap",
                    unit="ratio",
                    samples=(),
                    op="<=",
                    goal=1.10,
                    skipped=missing,
                )
            )
        with FarmProcess(http_spec) as farm:
            http = [
                http_sample(home=home, farm=farm, rounds=settings.pick(1, 2), paths=10)
                for _ in range(settings.repeats)
            ]
        figures.append(
            Figure(
                key="4",
                name="HTTP req/s: rio (client per target) / one shared client",
                unit="ratio",
                samples=tuple(h[0] for h in http),
                op=">=",
                goal=3.0,
                detail=f"{http[-1][3]} GETs to {len(farm.targets)} farm targets, concurrency "
                f"{len(farm.targets)}; rio {statistics.median(h[1] for h in http):.0f} req/s, "
                f"shared client {statistics.median(h[2] for h in http):.0f} req/s",
            )
        )
    return figures
