"""Rules that turn a probe's observations into findings a person can act on.

The matching logic lives here, in code reviewed with the probes that make the observations; the
words (title, severity, kind, remediation) and the legal references live in the catalogue file,
so an operator can reword or re-cite without a code change. Every rule id used here must exist in
the catalogue (:data:`RULE_IDS`; a test checks the packaged file).

Each finding says **where** (:class:`Location`: the target as announced, the IP, port, transport,
scheme, the host name sent as Host/SNI or the domain asked, the path) and carries its
**evidence**: a JSON document of what was seen (the observations that fired, with the raw value
the probe read, and the context of the same probe: certificate subject, issuer, dates, key type
and bits, negotiated protocol and cipher, the HTTP status, the DNS records read, the banner).
The evidence is confidential; it is stored encrypted and only its SHA-256 enters
:meth:`Finding.to_json`.

Every finding has a **stable key**, the same in every run of the same object that sees the same
fault at the same place: ``RULE:HEX`` where HEX is a digest of the inspected object, the endpoint
and the *subject* of the evidence (the facts that say what the finding is about: the header, the
name checked, the zone; never dates, counters or banner versions, which change between runs
without the fault changing). Endpoint-level rules key on ``ip, port, transport, scheme``, so one
service reached as ``ip:`` and as ``host:`` has one key; a domain's missing SPF, DMARC or DNSSEC
keys on the domain, so it is one finding however many of its name servers were asked; an open
resolver keys on the server, so it is one finding however many domains it serves.

Within one probe result, one finding is made per key, however many paths or cookies showed the
same fault; the evidence lists every observation that did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from probes.base import Observation, ProbeResult
from probes.canonical import canonical_json
from probes.findings.catalogue import SEVERITIES, Catalogue
from probes.findings.versions import VersionTable, announced_versions

__all__ = [
    "EVIDENCE_FORMAT",
    "RISKY_PORTS",
    "RULE_IDS",
    "VERSION_RULE",
    "Finding",
    "Location",
    "derive_findings",
    "finding_key",
    "transport_of",
]

EVIDENCE_FORMAT = "rio.evidence/v1"

#: ports whose service should not face an untrusted network, and the rule each triggers
RISKY_PORTS: Mapping[int, str] = MappingProxyType(
    {
        21: "RIO-PORT-FTP",
        23: "RIO-PORT-TELNET",
        445: "RIO-PORT-SMB",
        3389: "RIO-PORT-RDP",
        1433: "RIO-PORT-DATABASE",
        3306: "RIO-PORT-DATABASE",
        5432: "RIO-PORT-DATABASE",
        6379: "RIO-PORT-DATABASE",
        27017: "RIO-PORT-DATABASE",
        1521: "RIO-PORT-DATABASE",  # Oracle
        5984: "RIO-PORT-DATABASE",  # CouchDB
        8086: "RIO-PORT-DATABASE",  # InfluxDB
        9042: "RIO-PORT-DATABASE",  # Cassandra
        9200: "RIO-PORT-DATABASE",  # Elasticsearch / OpenSearch HTTP
        9300: "RIO-PORT-DATABASE",  # Elasticsearch transport
        11211: "RIO-PORT-CACHE",  # memcached
    }
)
_EXPIRY_WARNING_DAYS = 30

# (transport, scheme) of each probe's traffic; a probe not listed is TCP with its own name.
_TRANSPORTS: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {
        "port": ("tcp", None),
        "http": ("tcp", "http"),
        "tls": ("tcp", "tls"),
        "dns": ("udp", "dns"),
        "dns-axfr": ("tcp", "dns"),
    }
)

# The HTTP header each header observation is about (named in the evidence).
_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "http.header.hsts": "strict-transport-security",
        "http.header.csp": "content-security-policy",
        "http.header.xcto": "x-content-type-options",
        "http.header.xfo": "x-frame-options",
    }
)


def transport_of(probe: str, params: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
    """``(transport, scheme)`` of a probe's traffic: ``("tcp", "https")`` for an https probe."""
    if probe in ("http", "http-content"):
        scheme = (params or {}).get("scheme", "http")
        return "tcp", str(scheme)
    return _TRANSPORTS.get(probe, ("tcp", probe))


def _value(obs: Observation) -> Mapping[str, Any]:
    return obs.value if isinstance(obs.value, Mapping) else {"value": obs.value}


