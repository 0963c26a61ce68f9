"""What the single-port service probes (ssh, redis, memcached, ftp) share.

Each of them connects to the permit's pinned address and port only, says one small documented
thing a normal client says, reads a bounded answer and closes. This module holds the parameter
check (canonical IP, port, timeout, the probe's own yes/no switches), one bounded TCP
conversation over asyncio streams, and the translation of socket errors into outcome classes.
Every read and write is bounded by the probe's timeout and the permit's deadline, and every
read by a byte limit, so a server that talks forever cannot hold a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from probes.base import Observation, Permit, ProbeContext, ProbeResult, monotonic
from probes.errors import ProbeArgumentError, ProbeCancelledError

__all__ = ["Conversation", "Endpoint", "Stop", "Tally", "endpoint"]

_DEFAULT_TIMEOUT = 5.0


class Stop(Exception):
    """The conversation ended early (timeout, unreachable, garbage); carries the outcome."""

    def __init__(self, outcome: str, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """The checked parameters of a single-port probe."""

    ip: str
    port: int
    timeout: float
    switches: Mapping[str, bool]


def _refuse(probe: str, name: str, value: object, why: str) -> ProbeArgumentError:
    return ProbeArgumentError(f"{probe} probe: {name}: {value!r} {why}")


def endpoint(probe: str, permit: Permit, switches: Mapping[str, bool]) -> Endpoint:
    """Check a permit's address, port and parameters against what the probe accepts.

    Args:
        probe: the probe's name (for messages).
        permit: the gate's permit.
        switches: the probe's boolean parameters and their defaults.

    Raises:
        ProbeArgumentError: an unknown key, a bad timeout or switch, a non-canonical IP, a bad port.
    """
    params: Mapping[str, Any] = permit.params
    allowed = {"timeout", *switches}
    unknown = sorted(str(k) for k in params if k not in allowed)
    if unknown:
        raise _refuse(probe, "params", unknown, f"has unknown keys (allowed: {sorted(allowed)})")
    timeout = params.get("timeout", _DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _refuse(probe, "params.timeout", timeout, "is not a positive number of seconds")
    chosen: dict[str, bool] = {}
    for name, default in switches.items():
        value = params.get(name, default)
        if not isinstance(value, bool):
            raise _refuse(probe, f"params.{name}", value, "is not true or false")
        chosen[name] = value
    try:
        ip = ipaddress.ip_address(permit.ip)
    except ValueError:
        raise _refuse(probe, "ip", permit.ip, "is not an IP address literal") from None
    if str(ip) != permit.ip:
        raise _refuse(probe, "ip", permit.ip, "is not a canonical IP literal")
    port = permit.port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _refuse(probe, "port", port, "is not a port number 1-65535")
    return Endpoint(ip=str(ip), port=port, timeout=float(timeout), switches=chosen)


@dataclass(kw_only=True, slots=True)
class Tally:
    """Connections opened and the first answer's latency, for the result and the breaker."""

    probe: str
    ip: str
    started: float = field(default_factory=monotonic)
    connections: int = 0
    latency: float | None = None
    observations: list[Observation] = field(default_factory=list)

    def answered(self) -> None:
        if self.latency is None:
            self.latency = monotonic() - self.started

    def result(self, outcome: str = "ok", error: str | None = None) -> ProbeResult:
        return ProbeResult(
            probe=self.probe,
            ip=self.ip,
            outcome=outcome,
            observations=tuple(self.observations),
            error=error,
            started=self.started,
            elapsed=monotonic() - self.started,
            connections=self.connections,
            latency=self.latency,
        )


def _local(source: str | None) -> tuple[str, int] | None:
    """Where a connection leaves from: the pinned source address (any port), or the routing's."""
    return (source, 0) if source is not None else None


class Conversation:
    """One TCP connection to the pinned address, every step bounded in time and size."""

    def __init__(
        self, *, probe: str, end: Endpoint, permit: Permit, ctx: ProbeContext, tally: Tally
    ) -> None:
        self.probe = probe
        self.end = end
        self.permit = permit
        self.ctx = ctx
        self.tally = tally
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def _budget(self, step: str) -> float:
        if self.ctx.is_cancelled():
            raise ProbeCancelledError(f"{self.probe} probe: cancelled before {step}")
        left = self.permit.seconds_left()
        if left <= 0:
            raise Stop("timeout", f"{step}: permit deadline reached")
        return min(self.end.timeout, left)

    async def __aenter__(self) -> Conversation:
        limit = self._budget("connect")
        self.tally.connections += 1
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.end.ip, self.end.port, local_addr=_local(self.ctx.source_address)
                ),
                limit,
            )
        except TimeoutError as exc:
            raise Stop("timeout", f"connect {self.end.ip}:{self.end.port}: no answer") from exc
        except OSError as exc:
            raise Stop("unreachable", f"connect {self.end.ip}:{self.end.port}: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        writer = self._writer
        if writer is None:
            return
        writer.close()
        # The peer may have gone first or hang; the socket is closed on our side either way.
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise RuntimeError("conversation used outside its async with block")
        return self._reader, self._writer

    async def send(self, data: bytes) -> None:
        _, writer = self._streams()
        limit = self._budget("send")
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), limit)
        except TimeoutError as exc:
            raise Stop("timeout", "send: the peer does not read") from exc
        except OSError as exc:
            raise Stop("unreachable", f"send: {exc}") from exc

    async def _read(self, step: str, coro: Any) -> bytes:
        limit = self._budget(step)
        try:
            data: bytes = await asyncio.wait_for(coro, limit)
        except TimeoutError as exc:
            raise Stop("timeout", f"{step}: no answer") from exc
        except asyncio.IncompleteReadError as exc:
            raise Stop(
                "error", f"{step}: connection closed after {len(exc.partial)} bytes"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise Stop("error", f"{step}: line longer than the probe reads") from exc
        except (ValueError, OSError) as exc:
            raise Stop("error", f"{step}: {exc}") from exc
        self.tally.answered()
        return data

    async def line(self, step: str, limit: int = 4096) -> bytes:
        """One line (up to ``limit`` bytes, ending in LF); an empty result means the peer closed."""
        reader, _ = self._streams()
        data = await self._read(step, _bounded_line(reader, limit))
        return data

    async def exactly(self, step: str, n: int) -> bytes:
        reader, _ = self._streams()
        return await self._read(step, reader.readexactly(n))

    async def upto(self, step: str, n: int) -> bytes:
        """Whatever the peer sends next, at most ``n`` bytes (empty if it closed)."""
        reader, _ = self._streams()
        return await self._read(step, reader.read(n))


async def _bounded_line(reader: asyncio.StreamReader, limit: int) -> bytes:
    out = bytearray()
    while len(out) < limit:
        chunk = await reader.read(1)
        if not chunk:
            break
        out += chunk
        if chunk == b"\n":
            break
    if len(out) >= limit and not out.endswith(b"\n"):
        raise asyncio.LimitOverrunError("line too long", len(out))
    return bytes(out)
