"""The loopback target farm: the services ``rio demo`` inspects and the benchmarks drive.

Every target is an address in a loopback network (Linux routes all of 127.0.0.0/8 to ``lo``, so
``127.0.10.5`` binds without setup) serving plain HTTP, HTTPS and a few plain TCP ports; beside
them an authoritative stub DNS serves the demo zone. One asyncio event loop in a daemon thread
serves everything. The farm refuses any non-loopback address, stops by itself after
``spec.lifetime`` seconds and on :meth:`Farm.close`.

Port 0 anywhere in the spec means "pick a free port": the first target's listener picks it and
every other target binds the same number, so one port per service holds for the whole farm
(tests use this; the actual ports are on :class:`Farm`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from orchestrator.clock import Clock, SystemClock
from orchestrator.demo._certs import make_certificates, server_contexts
from orchestrator.demo._dns import DemoZone, start_dns
from orchestrator.demo._http import COUNTER_KEYS, Site, Tally, serve_http
from orchestrator.errors import FailureError, InputError, NotFoundError, StateError

__all__ = ["COUNTER_KEYS", "Farm", "FarmSpec"]

_LOG = logging.getLogger("orchestrator.demo")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_STARTUP_TIMEOUT = 30.0
_JOIN_TIMEOUT = 10.0
_HANDSHAKE_TIMEOUT = 5.0
_PICK_ATTEMPTS = 10
_HEAD_LIMIT = 16 * 1024

_Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _bad(field: str, value: object, problem: str) -> InputError:
    return InputError(f"FarmSpec.{field}: {value!r} {problem}")


def _check_port(field: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise _bad(field, port, "is not a port number (0-65535; 0 picks a free one)")


@dataclass(frozen=True, kw_only=True, slots=True)
class FarmSpec:
    """What the farm serves.

    Attributes:
        network: a network inside 127.0.0.0/8; targets are its host addresses .1 .. .count.
        count: the number of target addresses.
        http_port: plain HTTP on every target.
        https_port: HTTPS on every target.
        open_ports: plain TCP listeners on every target that accept and close.
        fragile: host numbers (1-based) of targets that answer 429 above ``fragile_rps``.
        fragile_rps: the request rate (per second, HTTP and HTTPS together) a fragile target
            bears; above it, 429 with ``Retry-After: 2`` after an added 200 ms.
        weak: host numbers of targets served poorly configured (no security headers, a cookie
            without Secure/HttpOnly, a versioned Server banner, an expired self-signed cert).
            Host numbers above ``count`` match no target.
        dns_ip: the loopback address of the zone's stub DNS server; ``None`` = no DNS.
        dns_port: its UDP and TCP port.
        zone: the zone it is authoritative for.
        lifetime: seconds after start at which the farm shuts itself down.

    Raises:
        InputError: a field is out of range or an address is not loopback.
    """

    network: str = "127.0.10.0/27"
    count: int = 24
    http_port: int = 8080
    https_port: int = 8443
    open_ports: tuple[int, ...] = (22, 3306, 6379)
    fragile: tuple[int, ...] = ()
    fragile_rps: float = 5.0
    weak: tuple[int, ...] = (2, 3)
    dns_ip: str | None = "127.0.10.30"
    dns_port: int = 5353
    zone: str = "demo.test"
    lifetime: float = 600.0

    def __post_init__(self) -> None:
        try:
            network = ipaddress.ip_network(self.network)
        except ValueError as exc:
            raise _bad("network", self.network, "is not a network") from exc
        if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(_LOOPBACK):
            raise _bad("network", self.network, "is not inside 127.0.0.0/8")
        if network.prefixlen > 30:
            raise _bad("network", self.network, "is too small (at most /30)")
        hosts = network.num_addresses - 2
        if not 1 <= self.count <= hosts:
            raise _bad("count", self.count, f"is not between 1 and the {hosts} hosts of network")
        for field in ("http_port", "https_port", "dns_port"):
            _check_port(field, getattr(self, field))
        for index, port in enumerate(self.open_ports):
            _check_port(f"open_ports[{index}]", port)
        fixed = [p for p in (self.http_port, self.https_port, *self.open_ports) if p != 0]
        if len(fixed) != len(set(fixed)):
            raise _bad("open_ports", self.open_ports, "repeats a port (HTTP/HTTPS included)")
        for field in ("fragile", "weak"):
            for index, host in enumerate(getattr(self, field)):
                if not 1 <= host <= hosts:
                    raise _bad(f"{field}[{index}]", host, f"is not a host number 1..{hosts}")
        if not self.fragile_rps > 0:
            raise _bad("fragile_rps", self.fragile_rps, "must be above 0")
        if self.dns_ip is not None:
            try:
                dns_ip = ipaddress.ip_address(self.dns_ip)
            except ValueError as exc:
                raise _bad("dns_ip", self.dns_ip, "is not an IP address") from exc
            if dns_ip not in _LOOPBACK:
                raise _bad("dns_ip", self.dns_ip, "is not inside 127.0.0.0/8")
        if not self.zone.strip(".") or " " in self.zone:
            raise _bad("zone", self.zone, "is not a zone name")
        if not self.lifetime > 0:
            raise _bad("lifetime", self.lifetime, "must be above 0 seconds")

    def host(self, number: int) -> str:
        """The address of host ``number`` (1-based) of :attr:`network`."""
        return str(ipaddress.ip_network(self.network).network_address + number)


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Clients of a target farm misbehave on purpose (scanners, aborted handshakes); asyncio's
    # default handler would print each one as an error.
    # Our own bugs must still show: only network/TLS errors and shutdown cancellations are
    # demoted to debug.
    exc = context.get("exception")
    quiet = exc is None or isinstance(exc, (OSError, asyncio.CancelledError))
    level = logging.DEBUG if quiet else logging.WARNING
    _LOG.log(level, "farm loop: %s", context.get("message"), exc_info=exc)


async def _cancel_leftovers() -> None:
    """Cancel whatever still runs on the loop (handlers mid-request) and wait for it."""
    leftovers = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


class Farm:
    """The running farm; a context manager, or call :meth:`start` and :meth:`close`.

    Args:
        spec: what to serve.
        clock: dates the farm's certificates (the expired and expiring ones are relative to
            it); default: the system clock.

    Attributes:
        targets: the addresses serving HTTP and HTTPS (empty before start).
        skipped: what could not be started and why, e.g. ``"127.0.10.3:22/tcp: ..."``.
        ca_pem: the farm's own CA certificate (well-configured targets' leaves chain to it).
        http_port, https_port, open_ports, dns_port: the ports actually bound (port 0 in the
            spec resolved); ``dns_port`` is ``None`` when no DNS server runs.
        dns_ip: the stub DNS address (``None`` when the spec has none).
    """

    def __init__(self, spec: FarmSpec, *, clock: Clock | None = None) -> None:
        self.spec = spec
        self.targets: tuple[str, ...] = ()
        self.skipped: tuple[str, ...] = ()
        self.http_port = spec.http_port
        self.https_port = spec.https_port
        self.open_ports: tuple[int, ...] = spec.open_ports
        self.dns_ip = spec.dns_ip
        self.dns_port: int | None = spec.dns_port if spec.dns_ip is not None else None
        self._ips = tuple(spec.host(n) for n in range(1, spec.count + 1))
        weak = frozenset(spec.host(n) for n in spec.weak)
        fragile = frozenset(spec.host(n) for n in spec.fragile)
        self._certs = make_certificates(
            ips=self._ips,
            weak=weak,
            names=(f"www.{spec.zone.strip('.')}", f"portal.{spec.zone.strip('.')}"),
            now=(clock or SystemClock()).now(),
        )
        self.ca_pem: bytes = self._certs.ca_pem
        self._tallies = {ip: Tally() for ip in self._ips}
        self._sites = {
            ip: Site(
                ip=ip,
                weak=ip in weak,
                fragile_rps=spec.fragile_rps if ip in fragile else None,
                https_port=spec.https_port,
                tally=self._tallies[ip],
            )
            for ip in self._ips
        }
        self._dns_queries = 0
        self._started = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._startup_error: BaseException | None = None
        self._servers: list[asyncio.Server] = []
        self._udp: list[asyncio.BaseTransport] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._skipped: list[str] = []
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Farm:
        """Bind every listener and serve in a daemon thread; returns once serving.

        Raises:
            StateError: the farm was started before.
            FailureError: no target could serve, or startup did not finish in time.
        """
        if self._started:
            raise StateError("farm: already started (a farm starts once)")
        self._started = True
        self._thread = threading.Thread(target=self._run, name="rio-demo-farm", daemon=True)
        self._thread.start()
        # A few thousand targets (the bench's whole runs) take longer than the demo's 29.
        startup = _STARTUP_TIMEOUT + 0.02 * self.spec.count
        if not self._ready.wait(startup):
            self.close()
            raise FailureError(f"farm: not serving after {startup:.0f} s")
        if self._startup_error is not None:
            self.close()
            raise FailureError(f"farm: could not start: {self._startup_error}") from (
                self._startup_error
            )
        return self

    def close(self) -> None:
        """Stop serving and free every port; safe to call twice or after the lifetime ended."""
        self._closing = True  # seen by a loop still binding (close() during a slow start)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            # RuntimeError: the loop already closed itself (lifetime over).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT)

    @property
    def running(self) -> bool:
        """Whether the farm is serving (started, not closed, lifetime not over)."""
        return self._ready.is_set() and not self._done.is_set() and self._startup_error is None

    def __enter__(self) -> Farm:
        return self if self._started else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what benchmarks read ----------------------------------------------------------------

    def counters(self) -> dict[str, dict[str, int]]:
        """Per target IP: ``http_requests``, ``https_requests``, ``tcp_accepts`` (connections to
        the open-port listeners) and ``responses_429``; see :data:`COUNTER_KEYS`."""
        return {ip: tally.counts() for ip, tally in self._tallies.items()}

    @property
    def dns_queries(self) -> int:
        """How many DNS queries (UDP and TCP) the stub received."""
        return self._dns_queries

    def request_times(self, ip: str) -> list[float]:
        """Monotonic arrival times (``time.monotonic()``) of HTTP(S) requests to ``ip``.

        Raises:
            NotFoundError: ``ip`` is not one of the farm's target addresses.
        """
        tally = self._tallies.get(ip)
        if tally is None:
            raise NotFoundError(f"farm: {ip!r} is not a target of {self.spec.network}")
        return tally.times()

    # -- the loop thread -----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._startup_error = self._startup_error or exc
            _LOG.exception("farm %s: loop failed", self.spec.network)
        finally:
            try:
                loop.run_until_complete(_cancel_leftovers())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()
                self._done.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self._bind_all()
        except BaseException as exc:
            self._startup_error = exc
            await self._shutdown()
            return
        finally:
            self.skipped = tuple(self._skipped)
            self._ready.set()
        try:
            if not self._closing:
                await asyncio.wait_for(self._stop.wait(), self.spec.lifetime)
        except TimeoutError:
            _LOG.info("farm %s: lifetime of %.0f s over", self.spec.network, self.spec.lifetime)
        await self._shutdown()

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for transport in self._udp:
            transport.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        # Transports close their sockets in a callback: let the loop run those callbacks.
        for _ in range(3):
            await asyncio.sleep(0)

    def _track(self) -> Callable[[], None]:
        task = asyncio.current_task()
        if task is None:
            return lambda: None
        self._handlers.add(task)
        return lambda: self._handlers.discard(task)

    async def _bind_all(self) -> None:
        contexts = server_contexts(self._certs)
        https, serving_https = await self._bind_service(
            "https",
            self.spec.https_port,
            lambda ip: serve_http(self._sites[ip], "https", self._track),
            contexts=contexts,
        )
        # HTTPS first: plain HTTP redirects to the HTTPS port actually bound (port 0 resolved).
        self._sites = {ip: replace(site, https_port=https) for ip, site in self._sites.items()}
        http, serving_http = await self._bind_service(
            "http", self.spec.http_port, lambda ip: serve_http(self._sites[ip], "http", self._track)
        )
        self.http_port, self.https_port = http, https
        self.targets = tuple(ip for ip in self._ips if ip in serving_http and ip in serving_https)
        if not self.targets:
            raise FailureError(f"farm {self.spec.network}: no target could serve HTTP and HTTPS")
        open_ports: list[int] = []
        for port in self.spec.open_ports:
            bound, _ = await self._bind_service(
                "tcp", port, lambda ip: self._accept_and_close(self._tallies[ip]), only=self.targets
            )
            if bound:
                open_ports.append(bound)
        self.open_ports = tuple(open_ports)
        if self.spec.dns_ip is not None:
            self.dns_port = await self._bind_dns(self.spec.dns_ip, self.spec.dns_port)

    def _accept_and_close(self, tally: Tally) -> _Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tally.add("tcp_accepts")
            writer.close()

        return handle

    async def _bind_service(
        self,
        label: str,
        port: int,
        handler: Callable[[str], _Handler],
        *,
        contexts: dict[str, ssl.SSLContext] | None = None,
        only: tuple[str, ...] | None = None,
    ) -> tuple[int, set[str]]:
        """Bind one listener per target on ``port``; returns the port bound (0 when none) and
        the addresses serving. A port 0 is picked by the first target and retried a few times
        when another target cannot bind the same number."""
        ips = only if only is not None else self._ips
        for _ in range(_PICK_ATTEMPTS if port == 0 else 1):
            chosen = port
            servers: list[asyncio.Server] = []
            serving: set[str] = set()
            failures: list[str] = []
            collided = False
            for ip in ips:
                try:
                    server = await asyncio.start_server(
                        handler(ip),
                        ip,
                        chosen,
                        ssl=contexts[ip] if contexts is not None else None,
                        ssl_handshake_timeout=_HANDSHAKE_TIMEOUT if contexts else None,
                        limit=_HEAD_LIMIT,
                    )
                except OSError as exc:
                    if exc.errno in (errno.EACCES, errno.EPERM) and chosen < 1024:
                        # Not root: skip the privileged port for the whole farm, say so once.
                        self._skipped.append(
                            f"{label}/{chosen}: not bound on any target: permission denied "
                            "(ports below 1024 need root)"
                        )
                        return 0, set()
                    collided = port == 0 and exc.errno == errno.EADDRINUSE
                    failures.append(f"{ip}:{chosen}/{label}: {exc.strerror or exc}")
                    if collided:
                        break
                    continue
                if chosen == 0:
                    chosen = server.sockets[0].getsockname()[1]
                servers.append(server)
                serving.add(ip)
            if collided:
                for server in servers:
                    server.close()
                continue
            self._servers.extend(servers)
            self._skipped.extend(failures)
            return (chosen if serving else 0), serving
        self._skipped.append(f"{label}: no free port shared by every target")
        return 0, set()

    def _count_dns(self) -> None:
        self._dns_queries += 1  # only the loop thread writes; an int read is atomic

    async def _bind_dns(self, ip: str, port: int) -> int | None:
        zone = DemoZone(
            zone=self.spec.zone,
            first=self.spec.host(1),
            second=self.spec.host(2) if self.spec.count >= 2 else self.spec.host(1),
            ns=ip,
        )
        try:
            bound, transport, server = await start_dns(
                zone, ip, port, self._count_dns, attempts=_PICK_ATTEMPTS if port == 0 else 1
            )
        except OSError as exc:
            self._skipped.append(f"dns {ip}:{port}: not started: {exc.strerror or exc}")
            return None
        self._udp.append(transport)
        self._servers.append(server)
        return bound