def _false(name: str) -> Callable[[Observation], bool]:
    return lambda obs: _value(obs).get(name) is False


def _true(name: str) -> Callable[[Observation], bool]:
    return lambda obs: _value(obs).get(name) is True


def _is_true(obs: Observation) -> bool:
    return obs.value is True


def _xfo_missing(obs: Observation) -> bool:
    value = _value(obs)
    return value.get("present") is False and value.get("csp_frame_ancestors") is not True


def _cookie_not_secure(obs: Observation) -> bool:
    value = _value(obs)
    return value.get("scheme") == "https" and value.get("secure") is False


def _expiring(obs: Observation) -> bool:
    days = _value(obs).get("days_left")
    return isinstance(days, int) and 0 <= days < _EXPIRY_WARNING_DAYS


Subject = Callable[[Observation, "str | None"], Mapping[str, Any]]


def _nothing(obs: Observation, name: str | None) -> Mapping[str, Any]:
    return {}


def _banner_header(obs: Observation, name: str | None) -> Mapping[str, Any]:
    return {"header": _value(obs).get("header")}


def _checked_name(obs: Observation, name: str | None) -> Mapping[str, Any]:
    return {"server_name": _value(obs).get("server_name", name)}


def _zone(obs: Observation, name: str | None) -> Mapping[str, Any]:
    return {"zone": name}


def _path(obs: Observation, name: str | None) -> Mapping[str, Any]:
    return {"path": _value(obs).get("path")}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Match:
    rule: str
    key: str
    test: Callable[[Observation], bool]
    subject: Subject = _nothing
    per_domain: bool = False
    """True: the finding is about the domain asked (its records), not the server that answered."""


