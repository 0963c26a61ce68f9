"""Fixtures for the run-layer integration tests: a rio home, a loopback farm, scope and policy.

Every run here is a real run: real gate, real probe log (SQLite in ``tmp_path``), real probes
against real servers on loopback addresses only. Each test gets its own small network inside
127.0.0.0/8 and free ports (port 0), so tests neither collide with each other nor with the demo.
Settings come from ``load_settings({...})``: the process environment is never changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from orchestrator.clock import Clock
from orchestrator.context import Rio, init_home
from orchestrator.demo.farm import Farm, FarmSpec
from orchestrator.gate.resolve import Resolver
from orchestrator.intake import registry
from orchestrator.intake.notices import Notice, announce
from orchestrator.ledger.leaves import Leaf, parse_leaf
from orchestrator.run.executors import Executor
from orchestrator.run.runner import Progress, Runner
from orchestrator.run.runs import create_run
from orchestrator.settings import Settings, load_settings
from orchestrator.store.models import LeafRow

REPO = Path(__file__).resolve().parents[2]
DEMO_POLICY = REPO / "policies" / "demo.yaml"
VENDOR = "run-test-vendor"
TECHNICIAN = "tech-run-test"
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

# One /27 per test: second octet from the pid (parallel pytest processes differ), third and
# fourth from a counter. Far from 127.0.x.x, which the demo and the farm tests use.
_NETWORKS = itertools.count()


def unique_network() -> str:
    """A fresh /27 inside 127.0.0.0/8 for one test."""
    n = next(_NETWORKS)
    second = 100 + os.getpid() % 100
    third, block = divmod(n, 8)
    net = ipaddress.IPv4Network(f"127.{second}.{third % 256}.{block * 32}/27")
    assert net.subnet_of(_LOOPBACK)
    return str(net)


# -- the rio home --------------------------------------------------------------------------------


@dataclass
class Home:
    """An initialised rio home with a vendor and its technician registered."""

    settings: Settings
    rio: Rio
    path: Path

    def other(self) -> Rio:
        """A second Rio on the same home: its own engine, so its own sessions/connections."""
        return Rio(self.settings)


def make_settings(path: Path, **extra: str) -> Settings:
    env = {"RIO_HOME": str(path), "RIO_CHECKPOINT_EVERY": "25", **extra}
    return load_settings(env)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    settings = make_settings(tmp_path / "home")
    init_home(settings)
    rio = Rio(settings)
    with rio.db.session() as s:
        registry.add_vendor(s, VENDOR, "Run Test Security Co.", now=rio.clock.now())
        registry.add_person(
            s, TECHNICIAN, registry.Role.TECHNICIAN, "", VENDOR, now=rio.clock.now()
        )
    try:
        yield Home(settings=settings, rio=rio, path=tmp_path / "home")
    finally:
        rio.close()


# -- the documents -------------------------------------------------------------------------------


def _naive_utc(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def scope_bytes(
    network: str,
    windows: Sequence[tuple[datetime, datetime]],
    *,
    excludes: Sequence[str] = (),
) -> bytes:
    """A scope announcing ``network`` (a loopback CIDR) in the given UTC windows."""
    doc: dict[str, Any] = {
        "format": "rio.scope/v1",
        "object": {
            "id": "run-test-isp",
            "name": "Run Test Loopback ISP",
            "services": ["idc"],
            "key_supervision": False,
        },
        "contact": {"name": "Run Test NOC", "email": "noc@run.test"},
        "targets": [{"cidr": network}],
        "excludes": [{"ip": ip} for ip in excludes],
        "windows": [
            {"start": _naive_utc(a), "end": _naive_utc(b), "timezone": "UTC"} for a, b in windows
        ],
        "sources": ["127.0.0.1"],
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def policy_bytes(
    farm: Farm | None,
    *,
    rates: tuple[int, int, int, int] = (20, 200, 200, 400),
    concurrency: int = 16,
    probe_timeout: str = "10s",
    http_port: int | None = None,
    port_probe: bool = False,
    https: bool = False,
    http_timeout: str = "5s",
) -> bytes:
    """``policies/demo.yaml`` adapted to the test's ports and rates (and no DNS probe)."""
    doc: dict[str, Any] = yaml.safe_load(DEMO_POLICY.read_bytes())
    per_ip, per_network, per_notice, global_ = rates
    doc["rates"] = {
        "per_ip": per_ip,
        "per_network": per_network,
        "per_notice": per_notice,
        "global": global_,
    }
    doc["concurrency"] = concurrency
    doc["probe_timeout"] = probe_timeout
    plain = http_port if http_port is not None else (farm.http_port if farm else 0)
    probes: dict[str, Any] = {
        "http": {
            "ports": [plain],
            "https_ports": [farm.https_port] if (https and farm) else [],
            "paths": ["/"],
            "method": "GET",
            "max_body": 65536,
            "timeout": http_timeout,
        }
    }
    if https and farm:
        probes["tls"] = {"ports": [farm.https_port], "timeout": "5s", "check_legacy": False}
    if port_probe and farm:
        probes["port"] = {
            "ports": sorted({*farm.open_ports, farm.http_port}),
            "retries": 0,
            "host_timeout": "20s",
        }
    doc["probes"] = probes
    return yaml.safe_dump(doc, sort_keys=False).encode()


def announce_notice(home: Home, scope: bytes, policy: bytes, *, at: datetime) -> Notice:
    """Announce at ``at`` (tests announce in the past so the lead time is already met)."""
    with home.rio.db.session() as s:
        return announce(
            s,
            scope_bytes=scope,
            scope_name="run-test-scope.yaml",
            policy_bytes=policy,
            policy_name="run-test-policy.yaml",
            vendor=VENDOR,
            now=at,
        )


