"""Policy files (``policies/*.yaml``): how an inspection may probe.

A policy sets the minimum notice lead time (Art. 16: the object is told in advance), the allowed
weekday/time-of-day windows and blackout dates, rate budgets per IP, per network, per notice and
globally, concurrency, the allowed probes with their parameters, the maximum disruption class, the
target-health thresholds and the sign-off thresholds (Art. 18: two or more officers).
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator, model_validator

from orchestrator.errors import PolicyFileError
from orchestrator.intake._types import STRICT, Duration, TimezoneName
from orchestrator.intake._yaml import parse_document, read_document
from probes.base import Disruption
from probes.content import CONTENT_PATHS
from probes.port import minimum_host_timeout
from probes.tls import INSPECT_HANDSHAKES

__all__ = [
    "POLICY_FORMAT",
    "SERVICE_PROBES",
    "Blackout",
    "ContentParams",
    "DnsParams",
    "FtpParams",
    "HealthPolicy",
    "HttpParams",
    "MemcachedParams",
    "Policy",
    "PolicyWindow",
    "PortParams",
    "ProbeParams",
    "Rates",
    "RedisParams",
    "ServiceParams",
    "Signoff",
    "SshParams",
    "TlsParams",
    "Weekday",
    "load_policy",
    "parse_policy",
    "policy_json_schema",
]

POLICY_FORMAT = "rio.policy/v1"


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


def _clock(value: Any) -> time:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads 22:00 as a sexagesimal integer; quote times, but accept it.
        value = f"{value // 60:02d}:{value % 60:02d}"
    if not isinstance(value, str):
        raise ValueError("a time of day like '22:00' is expected")
    if value == "24:00":
        return time.max
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError("a time of day like '22:00' is expected") from None


class PolicyWindow(BaseModel):
    """Days of the week and a time of day when probing is allowed (policy timezone)."""

    model_config = STRICT
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_clock(cls, value: Any) -> time:
        return _clock(value)

    @model_validator(mode="after")
    def _ordered(self) -> PolicyWindow:
        if self.end <= self.start:
            raise ValueError(
                "the window ends before it starts (split a window over midnight into two)"
            )
        return self

    def contains(self, local: datetime) -> bool:
        day = list(Weekday)[local.weekday()]
        return day in self.days and self.start <= local.time() < self.end

    def end_on(self, local: datetime) -> datetime:
        """The end of this window on ``local``'s day (aware, policy timezone)."""
        if self.end == time.max:
            return datetime.combine(local.date() + timedelta(days=1), time(0), local.tzinfo)
        end = datetime.combine(local.date(), self.end, local.tzinfo)
        if local.fold and end.astimezone(UTC) <= local.astimezone(UTC):
            # In the second pass of a repeated hour (clocks set back), the end time written in
            # the policy means the end's second pass too.
            end = end.replace(fold=1)
        return end


class Blackout(BaseModel):
    """Dates on which nothing may be probed (e.g. a major holiday or event)."""

    model_config = STRICT
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    reason: str = ""

    @model_validator(mode="before")
    @classmethod
    def _single_date(cls, data: Any) -> Any:
        if isinstance(data, date):
            return {"from": data, "to": data}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Blackout:
        if self.end < self.start:
            raise ValueError("the blackout ends before it starts")
        return self

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


class Rates(BaseModel):
    """Probes per second, never more in any one-second sliding window."""

    model_config = STRICT
    per_ip: int = Field(ge=1, le=100_000)
    per_network: int = Field(ge=1, le=100_000)
    per_notice: int = Field(ge=1, le=1_000_000)
    global_: int = Field(ge=1, le=1_000_000, alias="global")
    network_prefix_v4: int = Field(default=24, ge=8, le=32)
    network_prefix_v6: int = Field(default=64, ge=16, le=128)


