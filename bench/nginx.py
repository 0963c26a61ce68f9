"""Figure 11: the per-IP rate as a real server received it, from Debian's nginx's access log.

The farm (figures 1a-1c) is rio's own Python server; this one is the server an inspected
object runs. nginx listens on port 80 of a few loopback addresses and logs every request with
``$server_addr`` (the address it was asked on) and ``$msec`` (the moment it logged it, after
sending the answer: milliseconds). rio runs its http probe over them with a per-IP budget, and
the largest one-second window of each address's log lines is compared with that budget (11a),
beside the fill (11b).

Skipped where nginx is not installed or port 80 cannot be bound (not root).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench._common import Figure, Settings
from bench._home import BenchHome, policy_yaml, scope_yaml
from bench.runs import Event, max_window, mean_fill
from orchestrator.run.runner import Runner
from tests.integration.field.lab import nginx_argv, nginx_conf

__all__ = ["nginx_figures", "nginx_run"]

_NET = "127.0.34"
_TARGETS = 8
_LISTEN_BODY = """\
server {{
{listen}
  location / {{ return 200 "ok\\n"; }}
}}"""


def _unavailable() -> str | None:
    if shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
        return "nginx is not installed"
    if os.geteuid() != 0:
        return "port 80 needs root"
    return None


def nginx_run(*, per_ip: int, urls: int) -> tuple[list[float], float, int]:
    """One run over nginx: (per-IP fills, worst window / per_ip, requests logged)."""
    ips = [f"{_NET}.{i}" for i in range(1, _TARGETS + 1)]
    with tempfile.TemporaryDirectory(prefix="rio-bench-nginx-") as tmp, BenchHome() as home:
        d = Path(tmp)
        os.chmod(d, 0o755)
        listen = "\n".join(f"  listen {ip}:80;" for ip in ips)
        conf = nginx_conf(
            d,
            log_name="rate",
            log_format='$server_addr $msec "$request" $status',
            body=_LISTEN_BODY.format(listen=listen),
            user="user root root;",
            connections=256,
        )
        (d / "nginx.conf").write_text(conf)
        proc = subprocess.Popen(
            nginx_argv(d),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                if (d / "nginx.pid").exists():
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"bench: nginx did not start: {(d / 'error.log').read_text()}")
            announced = [f"{{ip: {ip}}}" for ip in ips]
            announced += [f"{{url: 'http://{ip}/u{r}'}}" for r in range(urls) for ip in ips]
            limit = _TARGETS * per_ip
            policy = policy_yaml(
                per_ip=per_ip,
                per_network=limit,
                per_notice=limit,
                global_=limit,
                concurrency=4 * limit,
                probes="{http: {ports: [80], https_ports: [], paths: ['/'], method: GET, "
                "timeout: 5s}}",
            )
            notice = home.notice(scope_yaml(announced), policy)
            runner = Runner(home.opened, home.run(notice.id))
            asyncio.run(runner.execute())
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        lines = (d / "access.log").read_text().splitlines()
    by_ip: dict[str, list[Event]] = defaultdict(list)
    for line in lines:
        ip, msec, *_ = line.split(" ")
        by_ip[ip].append(Event(at=float(msec), ip=ip, cost=1))
    fills = [mean_fill(v) / per_ip for v in by_ip.values()]
    worst = max(max_window(v) / per_ip for v in by_ip.values())
    return fills, worst, len(lines)


def nginx_figures(settings: Settings) -> list[Figure]:
    """Figures 11a and 11b."""
    why = _unavailable()
    per_ip = 2
    urls = settings.pick(8, 16)
    samples = [] if why else [nginx_run(per_ip=per_ip, urls=urls) for _ in range(settings.repeats)]
    where = (
        f"Debian nginx on {_NET}.1-{_TARGETS}:80, access log $server_addr $msec; per-IP "
        f"{per_ip}/s, "
        f"{urls + 1} requests per address"
    )
    logged = samples[-1][2] if samples else 0
    worst_fill = min((min(s[0]) for s in samples), default=0.0)
    return [
        Figure(
            key="11a",
            name="largest 1-s window / per-IP budget at nginx's access log",
            unit="ratio",
            samples=tuple(s[1] for s in samples),
            op="<=",
            goal=1.0,
            detail=f"{where}; {logged} requests logged",
            skipped=why,
        ),
        Figure(
            key="11b",
            name="fill per IP at nginx's access log",
            unit="ratio",
            samples=tuple(statistics.median(s[0]) for s in samples),
            op=">=",
            goal=0.99,
            detail=f"median over addresses; worst {worst_fill:.3f}",
            skipped=why,
        ),
    ]