def new_run(home: Home, notice: Notice, *, at: datetime | None = None) -> str:
    with home.rio.db.session() as s:
        return create_run(s, notice.id, TECHNICIAN, now=at or home.rio.clock.now()).id


def make_runner(
    home: Home | Rio,
    run_id: str,
    *,
    clock: Clock | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    poll_seconds: float = 0.05,
    executor: Executor | None = None,
) -> Runner:
    rio = home.rio if isinstance(home, Home) else home
    # Scopes here name addresses only, so nothing is resolved; the resolver still points at
    # loopback so that a mistake could never send a query off the machine.
    return Runner(
        rio,
        run_id,
        clock=clock,
        resolver=Resolver(["127.0.0.1"], port=9, timeout=0.5),
        dns_port=9,
        on_progress=on_progress,
        poll_seconds=poll_seconds,
        executor=executor,
    )


# -- reading the log back ------------------------------------------------------------------------


def leaves_of(rio: Rio, run_id: str) -> list[Leaf]:
    with rio.db.session() as s:
        rows = s.execute(
            select(LeafRow.seq, LeafRow.body).where(LeafRow.run_id == run_id).order_by(LeafRow.seq)
        ).all()
    return [parse_leaf(bytes(body), source=f"leaf {seq}") for seq, body in rows]


def raw_leaves(rio: Rio, run_id: str) -> list[tuple[int, bytes]]:
    with rio.db.session() as s:
        rows = s.execute(
            select(LeafRow.seq, LeafRow.body).where(LeafRow.run_id == run_id).order_by(LeafRow.seq)
        ).all()
    return [(int(seq), bytes(body)) for seq, body in rows]


def count_kind(rio: Rio, run_id: str, kind: str) -> int:
    with rio.db.session() as s:
        return len(
            s.execute(
                select(LeafRow.seq).where(LeafRow.run_id == run_id, LeafRow.kind == kind)
            ).all()
        )


async def wait_for_intents(rio: Rio, run_id: str, n: int, *, seconds: float = 20.0) -> int:
    """Poll the database until ``n`` intents exist (bounded); returns how many there are."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        found = await asyncio.to_thread(count_kind, rio, run_id, "intent")
        if found >= n or loop.time() > end:
            return found
        await asyncio.sleep(0.02)


# -- servers -------------------------------------------------------------------------------------


def farm_spec(network: str, count: int = 30, lifetime: float = 120.0) -> FarmSpec:
    return FarmSpec(
        network=network,
        count=count,
        http_port=0,
        https_port=0,
        open_ports=(0,),
        weak=(2,),
        dns_ip=None,
        lifetime=lifetime,
    )


@pytest.fixture
def farm() -> Iterator[Farm]:
    """A 30-target loopback farm on a fresh /27 (every host of it), free ports, no DNS."""
    with Farm(farm_spec(unique_network())) as running:
        assert len(running.targets) == 30, running.skipped
        yield running


@dataclass
class SlowHttp:
    """Plain HTTP on several loopback addresses that answers each request after ``delay`` s.

    It keeps probes in flight long enough for a kill or a crash to catch them there. One
    asyncio loop in a thread; stops on :meth:`close` or after ``lifetime`` seconds.
    """

    network: str
    count: int
    delay: float = 1.5
    lifetime: float = 60.0
    port: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)
    """connections accepted per address, counted before anything is read"""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def ips(self) -> list[str]:
        base = ipaddress.IPv4Network(self.network).network_address
        return [str(base + n) for n in range(1, self.count + 1)]

    def start(self) -> SlowHttp:
        for ip in self.ips():
            assert ipaddress.ip_address(ip) in _LOOPBACK
        self._thread = threading.Thread(target=self._run, name="slow-http", daemon=True)
        self._thread.start()
        assert self._ready.wait(10.0), "slow HTTP server did not start"
        assert self.port, "slow HTTP server could not bind"
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10.0)

    def accepted(self) -> dict[str, int]:
        """Connections accepted so far, per address."""
        with self._lock:
            return dict(self.connections)

    def served(self, ip: str) -> int:
        with self._lock:
            return self.requests.get(ip, 0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        servers: list[asyncio.Server] = []
        handlers: set[asyncio.Task[Any]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                handlers.add(task)
            ip = writer.get_extra_info("sockname")[0]
            with self._lock:
                self.connections[ip] = self.connections.get(ip, 0) + 1
            try:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
                    with self._lock:
                        self.requests[ip] = self.requests.get(ip, 0) + 1
                    await asyncio.sleep(self.delay)
                    body = b"slow but fine\n"
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
            finally:
                writer.close()
                if task is not None:
                    handlers.discard(task)

        try:
            for ip in self.ips():
                server = await asyncio.start_server(handle, ip, self.port)
                if not self.port:
                    self.port = server.sockets[0].getsockname()[1]
                servers.append(server)
        except OSError:
            self.port = 0
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.lifetime)
        for server in servers:
            server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


@pytest.fixture
def slow_http() -> Iterator[SlowHttp]:
    """Every host of a fresh loopback /28 (14 addresses) answering HTTP after 1.5 s."""
    network = next(ipaddress.IPv4Network(unique_network()).subnets(new_prefix=28))
    server = SlowHttp(network=str(network), count=14).start()
    try:
        yield server
    finally:
        server.close()


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def around(
    now: datetime, before: float = 600.0, after: float = 3600.0
) -> tuple[datetime, datetime]:
    return now - timedelta(seconds=before), now + timedelta(seconds=after)
