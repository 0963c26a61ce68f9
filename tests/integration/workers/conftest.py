"""Real ``rio worker`` processes, a real broker (Redis, or RabbitMQ at 127.0.0.1:5672) and
Debian's nginx on loopback port 80, whose access log says when each request arrived.

Everything a test starts is bounded and stopped: nginx and the workers are killed by pid at the
end of the test, Redis keys of the test's namespace are deleted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.context import Rio, init_home
from orchestrator.intake import registry
from orchestrator.settings import Settings, load_settings
from tests.integration.field.lab import Block, _which, claim_block, nginx_argv, nginx_conf
from tests.run.conftest import TECHNICIAN, VENDOR
from tests.workers.conftest import WORKER_REDIS_URL, redis_or_skip

ROOT = Path(__file__).resolve().parents[3]
AMQP_URL = os.environ.get("RIO_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
PERMIT_KEY = "integration-permit-key-" + "x" * 16
SLOW_BYTES = 48 * 1024
"""the slow page: served at 16 KiB/s, so a probe of it stays on the wire about 3 s"""
WIRE_BYTES = 16 * 1024
"""the wire page: served at 16 KiB/s, so a probe of it stays on the wire about half a second,
as a probe of a distant server does (round trips, a server's own time)"""


def amqp_or_skip() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1.0):
            return
    except OSError as exc:
        # .ci/run starts RabbitMQ; elsewhere skip, loudly (Redis is the default broker).
        pytest.skip(
            f"RabbitMQ not reachable at 127.0.0.1:5672 (apt install rabbitmq-server): {exc}"
        )