_MATCHES: tuple[_Match, ...] = (
    _Match(rule="RIO-HTTP-HSTS-MISSING", key="http.header.hsts", test=_false("present")),
    _Match(rule="RIO-HTTP-CSP-MISSING", key="http.header.csp", test=_false("present")),
    _Match(rule="RIO-HTTP-XCTO-MISSING", key="http.header.xcto", test=_false("present")),
    _Match(rule="RIO-HTTP-XFO-MISSING", key="http.header.xfo", test=_xfo_missing),
    _Match(rule="RIO-HTTP-COOKIE-NOT-SECURE", key="http.cookie", test=_cookie_not_secure),
    _Match(rule="RIO-HTTP-COOKIE-NOT-HTTPONLY", key="http.cookie", test=_false("httponly")),
    _Match(rule="RIO-HTTP-NO-HTTPS-REDIRECT", key="http.https_redirect", test=_false("redirects")),
    _Match(
        rule="RIO-HTTP-BANNER-VERSION",
        key="http.banner",
        test=_true("version"),
        subject=_banner_header,
    ),
    _Match(
        rule="RIO-HTTP-DIRECTORY-LISTING",
        key="http.content.listing",
        test=_true("exposed"),
        subject=_path,
    ),
    _Match(
        rule="RIO-HTTP-DEFAULT-PAGE",
        key="http.content.default_page",
        test=_true("exposed"),
        subject=_path,
    ),
    _Match(
        rule="RIO-HTTP-VCS-EXPOSED", key="http.content.vcs", test=_true("exposed"), subject=_path
    ),
    _Match(
        rule="RIO-HTTP-ENV-EXPOSED", key="http.content.env", test=_true("exposed"), subject=_path
    ),
    _Match(
        rule="RIO-HTTP-BACKUP-EXPOSED",
        key="http.content.backup",
        test=_true("exposed"),
        subject=_path,
    ),
    _Match(
        rule="RIO-HTTP-STATUS-PAGE",
        key="http.content.status_page",
        test=_true("exposed"),
        subject=_path,
    ),
    _Match(
        rule="RIO-HTTP-ADMIN-CONSOLE",
        key="http.content.admin_console",
        test=_true("exposed"),
        subject=_path,
    ),
    _Match(rule="RIO-TLS-EXPIRED", key="tls.cert.expired", test=_is_true),
    _Match(rule="RIO-TLS-NOT-YET-VALID", key="tls.cert.not_yet_valid", test=_is_true),
    _Match(rule="RIO-TLS-SELF-SIGNED", key="tls.cert.self_signed", test=_is_true),
    _Match(
        rule="RIO-TLS-NAME-MISMATCH",
        key="tls.cert.name",
        test=_false("match"),
        subject=_checked_name,
    ),
    _Match(rule="RIO-TLS-WEAK-KEY", key="tls.cert.key", test=_true("weak")),
    _Match(rule="RIO-TLS-WEAK-SIGNATURE", key="tls.cert.signature", test=_true("weak")),
    _Match(rule="RIO-TLS-EXPIRING", key="tls.cert.expiry", test=_expiring),
    _Match(rule="RIO-TLS-LEGACY-1-0", key="tls.legacy.tls1_0", test=_true("accepted")),
    _Match(rule="RIO-TLS-LEGACY-1-1", key="tls.legacy.tls1_1", test=_true("accepted")),
    _Match(rule="RIO-SSH-LEGACY-KEX", key="ssh.legacy.kex", test=_true("legacy")),
    _Match(rule="RIO-SSH-LEGACY-HOSTKEY", key="ssh.legacy.host_key", test=_true("legacy")),
    _Match(rule="RIO-SSH-LEGACY-CIPHER", key="ssh.legacy.cipher", test=_true("legacy")),
    _Match(rule="RIO-SSH-LEGACY-MAC", key="ssh.legacy.mac", test=_true("legacy")),
    _Match(rule="RIO-SSH-PASSWORD-AUTH", key="ssh.auth", test=_true("password")),
    _Match(rule="RIO-SSH-NO-AUTH", key="ssh.auth", test=_true("none_accepted")),
    _Match(rule="RIO-SSH-BANNER-OS", key="ssh.banner", test=_true("os_detail")),
    _Match(rule="RIO-REDIS-NO-AUTH", key="redis.auth", test=_true("open")),
    _Match(rule="RIO-MEMCACHED-NO-AUTH", key="memcached.auth", test=_true("open")),
    _Match(rule="RIO-FTP-ANONYMOUS", key="ftp.anonymous", test=_true("accepted")),
    _Match(rule="RIO-FTP-BANNER-VERSION", key="ftp.banner", test=_true("version")),
    _Match(rule="RIO-SMTP-BANNER-VERSION", key="smtp.banner", test=_true("version")),
    _Match(rule="RIO-SMTP-NO-STARTTLS", key="smtp.starttls", test=_false("offered")),
    _Match(rule="RIO-TLS-NULL-OR-ANON-SUITE", key="tls.suites.null_anon", test=_true("present")),
    _Match(
        rule="RIO-TLS-NO-FORWARD-SECRECY",
        key="tls.suites.no_forward_secrecy",
        test=_true("present"),
    ),
    _Match(rule="RIO-TLS-CBC-SHA1", key="tls.suites.cbc_sha1", test=_true("present")),
    _Match(rule="RIO-TLS-NO-TLS13", key="tls.tls13", test=_false("supported")),
    _Match(rule="RIO-TLS-INSECURE-RENEGOTIATION", key="tls.renegotiation", test=_false("secure")),
    _Match(rule="RIO-TLS-UNTRUSTED-ISSUER", key="tls.chain", test=_true("untrusted_issuer")),
    _Match(rule="RIO-TLS-CHAIN-INCOMPLETE", key="tls.chain", test=_true("incomplete")),
    _Match(rule="RIO-TLS-WEAK-DH", key="tls.kex.dh", test=_true("weak")),
    _Match(rule="RIO-TLS-WEAK-ECDH", key="tls.kex.ecdh", test=_true("weak")),
    _Match(rule="RIO-TLS-OCSP-NOT-STAPLED", key="tls.ocsp", test=_false("stapled")),
    _Match(rule="RIO-DNS-SPF-MISSING", key="dns.spf", test=_false("present"), per_domain=True),
    _Match(rule="RIO-DNS-SPF-LAX", key="dns.spf.all", test=_true("lax"), per_domain=True),
    _Match(
        rule="RIO-DNS-DMARC-MONITOR-ONLY",
        key="dns.dmarc.policy",
        test=_true("monitor_only"),
        per_domain=True,
    ),
    _Match(rule="RIO-DNS-CAA-MISSING", key="dns.caa", test=_false("present"), per_domain=True),
    _Match(rule="RIO-DNS-DNSSEC-BROKEN", key="dns.dnssec", test=_false("valid"), per_domain=True),
    _Match(rule="RIO-DNS-VERSION-DISCLOSED", key="dns.version", test=_true("disclosed")),
    _Match(rule="RIO-DNS-DMARC-MISSING", key="dns.dmarc", test=_false("present"), per_domain=True),
    _Match(rule="RIO-DNS-DNSSEC-ABSENT", key="dns.dnssec", test=_false("present"), per_domain=True),
    _Match(rule="RIO-DNS-OPEN-RESOLVER", key="dns.recursion", test=_true("open")),
    _Match(rule="RIO-DNS-AXFR-ALLOWED", key="dns.axfr", test=_true("allowed"), subject=_zone),
)
_PORT_MATCH = _Match(rule="", key="port.open", test=lambda obs: True)
#: the rule of an announced version inside a range of the versions file
VERSION_RULE = "RIO-VERSION-KNOWN-CVE"


