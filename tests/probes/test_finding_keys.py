"""Findings say where they were made, carry their evidence, and keep one key per fault and place."""

from __future__ import annotations

import json
from typing import Any

from probes.base import Observation, ProbeResult
from probes.findings import Catalogue, Finding, derive_findings

OBJECT = "demo-isp"


def _result(probe: str, ip: str, *observations: Observation) -> ProbeResult:
    return ProbeResult(probe=probe, ip=ip, outcome="ok", observations=observations)


def _evidence(finding: Finding) -> dict[str, Any]:
    assert finding.evidence is not None
    doc: dict[str, Any] = json.loads(finding.evidence)
    return doc


def _one(findings: list[Finding], rule: str) -> Finding:
    (found,) = [f for f in findings if f.rule == rule]
    return found


def _headers(ip: str = "127.0.10.2", port: int = 443) -> ProbeResult:
    return _result(
        "http",
        ip,
        Observation(key="http.status", value={"path": "/login", "status": 200}, port=port),
        Observation(
            key="http.header.xcto",
            value={"path": "/login", "present": False},
            port=port,
            evidence="sniff-please",
        ),
    )


def _http(catalogue: Catalogue, result: ProbeResult, **where: Any) -> list[Finding]:
    defaults: dict[str, Any] = {"target": "cidr:127.0.10.0/27", "scheme": "https"}
    return derive_findings(result, catalogue=catalogue, object_id=OBJECT, **{**defaults, **where})


def test_http_finding_names_endpoint_scheme_name_and_path(catalogue: Catalogue) -> None:
    finding = _one(
        _http(
            catalogue,
            _headers(),
            target="host:www.demo.test",
            server_name="www.demo.test",
            port=443,
        ),
        "RIO-HTTP-XCTO-MISSING",
    )
    loc = finding.location
    assert (loc.target, loc.ip, loc.port, loc.transport, loc.scheme) == (
        "host:www.demo.test",
        "127.0.10.2",
        443,
        "tcp",
        "https",
    )
    assert (loc.server_name, loc.path) == ("www.demo.test", "/login")
    assert loc.uri() == "https://127.0.10.2:443/login"
    assert finding.to_json()["path"] == "/login"


def test_header_finding_evidence_holds_the_header_value_read_and_the_status(
    catalogue: Catalogue,
) -> None:
    finding = _one(_http(catalogue, _headers()), "RIO-HTTP-XCTO-MISSING")
    evidence = _evidence(finding)
    (seen,) = evidence["seen"]
    assert (seen["header"], seen["read"]) == ("x-content-type-options", "sniff-please")
    assert evidence["statuses"] == [{"path": "/login", "status": 200}]
    assert "sniff-please" not in json.dumps(finding.to_json())


def test_one_service_reached_as_address_and_as_host_has_one_key(catalogue: Catalogue) -> None:
    by_ip = _one(_http(catalogue, _headers()), "RIO-HTTP-XCTO-MISSING")
    by_name = _one(
        _http(catalogue, _headers(), target="host:www.demo.test", server_name="www.demo.test"),
        "RIO-HTTP-XCTO-MISSING",
    )
    assert by_ip.target != by_name.target
    assert by_ip.key == by_name.key
    assert by_ip.digest() != by_name.digest()  # each sighting is its own ledger fact


def test_key_differs_by_port_address_scheme_and_object(catalogue: Catalogue) -> None:
    base = _one(_http(catalogue, _headers()), "RIO-HTTP-XCTO-MISSING").key
    others = [
        _http(catalogue, _headers(port=8443)),
        _http(catalogue, _headers(ip="127.0.10.3")),
        _http(catalogue, _headers(), scheme="http"),
        derive_findings(_headers(), target="t", catalogue=catalogue, object_id="other-isp"),
    ]
    keys = {_one(found, "RIO-HTTP-XCTO-MISSING").key for found in others}
    assert base not in keys and len(keys) == 4
    assert base.startswith("RIO-HTTP-XCTO-MISSING:")


def _tls(days_left: int, sha: str) -> ProbeResult:
    return _result(
        "tls",
        "127.0.10.2",
        Observation(key="tls.protocol", value="TLSv1.2", port=443),
        Observation(
            key="tls.cipher", value={"name": "ECDHE-RSA-AES128-SHA", "bits": 128}, port=443
        ),
        Observation(
            key="tls.cert",
            value={"sha256": sha},
            port=443,
            evidence="subject: CN=www.demo.test\nissuer: CN=Demo CA\nnames: www.demo.test\n"
            "not_before: 2026-01-01T00:00:00+00:00\nnot_after: 2026-12-20T00:00:00+00:00",
        ),
        Observation(
            key="tls.cert.key", value={"type": "RSA", "bits": 1024, "weak": True}, port=443
        ),
        Observation(
            key="tls.cert.expiry",
            value={"not_after": "2026-12-20T00:00:00+00:00", "days_left": days_left},
            port=443,
        ),
    )