@dataclass(kw_only=True)
class Nginx:
    """nginx on ``ips`` port 80; ``arrivals()`` reads (arrival, done, ip, uri) from its log."""

    block: Block
    ips: list[str]
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    www: Path | None = None
    connections: int = 256
    """nginx's worker_connections: its listening sockets count too (one per address)"""

    def start(self) -> Nginx:
        if _which("nginx") is None:
            pytest.skip("nginx not installed (Debian nginx-light)")
        # The pages live where nginx's workers (nobody) can read them: pytest's tmp is 0700.
        self.root.mkdir(parents=True)
        www = Path(tempfile.mkdtemp(prefix="rio-worker-lab-"))
        self.www = www
        for name in ("a", "b", "c", "d"):
            (www / name).write_text(f"page {name}\n")
        (www / "slow").write_bytes(b"s" * SLOW_BYTES)
        (www / "wire").write_bytes(b"w" * WIRE_BYTES)
        for path in (www, *www.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        # A small send buffer, so limit_rate paces the slow page on the wire (the loopback
        # socket buffer would otherwise take it all at once).
        listens = "\n".join(f"  listen {ip}:80 sndbuf=4k;" for ip in self.ips)
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        server = f"""\
server {{
{listens}
  root {www};
  location = / {{ return 200 "rio worker lab\\n"; }}
  location = /slow {{ limit_rate 16k; }}
  location = /wire {{ limit_rate 16k; }}
}}"""
        conf = nginx_conf(
            self.root,
            log_name="t",
            log_format="$msec $request_time $server_addr $request_uri $status $remote_addr",
            body=server,
            user=user,
            connections=self.connections,
        )
        (self.root / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen(
            nginx_argv(self.root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                with socket.create_connection((self.ips[0], 80), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"nginx did not listen: {(self.root / 'error.log').read_text()}")
        # The readiness connection is not a probe: start the log afresh.
        time.sleep(0.2)
        (self.root / "access.log").write_text("")
        os.kill(self.proc.pid, signal.SIGUSR1)  # reopen the log
        time.sleep(0.2)
        return self

    def arrivals(self) -> list[tuple[float, float, str, str]]:
        out = []
        path = self.root / "access.log"
        for line in path.read_text().splitlines() if path.exists() else []:
            done, took, ip, uri, _status, _peer = line.split()
            out.append((float(done) - float(took), float(done), ip, uri))
        return sorted(out)

    def peers(self) -> dict[str, int]:
        """The source addresses the requests came from (nginx's ``$remote_addr``), counted."""
        path = self.root / "access.log"
        found: dict[str, int] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            peer = line.split()[-1]
            found[peer] = found.get(peer, 0) + 1
        return found

    def statuses(self) -> dict[str, int]:
        """HTTP statuses nginx answered, counted."""
        path = self.root / "access.log"
        found: dict[str, int] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            status = line.split()[-2]
            found[status] = found.get(status, 0) + 1
        return found

    def stop(self) -> None:
        if self.www is not None:
            shutil.rmtree(self.www, ignore_errors=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    block = claim_block()
    server = Nginx(block=block, ips=[block.ip(n) for n in range(1, 7)], root=tmp_path / "nginx")
    try:
        yield server.start()
    finally:
        server.stop()
        block.release()


@dataclass(kw_only=True)
class Workers:
    """``rio worker`` processes started exactly as a user would, and their environment."""

    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self, name: str, concurrency: int = 4, egress: str | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        pin = [] if egress is None else ["--egress", egress]
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.interfaces.cli", "worker", "--name", name,
             "--concurrency", str(concurrency), *pin],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.logs,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def wait_ready(self, names: list[str], seconds: float = 60.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if all(" ready." in self.log(n) for n in names):
                return
            for n in names:
                if self.procs[n].poll() is not None:
                    raise RuntimeError(f"worker {n} exited: {self.log(n)}")
            time.sleep(0.2)
        raise RuntimeError(f"workers not ready in {seconds} s")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def received(self, name: str) -> int:
        return self.log(name).count("] received")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@dataclass(kw_only=True)
class CeleryHome:
    settings: Settings
    rio: Rio
    workers: Workers


def _celery_home(tmp_path: Path, broker: str) -> Iterator[CeleryHome]:
    redis_or_skip().close()
    queue = f"rio-wtest-{uuid.uuid4().hex[:12]}"
    base = WORKER_REDIS_URL.rsplit("/", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env.update(
        {
            "RIO_HOME": str(tmp_path / "home"),
            "RIO_CHECKPOINT_EVERY": "25",
            "RIO_EXECUTOR": "celery",
            "RIO_BROKER_URL": broker,
            "RIO_STATE_URL": f"{base}/12",
            "RIO_BUDGET_URL": f"{base}/12",
            "RIO_CELERY_QUEUE": queue,
            "RIO_PERMIT_KEY": PERMIT_KEY,
            # Redis broker: a dead worker's task comes back after 8 s (longer than any probe
            # here takes, so a live worker's task is never delivered twice).
            "RIO_CELERY_VISIBILITY": "8",
            "PYTHONPATH": str(ROOT),
        }
    )
    settings = load_settings(env)
    init_home(settings)
    rio = Rio(settings)
    with rio.db.session() as s:
        registry.add_vendor(s, VENDOR, "Run Test Security Co.", now=rio.clock.now())
        registry.add_person(
            s, TECHNICIAN, registry.Role.TECHNICIAN, "", VENDOR, now=rio.clock.now()
        )
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(env=env, logs=logs)
    try:
        yield CeleryHome(settings=settings, rio=rio, workers=workers)
    finally:
        workers.stop()
        rio.close()
        keys = list(redis_or_skip(f"{base}/12").scan_iter(match=f"*{queue}*", count=500))
        if keys:
            redis_or_skip(f"{base}/12").delete(*keys)


@pytest.fixture
def redis_celery(tmp_path: Path) -> Iterator[CeleryHome]:
    """Workers over a Redis broker (db 12 of the test Redis)."""
    base = WORKER_REDIS_URL.rsplit("/", 1)[0]
    yield from _celery_home(tmp_path, f"{base}/12")


@pytest.fixture
def amqp_celery(tmp_path: Path) -> Iterator[CeleryHome]:
    """Workers over RabbitMQ (a queue of the test's own name on the default vhost)."""
    amqp_or_skip()
    yield from _celery_home(tmp_path, AMQP_URL)