class HealthPolicy(BaseModel):
    """When a target shows distress: throttle, then pause."""

    model_config = STRICT
    consecutive_failures: int = Field(default=3, ge=1, le=100)
    latency_factor: float = Field(default=5.0, gt=1.0, le=1000.0)
    baseline_samples: int = Field(default=5, ge=1, le=1000)
    cooldown: Duration = timedelta(seconds=60)
    backoff: float = Field(default=0.5, gt=0.0, lt=1.0)


class Signoff(BaseModel):
    """Who must sign the record before it can be closed (Art. 18)."""

    model_config = STRICT
    officers: int = Field(default=2, le=20)
    technicians: int = Field(default=1, ge=0, le=20)

    @field_validator("officers")
    @classmethod
    def _two_or_more(cls, value: int) -> int:
        if value < 2:
            raise ValueError("Art. 18 requires two or more officers to sign (minimum 2)")
        return value


def _ports(value: tuple[int, ...]) -> tuple[int, ...]:
    for p in value:
        if not 1 <= p <= 65535:
            raise ValueError(f"port {p} is outside 1..65535")
    if len(set(value)) != len(value):
        raise ValueError("ports are listed twice")
    return value


class PortParams(BaseModel):
    model_config = STRICT
    ports: tuple[int, ...] = Field(min_length=1, max_length=1024)
    retries: int = Field(default=1, ge=0, le=5)
    host_timeout: Duration = timedelta(seconds=60)
    version_detection: bool = False
    scripts: tuple[str, ...] = ()

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _ports(value)


class HttpParams(BaseModel):
    model_config = STRICT
    ports: tuple[int, ...] = (80,)
    https_ports: tuple[int, ...] = (443,)
    paths: tuple[str, ...] = ("/",)
    method: Literal["HEAD", "GET"] = "GET"
    max_body: int = Field(default=65_536, ge=0, le=10_485_760)
    timeout: Duration = timedelta(seconds=10)

    @field_validator("ports", "https_ports")
    @classmethod
    def _check_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _ports(value)

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for p in value:
            if not p.startswith("/") or any(c.isspace() for c in p) or "#" in p:
                raise ValueError(f"path {p!r} must be absolute, without spaces or fragments")
        return value


class TlsParams(BaseModel):
    model_config = STRICT
    ports: tuple[int, ...] = (443,)
    timeout: Duration = timedelta(seconds=10)
    check_legacy: bool = True
    enumerate: bool = False
    """accepted cipher suites per protocol and TLS 1.3 support, judged against Mozilla's profile"""
    max_handshakes: int = Field(default=24, ge=1, le=64)
    """the most handshakes the enumeration may spend per port (its rate-budget cost)"""
    inspect: bool = False
    """two more handshakes (openssl s_client): secure renegotiation, OCSP stapling, DH and ECDH
    group sizes, and the certificate chain judged against the system store and ``ca_bundle``"""
    ca_bundle: str | None = None
    """absolute path of a PEM file of CA certificates trusted besides the system store (the
    object's private CA); the tls.chain observation records its SHA-256"""

    def connections(self) -> int:
        """Handshakes one tls probe of a port may open (its rate-budget cost)."""
        return (
            (3 if self.check_legacy else 1)
            + (self.max_handshakes if self.enumerate else 0)
            + (INSPECT_HANDSHAKES if self.inspect else 0)
        )

    @field_validator("ca_bundle")
    @classmethod
    def _bundle(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute():
            raise ValueError(f"ca_bundle {value!r} is not an absolute path")
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ValueError(f"ca_bundle {value!r} cannot be read: {exc.strerror}") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"ca_bundle {value!r} holds no PEM certificate")
        return value

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _ports(value)


_RECORD_TYPES = ("A", "AAAA", "MX", "NS", "TXT", "CAA", "SOA")