def _product(obs: Observation, name: str | None) -> Mapping[str, Any]:
    return {"product": _value(obs).get("product")}


_VERSION_MATCH = _Match(rule=VERSION_RULE, key="", test=lambda obs: True, subject=_product)

#: every rule id this module can emit; the catalogue must define each
RULE_IDS: frozenset[str] = frozenset(
    {m.rule for m in _MATCHES} | set(RISKY_PORTS.values()) | {VERSION_RULE}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Location:
    """Where a finding was made.

    Attributes:
        target: the target as announced in the scope (``host:www.example.cn``, ``cidr:...``).
        ip: the address the probe was pinned to.
        port: the port (``None`` for findings about a domain's records).
        transport: ``tcp`` or ``udp``.
        scheme: ``http``, ``https``, ``tls``, ``dns``, or ``None`` for a bare port.
        server_name: the Host header and TLS SNI sent, or the domain asked (DNS); ``None`` when
            the target was an address.
        path: the HTTP path of the first observation, else ``None``.
    """

    target: str
    ip: str
    port: int | None
    transport: str
    scheme: str | None
    server_name: str | None
    path: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ip": self.ip,
            "port": self.port,
            "transport": self.transport,
            "scheme": self.scheme,
            "server_name": self.server_name,
            "path": self.path,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Location:
        return cls(
            target=str(data["target"]),
            ip=str(data["ip"]),
            port=data.get("port"),
            transport=str(data.get("transport") or "tcp"),
            scheme=data.get("scheme"),
            server_name=data.get("server_name"),
            path=data.get("path"),
        )

    def endpoint_text(self) -> str:
        """``https://127.0.0.1:443/login`` or ``127.0.0.1:6379/tcp``: the address reached."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        port = f":{self.port}" if self.port is not None else ""
        if self.scheme in ("http", "https"):
            return f"{self.scheme}://{host}{port}{self.path or ''}"
        if self.scheme is not None:
            return f"{self.scheme}://{host}{port}"
        return f"{host}{port}/{self.transport}"

    def uri(self) -> str:
        """The endpoint as a URI: ``https://127.0.0.1:443/login``, ``tcp://127.0.0.1:6379``,
        ``dns://127.0.0.53/example.cn`` (RFC 4501: the server asked, the name asked)."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        port = f":{self.port}" if self.port is not None else ""
        if self.scheme in ("http", "https"):
            return f"{self.scheme}://{host}{port}{self.path or '/'}"
        if self.scheme == "dns":
            return f"dns://{host}{port}/{self.server_name or ''}"
        return f"{self.scheme or self.transport}://{host}{port}"

    def text(self) -> str:
        """One line a person reads: endpoint, the name sent, the target as announced."""
        name = f" name {self.server_name}" if self.server_name else ""
        return f"{self.endpoint_text()}{name} (target {self.target})"


def finding_key(
    rule: str,
    *,
    object_id: str,
    endpoint: Mapping[str, Any],
    subject: Mapping[str, Any],
) -> str:
    """The stable key ``RULE:HEX`` (see the module docstring)."""
    subject_digest = hashlib.sha256(canonical_json(dict(subject))).hexdigest()
    material: dict[str, Any] = {
        "rule": rule,
        "object": object_id,
        "endpoint": dict(endpoint),
        "subject": subject_digest,
    }
    return f"{rule}:{hashlib.sha256(canonical_json(material)).hexdigest()[:24]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One finding about one place, ready for the record.

    ``evidence`` is confidential (certificate text, banners, header values, cookie names): it is
    stored encrypted and only its SHA-256 enters :meth:`to_json` and :meth:`digest`.
    """

    rule: str
    title: str
    severity: str
    kind: str
    target: str
    ip: str
    port: int | None
    probe: str
    detail: Mapping[str, Any]
    evidence: str | None
    remediation: str
    refs: tuple[Mapping[str, str], ...]
    object_id: str = ""
    transport: str = "tcp"
    scheme: str | None = None
    server_name: str | None = None
    path: str | None = None
    endpoint: Mapping[str, Any] = field(default_factory=dict)
    subject: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The stable key: equal across runs for the same fault at the same place."""
        return finding_key(
            self.rule, object_id=self.object_id, endpoint=self.endpoint, subject=self.subject
        )

    @property
    def location(self) -> Location:
        return Location(
            target=self.target,
            ip=self.ip,
            port=self.port,
            transport=self.transport,
            scheme=self.scheme,
            server_name=self.server_name,
            path=self.path,
        )

    def evidence_sha256(self) -> str | None:
        if self.evidence is None:
            return None
        return hashlib.sha256(self.evidence.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The non-confidential fields, plus the evidence's SHA-256 (never the evidence)."""
        return {
            "key": self.key,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "kind": self.kind,
            "object": self.object_id,
            "target": self.target,
            "ip": self.ip,
            "port": self.port,
            "transport": self.transport,
            "scheme": self.scheme,
            "server_name": self.server_name,
            "path": self.path,
            "probe": self.probe,
            "detail": dict(self.detail),
            "remediation": self.remediation,
            "refs": [dict(r) for r in self.refs],
            "evidence_sha256": self.evidence_sha256(),
        }

    def digest(self) -> str:
        """SHA-256 (hex) of the RFC 8785 canonical JSON of :meth:`to_json`."""
        canonical: bytes = canonical_json(self.to_json())
        return hashlib.sha256(canonical).hexdigest()


def _port_rule(obs: Observation) -> str | None:
    if obs.key != "port.open":
        return None
    port = obs.port if obs.port is not None else _value(obs).get("port")
    return RISKY_PORTS.get(port) if isinstance(port, int) else None


def _fired(
    obs: Observation, versions: VersionTable | None
) -> list[tuple[str, _Match, Observation]]:
    """Rules that fire on ``obs``, each with the observation the finding reports.

    A version match reports a derived observation (product, version, CVEs) in place of the
    banner it was read from, so its detail says which advisories matched.
    """
    fired = [(m.rule, m, obs) for m in _MATCHES if m.key == obs.key and m.test(obs)]
    port_rule = _port_rule(obs)
    if port_rule is not None:
        fired.append((port_rule, _PORT_MATCH, obs))
    if versions is not None:
        for detail in _version_details(obs, versions):
            seen = Observation(key=obs.key, value=detail, port=obs.port, evidence=obs.evidence)
            fired.append((VERSION_RULE, _VERSION_MATCH, seen))
    return fired


def _version_details(obs: Observation, versions: VersionTable) -> list[dict[str, Any]]:
    details = []
    for product, version, where in announced_versions(obs):
        advisories = versions.matching(product, version)
        if not advisories:
            continue
        details.append(
            {
                "product": product,
                "version": version,
                "announced_in": where,
                "cves": [a.to_json() for a in advisories],
                "confirmed": False,  # a version match: backported fixes do not show remotely
                "data": {"file": versions.file, "source": versions.source, "date": versions.date},
            }
        )
    return details


def _severity(rule_severity: str, first: Observation, rule_id: str) -> str:
    """The catalogue's severity; for a version match, the worst of the matching CVEs."""
    if rule_id != VERSION_RULE:
        return rule_severity
    cves = _value(first).get("cves", [])
    return max((str(c["severity"]) for c in cves), key=SEVERITIES.index, default=rule_severity)


def _certificate(text: str | None) -> dict[str, str]:
    # probes/tls.py writes the certificate's evidence as "field: value" lines.
    fields: dict[str, str] = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def _context(result: ProbeResult, port: int | None) -> dict[str, Any]:
    """What the same probe saw around the observations: certificate, handshake, records."""
    context: dict[str, Any] = {}
    for obs in result.observations:
        if obs.port is not None and port is not None and obs.port != port:
            continue
        key, value = obs.key, obs.value
        if key == "tls.cert":
            context["certificate"] = {**_certificate(obs.evidence), **_value(obs)}
        elif key in ("tls.cert.key", "tls.cert.signature", "tls.cert.expiry"):
            context.setdefault("certificate", {})[key.rsplit(".", 1)[1]] = dict(_value(obs))
        elif key == "tls.protocol":
            context["protocol"] = value
        elif key == "tls.cipher":
            context["cipher"] = dict(_value(obs))
        elif key == "http.status":
            context.setdefault("statuses", []).append(dict(_value(obs)))
        elif key == "dns.rrset":
            context.setdefault("records", []).append(dict(_value(obs)))
    return context


_CONTEXT_FOR = {"tls": ("certificate", "protocol", "cipher"), "http": ("statuses",)}


def _evidence(
    rule: str, observations: list[Observation], result: ProbeResult, port: int | None
) -> str:
    seen: list[dict[str, Any]] = []
    for obs in observations:
        item: dict[str, Any] = {"observation": obs.key, "value": obs.value}
        if obs.key in _HEADERS:
            item["header"] = _HEADERS[obs.key]
        if obs.evidence is not None:
            item["read"] = obs.evidence
        seen.append(item)
    family = observations[0].key.split(".", 1)[0]
    context = _context(result, port)
    if family == "dns":
        wanted: tuple[str, ...] = ("records",)
    elif family == "port":
        wanted = ()
    else:
        wanted = _CONTEXT_FOR.get(family, ())
    doc = {
        "format": EVIDENCE_FORMAT,
        "rule": rule,
        "probe": result.probe,
        "seen": seen,
        **{k: context[k] for k in wanted if k in context},
    }
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, default=str)


def derive_findings(
    result: ProbeResult,
    *,
    target: str,
    catalogue: Catalogue,
    object_id: str = "",
    server_name: str | None = None,
    port: int | None = None,
    scheme: str | None = None,
    transport: str | None = None,
    versions: VersionTable | None = None,
) -> list[Finding]:
    """Apply the rules to a probe result.

    Args:
        result: what the probe returned.
        target: the target as announced (written into each finding).
        catalogue: the loaded findings catalogue that gives each rule its words and references.
        object_id: the inspected object; part of every finding's stable key.
        server_name: the Host/SNI name sent, or the domain asked (the permit's server name).
        port: the permit's port, for observations that name none.
        scheme: the scheme of the probe's traffic (default: :func:`transport_of` the probe).
        transport: ``tcp`` or ``udp`` (default: :func:`transport_of` the probe).
        versions: the versions file; announced versions inside its ranges become findings of
            :data:`VERSION_RULE`, with the worst severity of the matching CVEs.

    Returns:
        Findings in the order their first observation appeared; one per stable key.

    Raises:
        CatalogueError: a rule fired that the catalogue does not define.
    """
    default_transport, default_scheme = transport_of(result.probe)
    transport = transport or default_transport
    scheme = scheme if scheme is not None else default_scheme
    groups: dict[str, tuple[str, _Match, list[Observation], Mapping[str, Any], int | None]] = {}
    for obs in result.observations:
        for rule_id, match, seen in _fired(obs, versions):
            obs_port = obs.port if obs.port else port
            if match.per_domain and server_name is not None:
                endpoint: Mapping[str, Any] = {"domain": server_name}
            else:
                endpoint = {
                    "ip": result.ip,
                    "port": obs_port,
                    "transport": transport,
                    "scheme": scheme,
                }
            subject = match.subject(seen, server_name)
            key = finding_key(rule_id, object_id=object_id, endpoint=endpoint, subject=subject)
            if key in groups:
                groups[key][2].append(seen)
            else:
                groups[key] = (rule_id, match, [seen], endpoint, obs_port)
    findings: list[Finding] = []
    for rule_id, match, observations, endpoint, obs_port in groups.values():
        rule = catalogue.rule(rule_id)
        first = observations[0]
        path = _value(first).get("path")
        findings.append(
            Finding(
                rule=rule.id,
                title=rule.title,
                severity=_severity(rule.severity, first, rule.id),
                kind=rule.kind,
                target=target,
                ip=result.ip,
                port=obs_port,
                probe=result.probe,
                detail=MappingProxyType(dict(_value(first))),
                evidence=_evidence(rule.id, observations, result, obs_port),
                remediation=rule.remediation,
                refs=catalogue.resolved_refs(rule),
                object_id=object_id,
                transport=transport,
                scheme=scheme,
                server_name=server_name,
                path=str(path) if isinstance(path, str) else None,
                endpoint=MappingProxyType(dict(endpoint)),
                subject=MappingProxyType(dict(match.subject(first, server_name))),
            )
        )
    return findings