def test_tls_evidence_names_certificate_key_protocol_and_cipher(catalogue: Catalogue) -> None:
    found = derive_findings(_tls(17, "ab" * 32), target="t", catalogue=catalogue, port=443)
    weak = _evidence(_one(found, "RIO-TLS-WEAK-KEY"))
    cert = weak["certificate"]
    assert (cert["subject"], cert["issuer"]) == ("CN=www.demo.test", "CN=Demo CA")
    assert (cert["not_before"], cert["not_after"]) == (
        "2026-01-01T00:00:00+00:00",
        "2026-12-20T00:00:00+00:00",
    )
    assert cert["key"] == {"type": "RSA", "bits": 1024, "weak": True}
    assert cert["sha256"] == "ab" * 32
    assert (weak["protocol"], weak["cipher"]["name"]) == ("TLSv1.2", "ECDHE-RSA-AES128-SHA")
    assert _one(found, "RIO-TLS-WEAK-KEY").location.uri() == "tls://127.0.10.2:443"


def test_key_ignores_what_changes_between_runs_without_the_fault_changing(
    catalogue: Catalogue,
) -> None:
    # A day later, and after the certificate was renewed (still weak, still expiring soon).
    first = derive_findings(_tls(17, "ab" * 32), target="t", catalogue=catalogue)
    later = derive_findings(_tls(16, "cd" * 32), target="t", catalogue=catalogue)
    for rule in ("RIO-TLS-EXPIRING", "RIO-TLS-WEAK-KEY"):
        assert _one(first, rule).key == _one(later, rule).key
        assert _one(first, rule).evidence != _one(later, rule).evidence


def _dns(nameserver: str, *observations: Observation) -> ProbeResult:
    return _result("dns", nameserver, *observations)


def test_missing_spf_is_one_key_per_domain_however_many_servers_were_asked(
    catalogue: Catalogue,
) -> None:
    spf = Observation(key="dns.spf", value={"present": False, "records": []})
    keys = {
        _one(
            derive_findings(
                _dns(ns, spf),
                target="domain:demo.test",
                catalogue=catalogue,
                object_id=OBJECT,
                server_name="demo.test",
            ),
            "RIO-DNS-SPF-MISSING",
        ).key
        for ns in ("127.0.10.30", "127.0.10.31")
    }
    assert len(keys) == 1


def test_open_resolver_is_one_key_per_server_however_many_domains_it_serves(
    catalogue: Catalogue,
) -> None:
    recursion = Observation(
        key="dns.recursion", value={"open": True, "ra": True, "rcode": "NOERROR"}
    )

    def key(ns: str, domain: str) -> str:
        found = derive_findings(
            _dns(ns, recursion),
            target=f"domain:{domain}",
            catalogue=catalogue,
            object_id=OBJECT,
            server_name=domain,
        )
        return _one(found, "RIO-DNS-OPEN-RESOLVER").key

    assert key("127.0.10.30", "demo.test") == key("127.0.10.30", "other.test")
    assert key("127.0.10.30", "demo.test") != key("127.0.10.31", "demo.test")


def test_dns_finding_evidence_holds_the_records_read(catalogue: Catalogue) -> None:
    result = _dns(
        "127.0.10.30",
        Observation(
            key="dns.rrset",
            value={"name": "demo.test", "type": "TXT", "rcode": "NOERROR", "records": ["hi"]},
        ),
        Observation(key="dns.dmarc", value={"present": False, "records": []}),
    )
    finding = _one(
        derive_findings(
            result, target="domain:demo.test", catalogue=catalogue, server_name="demo.test"
        ),
        "RIO-DNS-DMARC-MISSING",
    )
    evidence = _evidence(finding)
    assert evidence["records"][0]["records"] == ["hi"]
    assert finding.location.uri() == "dns://127.0.10.30/demo.test"


def test_port_finding_carries_the_banner_as_evidence(catalogue: Catalogue) -> None:
    result = _result(
        "port",
        "127.0.10.5",
        Observation(
            key="port.open",
            value={"port": 6379, "protocol": "tcp", "state": "open", "service": "redis"},
            port=6379,
            evidence="Redis key-value store 7.0.15",
        ),
    )
    (finding,) = derive_findings(result, target="cidr:127.0.10.0/27", catalogue=catalogue)
    assert finding.location.text() == "127.0.10.5:6379/tcp (target cidr:127.0.10.0/27)"
    assert _evidence(finding)["seen"][0]["read"] == "Redis key-value store 7.0.15"
