"""The probe contract: a permit in, a typed result out.

A probe is a class with two attributes, ``name`` and ``disruption``, and one method,
``run(permit, ctx) -> ProbeResult``. Probes act only on a :class:`Permit`. A permit can only be
made by :func:`_seal_permit`, which the gate calls; ``Permit.__post_init__`` refuses any permit
whose seal does not match its fields, so a permit cannot be built by hand or altered (e.g. its
pinned address swapped) after the gate issued it. :func:`check_permit` is called by every probe
before it sends anything: it verifies the seal, the probe name and the deadline.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from probes.errors import PermitError

if TYPE_CHECKING:
    from probes.http import HttpClients

__all__ = [
    "Disruption",
    "Observation",
    "OnWire",
    "Permit",
    "Probe",
    "ProbeContext",
    "ProbeResult",
    "check_permit",
]

# One key per process. Permits never cross a process boundary as objects: a worker in another
# process receives their wire form (the permit's fields and the number of the gate's decision
# leaf, HMAC-tagged under the deployment's RIO_PERMIT_KEY: orchestrator/run/executors/_wire.py),
# verifies the tag and the deadline, and only then seals a local permit with its own key; it asks
# no gate of its own. The key is not a secret against code running in the same interpreter; it
# makes forging a permit a deliberate act instead of an accident.
_SEAL_KEY = secrets.token_bytes(32)


class Disruption(enum.IntEnum):
    """How much a probe may disturb its target; the gate compares it with the policy maximum."""

    PASSIVE = 0
    """Reads public data about the target without touching it (e.g. DNS of the zone)."""
    LIGHT = 1
    """A handful of ordinary requests a normal client would send (connect, HEAD, handshake)."""
    INTRUSIVE = 2
    """Requests a normal client would not send (zone transfer, scripted checks)."""
    DISRUPTIVE = 3
    """May degrade service (floods, exploits). Never allowed by any shipped policy."""

    @classmethod
    def parse(cls, text: str) -> Disruption:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise ValueError(
                f"unknown disruption class {text!r} (expected one of {names})"
            ) from None


def _params_json(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, kw_only=True, slots=True)
class Permit:
    """The gate's yes: one probe, one pinned address, until a deadline.

    Attributes:
        run_id: the run the probe belongs to.
        notice_id: the notice that announced the target.
        decision: sequence number of the gate decision (the leaf that recorded it).
        probe: name of the probe allowed.
        target: the target as announced (ip, host, url or domain).
        ip: the pinned canonical IP literal the probe must connect to.
        port: the port for single-port probes, ``None`` for port sweeps and DNS.
        ports: the ports a port sweep may touch.
        server_name: Host header / SNI / DNS name, where the target has one.
        params: the policy's parameters for this probe (JSON-able).
        deadline: UTC instant by which the probe must have finished.
        max_rate: packets (connections) per second the probe may use.
        seal: HMAC over all fields, set by the gate.
    """

    run_id: str
    notice_id: str
    decision: int
    probe: str
    target: str
    ip: str
    port: int | None = None
    ports: tuple[int, ...] = ()
    server_name: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    deadline: datetime
    max_rate: float = 1.0
    seal: bytes = b""

    def __post_init__(self) -> None:
        if not hmac.compare_digest(self.seal, _digest(self)):
            raise PermitError("permit is not sealed by the gate")

    def seconds_left(self, now: datetime | None = None) -> float:
        current = now if now is not None else datetime.now(UTC)
        return (self.deadline - current).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """The permit's fields as written into the probe log (no seal)."""
        return {
            "run": self.run_id,
            "notice": self.notice_id,
            "decision": self.decision,
            "probe": self.probe,
            "target": self.target,
            "ip": self.ip,
            "port": self.port,
            "ports": list(self.ports),
            "server_name": self.server_name,
            "params": dict(self.params),
            "deadline": self.deadline.isoformat(),
            "max_rate": self.max_rate,
        }


def _digest(p: Permit) -> bytes:
    body = _params_json(
        {
            "run": p.run_id,
            "notice": p.notice_id,
            "decision": p.decision,
            "probe": p.probe,
            "target": p.target,
            "ip": p.ip,
            "port": p.port,
            "ports": list(p.ports),
            "server_name": p.server_name,
            "params": dict(p.params),
            "deadline": p.deadline.isoformat(),
            "max_rate": p.max_rate,
        }
    )
    return hmac.new(_SEAL_KEY, body.encode(), hashlib.sha256).digest()