class DnsParams(BaseModel):
    model_config = STRICT
    record_types: tuple[str, ...] = _RECORD_TYPES
    recursion_check: bool = True
    version_check: bool = True
    """one CHAOS TXT query for ``version.bind`` (what every resolver tool asks)"""
    timeout: Duration = timedelta(seconds=5)

    def connections(self) -> int:
        """Queries one dns probe sends its name server: the record types, SPF, DMARC and DNSSEC
        lookups, and the recursion and ``version.bind`` checks asked for."""
        return len(self.record_types) + 3 + int(self.recursion_check) + int(self.version_check)

    @field_validator("record_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for t in value:
            if t not in _RECORD_TYPES:
                raise ValueError(f"record type {t!r} is not one of {', '.join(_RECORD_TYPES)}")
        return value


class AxfrParams(BaseModel):
    model_config = STRICT
    timeout: Duration = timedelta(seconds=10)


class ContentParams(BaseModel):
    """The http-content probe: which well-known paths to GET on which ports."""

    model_config = STRICT
    ports: tuple[int, ...] = (80,)
    https_ports: tuple[int, ...] = (443,)
    paths: tuple[str, ...] = Field(min_length=1, max_length=len(CONTENT_PATHS))
    max_body: int = Field(default=16_384, ge=1, le=65_536)
    timeout: Duration = timedelta(seconds=10)

    @field_validator("ports", "https_ports")
    @classmethod
    def _check_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _ports(value)

    @field_validator("paths")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if path not in CONTENT_PATHS:
                raise ValueError(f"path {path!r} is not one of {', '.join(CONTENT_PATHS)}")
        if len(set(value)) != len(value):
            raise ValueError("paths are listed twice")
        return value


class ServiceParams(BaseModel):
    """A single-port service probe (redis, memcached): the ports it may touch and its timeout."""

    model_config = STRICT
    ports: tuple[int, ...] = Field(min_length=1, max_length=16)
    timeout: Duration = timedelta(seconds=5)

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _ports(value)

    def switches(self) -> dict[str, bool]:
        """The probe's yes/no parameters (none here; subclasses add theirs)."""
        return {}

    def connections(self) -> int:
        """Connections one probe of this kind opens (its rate-budget cost per port)."""
        return 1


class RedisParams(ServiceParams):
    ports: tuple[int, ...] = Field(default=(6379,), min_length=1, max_length=16)


class MemcachedParams(ServiceParams):
    ports: tuple[int, ...] = Field(default=(11211,), min_length=1, max_length=16)


class SshParams(ServiceParams):
    ports: tuple[int, ...] = Field(default=(22,), min_length=1, max_length=16)
    auth_methods: bool = False
    """a second connection: key exchange and one ``none`` request, to learn the allowed methods"""

    def switches(self) -> dict[str, bool]:
        return {"auth_methods": self.auth_methods}

    def connections(self) -> int:
        return 2 if self.auth_methods else 1


class FtpParams(ServiceParams):
    ports: tuple[int, ...] = Field(default=(21,), min_length=1, max_length=16)
    anonymous: bool = False
    """try the public ``anonymous`` login (RFC 1635), then quit without listing anything"""

    def switches(self) -> dict[str, bool]:
        return {"anonymous": self.anonymous}


class SmtpParams(ServiceParams):
    """The smtp probe: greeting, one EHLO, QUIT (no mail command)."""

    ports: tuple[int, ...] = Field(default=(25,), min_length=1, max_length=16)


#: single-port service probes: policy attribute -> probe name
SERVICE_PROBES: tuple[tuple[str, str], ...] = (
    ("ssh", "ssh"),
    ("redis", "redis"),
    ("memcached", "memcached"),
    ("ftp", "ftp"),
    ("smtp", "smtp"),
)


class ProbeParams(BaseModel):
    """The probes this policy allows, each with its parameters. Absent means not allowed."""

    model_config = STRICT
    port: PortParams | None = None
    http: HttpParams | None = None
    tls: TlsParams | None = None
    dns: DnsParams | None = None
    dns_axfr: AxfrParams | None = Field(default=None, alias="dns-axfr")
    http_content: ContentParams | None = Field(default=None, alias="http-content")
    ssh: SshParams | None = None
    redis: RedisParams | None = None
    memcached: MemcachedParams | None = None
    ftp: FtpParams | None = None
    smtp: SmtpParams | None = None

    def allowed(self) -> tuple[str, ...]:
        names = []
        for attr, name in (
            ("port", "port"),
            ("http", "http"),
            ("tls", "tls"),
            ("dns", "dns"),
            ("dns_axfr", "dns-axfr"),
            ("http_content", "http-content"),
            *SERVICE_PROBES,
        ):
            if getattr(self, attr) is not None:
                names.append(name)
        return tuple(names)

    def costs(self) -> tuple[tuple[str, int, str], ...]:
        """Each allowed probe's largest rate-budget cost: (probe, cost, what sets it)."""
        out: list[tuple[str, int, str]] = []
        if self.http is not None:
            out.append(("http", len(self.http.paths), "paths"))
        if self.tls is not None:
            out.append(("tls", self.tls.connections(), "check_legacy, enumerate, max_handshakes"))
        if self.dns is not None:
            why = "record_types, recursion_check, version_check"
            out.append(("dns", self.dns.connections(), why))
        if self.dns_axfr is not None:
            out.append(("dns-axfr", 1, "one transfer"))
        if self.http_content is not None:
            out.append(("http-content", len(self.http_content.paths), "paths"))
        for attr, name in SERVICE_PROBES:
            service: ServiceParams | None = getattr(self, attr)
            if service is not None:
                out.append((name, service.connections(), "its switches"))
        return tuple(out)

    def service(self, probe: str) -> ServiceParams | None:
        """The parameters of a single-port service probe, ``None`` when not allowed."""
        for attr, name in SERVICE_PROBES:
            if name == probe:
                value: ServiceParams | None = getattr(self, attr)
                return value
        return None


class TechnicianEvidence(enum.StrEnum):
    """When the entrusted vendor's technician may read the evidence of their vendor's runs.

    Art. 17 binds the vendor to confidentiality and the organ to supervise it. Every read,
    allowed or refused, is in the access log whatever the setting.
    """

    NEVER = "never"
    """only officers (and auditors with an officer's grant) read evidence"""
    WHILE_OPEN = "while-open"
    """until the run's record is closed: while probing and while the findings are checked and
    the record co-signed (the default)"""
    ALWAYS = "always"
    """for as long as the evidence is kept"""


class EvidencePolicy(BaseModel):
    """Who beyond the officers may read a run's evidence, and when (Art. 17)."""

    model_config = STRICT
    technician: TechnicianEvidence = TechnicianEvidence.WHILE_OPEN


class Policy(BaseModel):
    """A policy, as loaded from its file."""

    model_config = STRICT
    format: Literal["rio.policy/v1"]
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    timezone: TimezoneName
    min_notice_lead: Duration
    windows: tuple[PolicyWindow, ...] = Field(min_length=1)
    blackouts: tuple[Blackout, ...] = ()
    rates: Rates
    concurrency: int = Field(ge=1, le=1024)
    probe_timeout: Duration = timedelta(seconds=30)
    max_disruption: Disruption
    probes: ProbeParams
    health: HealthPolicy = HealthPolicy()
    signoff: Signoff = Signoff()
    evidence: EvidencePolicy = EvidencePolicy()

    @field_validator("max_disruption", mode="before")
    @classmethod
    def _disruption(cls, value: Any) -> Disruption:
        if not isinstance(value, str):
            raise ValueError("one of passive, light, intrusive is expected")
        level = Disruption.parse(value)
        if level >= Disruption.DISRUPTIVE:
            raise ValueError("Art. 16 forbids probes that may disrupt the object's operation")
        return level

    @model_validator(mode="after")
    def _some_probe(self) -> Policy:
        if not self.probes.allowed():
            raise ValueError("the policy allows no probe at all")
        if self.probe_timeout <= timedelta(0):
            raise ValueError("probe_timeout must be positive")
        self._port_scan_fits()
        tls = self.probes.tls
        if tls is not None and tls.enumerate:
            # The gate charges a probe's whole cost at once; more than a second's budget is
            # refused every time, so such a policy could never enumerate.
            cost = tls.connections()
            if cost > self.rates.per_ip:
                raise ValueError(
                    f"probes.tls.max_handshakes: a tls probe would cost {cost} connections, "
                    f"more than rates.per_ip {self.rates.per_ip} allows in one second"
                )
        self._probes_fit()
        return self

    def _probes_fit(self) -> None:
        # The gate charges a probe's whole cost against every one-second budget at once: a
        # probe that costs more than the tightest budget is refused every time, so a policy
        # allowing it would announce a check that is never made (the shipped default once
        # did this to every dns and tls probe).
        r = self.rates
        tightest, limit = min(
            (
                ("per_ip", r.per_ip),
                ("per_network", r.per_network),
                ("per_notice", r.per_notice),
                ("global", r.global_),
            ),
            key=lambda kv: kv[1],
        )
        for probe, cost, why in self.probes.costs():
            if cost > limit:
                raise ValueError(
                    f"probes.{probe}: one {probe} probe costs {cost} requests ({why}), more "
                    f"than rates.{tightest} {limit} allows in any one second, so it would never "
                    f"be sent: raise rates.{tightest} to at least {cost} or ask for less"
                )

    def _port_scan_fits(self) -> None:
        # A host timeout too short for the scan asked for loses every port silently (nmap
        # reports the host cut off). It is refused, not raised behind the author's back: the
        # policy is announced and hashed into the notice, so what it says is what rio does.
        port = self.probes.port
        if port is None:
            return
        chunk = min(len(port.ports), self.port_chunk)
        need = minimum_host_timeout(
            ports=chunk,
            rate=self.rates.per_ip,
            retries=port.retries,
            version_detection=port.version_detection,
            scripts=port.scripts,
        )
        asked = [f"{chunk} ports per probe at {self.rates.per_ip}/s, retries {port.retries}"]
        if port.version_detection:
            asked.append("version_detection")
        if port.scripts:
            asked.append("scripts " + ", ".join(port.scripts))
        why = f"too short for {'; '.join(asked)}: at least {need}s"
        host_timeout = port.host_timeout.total_seconds()
        if host_timeout < need:
            raise ValueError(f"probes.port.host_timeout: {host_timeout:g}s is {why}")
        # probe_timeout is not held to the same bound: a probe stopped at its permit's deadline
        # is already recorded as outcome ``timeout`` ("permit deadline reached; nmap killed").

    @property
    def port_chunk(self) -> int:
        """Ports one port probe scans at most: one second's worth of the tightest rate."""
        r = self.rates
        return max(1, min(r.per_ip, r.per_network, r.per_notice, r.global_))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def window_at(self, instant: datetime) -> PolicyWindow | None:
        local = instant.astimezone(self.tz)
        for w in self.windows:
            if w.contains(local):
                return w
        return None

    def blackout_on(self, instant: datetime) -> Blackout | None:
        day = instant.astimezone(self.tz).date()
        for b in self.blackouts:
            if b.covers(day):
                return b
        return None


def parse_policy(data: bytes, source: str) -> Policy:
    """Parse policy bytes strictly.

    Raises:
        PolicyFileError: naming ``source``, the field and the problem.
    """
    return parse_document(
        data,
        source,
        model=Policy,
        fmt=POLICY_FORMAT,
        error=PolicyFileError,
        keys="format, name, rates",
    )


def load_policy(path: Path) -> tuple[Policy, bytes]:
    """Read and parse a policy file; returns the policy and the exact bytes announced."""
    data = read_document(path, PolicyFileError)
    return parse_policy(data, str(path)), data


def policy_json_schema() -> str:
    return json.dumps(Policy.model_json_schema(by_alias=True), indent=2, sort_keys=True)
