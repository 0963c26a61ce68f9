"""Rules that turn a probe's observations into findings.

The matching logic lives here, in code reviewed with the probes that make the observations; the
words (title, severity, kind, remediation) and the legal references live in the catalogue file,
so an operator can reword or re-cite without a code change. Every rule id used here must exist in
the catalogue (:data:`RULE_IDS`; a test checks the packaged file).

One finding is made per rule and port for a probe result, however many paths or cookies showed
the same fault; the first observation's evidence is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import rfc8785

from probes.base import Observation, ProbeResult
from probes.findings.catalogue import Catalogue

__all__ = ["RISKY_PORTS", "RULE_IDS", "Finding", "derive_findings"]

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
    }
)
_EXPIRY_WARNING_DAYS = 30


def _value(obs: Observation) -> Mapping[str, Any]:
    return obs.value if isinstance(obs.value, Mapping) else {"value": obs.value}


def _false(field: str) -> Callable[[Observation], bool]:
    return lambda obs: _value(obs).get(field) is False


def _true(field: str) -> Callable[[Observation], bool]:
    return lambda obs: _value(obs).get(field) is True


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


@dataclass(frozen=True, kw_only=True, slots=True)
class _Match:
    rule: str
    key: str
    test: Callable[[Observation], bool]


_MATCHES: tuple[_Match, ...] = (
    _Match(rule="RIO-HTTP-HSTS-MISSING", key="http.header.hsts", test=_false("present")),
    _Match(rule="RIO-HTTP-CSP-MISSING", key="http.header.csp", test=_false("present")),
    _Match(rule="RIO-HTTP-XCTO-MISSING", key="http.header.xcto", test=_false("present")),
    _Match(rule="RIO-HTTP-XFO-MISSING", key="http.header.xfo", test=_xfo_missing),
    _Match(rule="RIO-HTTP-COOKIE-NOT-SECURE", key="http.cookie", test=_cookie_not_secure),
    _Match(rule="RIO-HTTP-COOKIE-NOT-HTTPONLY", key="http.cookie", test=_false("httponly")),
    _Match(rule="RIO-HTTP-NO-HTTPS-REDIRECT", key="http.https_redirect", test=_false("redirects")),
    _Match(rule="RIO-HTTP-BANNER-VERSION", key="http.banner", test=_true("version")),
    _Match(rule="RIO-TLS-EXPIRED", key="tls.cert.expired", test=_is_true),
    _Match(rule="RIO-TLS-NOT-YET-VALID", key="tls.cert.not_yet_valid", test=_is_true),
    _Match(rule="RIO-TLS-SELF-SIGNED", key="tls.cert.self_signed", test=_is_true),
    _Match(rule="RIO-TLS-NAME-MISMATCH", key="tls.cert.name", test=_false("match")),
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
    _Match(rule="RIO-DNS-SPF-MISSING", key="dns.spf", test=_false("present")),
    _Match(rule="RIO-DNS-DMARC-MISSING", key="dns.dmarc", test=_false("present")),
    _Match(rule="RIO-DNS-DNSSEC-ABSENT", key="dns.dnssec", test=_false("present")),
    _Match(rule="RIO-DNS-OPEN-RESOLVER", key="dns.recursion", test=_true("open")),
    _Match(rule="RIO-DNS-AXFR-ALLOWED", key="dns.axfr", test=_true("allowed")),
)

#: every rule id this module can emit; the catalogue must define each
RULE_IDS: frozenset[str] = frozenset({m.rule for m in _MATCHES} | set(RISKY_PORTS.values()))


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One finding about one target, ready for the record.

    ``evidence`` is confidential (banners, certificate text, cookie names): it is stored
    encrypted and only its SHA-256 enters :meth:`to_json` and :meth:`digest`.
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

    def evidence_sha256(self) -> str | None:
        if self.evidence is None:
            return None
        return hashlib.sha256(self.evidence.encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The non-confidential fields, plus the evidence's SHA-256 (never the evidence)."""
        return {
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "kind": self.kind,
            "target": self.target,
            "ip": self.ip,
            "port": self.port,
            "probe": self.probe,
            "detail": dict(self.detail),
            "remediation": self.remediation,
            "refs": [dict(r) for r in self.refs],
            "evidence_sha256": self.evidence_sha256(),
        }

    def digest(self) -> str:
        """SHA-256 (hex) of the RFC 8785 canonical JSON of :meth:`to_json`."""
        canonical: bytes = rfc8785.dumps(self.to_json())
        return hashlib.sha256(canonical).hexdigest()


def _port_rule(obs: Observation) -> str | None:
    if obs.key != "port.open":
        return None
    port = obs.port if obs.port is not None else _value(obs).get("port")
    return RISKY_PORTS.get(port) if isinstance(port, int) else None


def derive_findings(result: ProbeResult, *, target: str, catalogue: Catalogue) -> list[Finding]:
    """Apply the rules to a probe result.

    Args:
        result: what the probe returned.
        target: the target as announced (written into each finding).
        catalogue: the loaded findings catalogue that gives each rule its words and references.

    Returns:
        Findings in the order their first observation appeared; one per rule and port.

    Raises:
        CatalogueError: a rule fired that the catalogue does not define.
    """
    findings: list[Finding] = []
    seen: set[tuple[str, int | None]] = set()
    for obs in result.observations:
        fired = [m.rule for m in _MATCHES if m.key == obs.key and m.test(obs)]
        port_rule = _port_rule(obs)
        if port_rule is not None:
            fired.append(port_rule)
        for rule_id in fired:
            if (rule_id, obs.port) in seen:
                continue
            seen.add((rule_id, obs.port))
            rule = catalogue.rule(rule_id)
            findings.append(
                Finding(
                    rule=rule.id,
                    title=rule.title,
                    severity=rule.severity,
                    kind=rule.kind,
                    target=target,
                    ip=result.ip,
                    port=obs.port,
                    probe=result.probe,
                    detail=MappingProxyType(dict(_value(obs))),
                    evidence=obs.evidence,
                    remediation=rule.remediation,
                    refs=catalogue.resolved_refs(rule),
                )
            )
    return findings