def _seal_permit(**fields: Any) -> Permit:
    """Build a sealed permit. Only the gate calls this."""
    unsealed = object.__new__(Permit)
    for name, value in fields.items():
        object.__setattr__(unsealed, name, value)
    for name in ("port", "server_name"):
        if name not in fields:
            object.__setattr__(unsealed, name, None)
    if "ports" not in fields:
        object.__setattr__(unsealed, "ports", ())
    if "params" not in fields:
        object.__setattr__(unsealed, "params", {})
    if "max_rate" not in fields:
        object.__setattr__(unsealed, "max_rate", 1.0)
    # Sealed in place: constructing it anew would only compute the same digest again.
    object.__setattr__(unsealed, "seal", _digest(unsealed))
    return unsealed


def check_permit(permit: Permit, probe: str, now: datetime | None = None) -> None:
    """Refuse to act on a permit that is not for this probe or has expired.

    Raises:
        PermitError: the permit names another probe, or its deadline has passed.
    """
    if not isinstance(permit, Permit):
        raise PermitError(f"{probe}: expected a Permit, got {type(permit).__name__}")
    if not hmac.compare_digest(permit.seal, _digest(permit)):
        raise PermitError(f"{probe}: permit seal does not match its fields")
    if permit.probe != probe:
        raise PermitError(f"{probe}: permit is for probe {permit.probe!r}")
    if permit.seconds_left(now) <= 0:
        raise PermitError(f"{probe}: permit deadline {permit.deadline.isoformat()} has passed")


@dataclass(frozen=True, kw_only=True, slots=True)
class Observation:
    """One fact a probe saw, e.g. ``port 22/tcp open`` or ``header hsts missing``.

    ``key`` is a dotted name (``port.open``, ``http.header.hsts``, ``tls.cert.expired``); findings
    rules match on it. ``value`` is JSON-able. ``evidence`` is confidential detail (banners,
    certificate text) that is stored encrypted and never written into the probe log.
    """

    key: str
    value: Any = None
    port: int | None = None
    evidence: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeResult:
    """What a probe returns: observations, an outcome class and timing."""

    probe: str
    ip: str
    outcome: str
    """``ok``, ``timeout``, ``unreachable``, ``error``, ``refused`` or ``killed``."""
    observations: tuple[Observation, ...] = ()
    error: str | None = None
    started: float = 0.0
    """monotonic seconds"""
    elapsed: float = 0.0
    """seconds"""
    connections: int = 0
    """connections (or packets for DNS) the probe opened; the auditor replays rates from this"""
    latency: float | None = None
    """seconds to first answer, for the health breaker"""
    http_status: int | None = None
    retry_after: float | None = None
    connection_times: tuple[float, ...] = ()
    """wall-clock instants (epoch seconds) of the connections the tool itself reports having
    opened (nmap's packet trace in a batch scan); empty where the probe does not know them"""


class OnWire(Protocol):
    """The runner's ear on a probe's wire (``ProbeContext.on_wire``)."""

    def __call__(self, *, end: bool = False) -> None:
        """Something went out now; ``end``: an answer to everything sent so far is in."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeContext:
    """What a probe may use besides its permit.

    Attributes:
        user_agent: the inspection's User-Agent, ``rio/<version> (+notice <id>; by <who>)``:
            who scans (the entrusted vendor, or the inspecting organ) under which notice.
        from_address: the inspecting side's mailbox, sent as the HTTP ``From`` header.
        nmap_path: path to the nmap binary, ``None`` to look it up on PATH.
        openssl_path: path to the openssl binary (the tls probe's ``inspect`` step), ``None``
            to look it up on PATH.
        dns_port: port of the DNS servers the dns probe asks (53 in production; tests use a
            stub on loopback).
        cancelled: returns True once the kill switch fired.
        http_clients: the run's shared http clients (one per target class), ``None`` for a
            client per probe.
        on_wire: called at once each time the probe puts something on the wire (a connection
            opened, a request written), and with ``end=True`` as soon as an answer to all of it
            is in (a response's head: the target has received everything sent so far). The
            runner moves the probe's rate budget units to that moment (``None``: nobody
            listens).
        source_address: the scanner source address the probe's connections must leave from
            (a worker pinned to an egress); ``None``: whatever the host's routing picks. Only
            probes whose class sets ``binds_source = True`` honour it; a pinned worker sends no
            other probe.
        sources: the scanner source addresses the permit's notice announced.
    """

    user_agent: str
    from_address: str | None = None
    nmap_path: str | None = None
    openssl_path: str | None = None
    dns_port: int = 53
    cancelled: Any = None
    http_clients: HttpClients | None = None
    on_wire: OnWire | None = None
    source_address: str | None = None
    sources: tuple[str, ...] = ()

    def is_cancelled(self) -> bool:
        return bool(self.cancelled()) if callable(self.cancelled) else False


def monotonic() -> float:
    return time.monotonic()


@runtime_checkable
class Probe(Protocol):
    """A non-disruptive probe: a name, a disruption class, and one method."""

    name: ClassVar[str]
    disruption: ClassVar[Disruption]

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Run against the permit's pinned address only and return what was seen."""
        ...
