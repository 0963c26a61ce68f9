"""Findings: the catalogue loads strictly, rules fire exactly, digests hide evidence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from probes.base import Observation, ProbeResult
from probes.findings import (
    RULE_IDS,
    Catalogue,
    CatalogueError,
    Finding,
    derive_findings,
    load_catalogue,
)

PACKAGED = Path(__file__).resolve().parents[2] / "probes" / "findings" / "catalogue.yaml"


def _result(probe: str, *observations: Observation) -> ProbeResult:
    return ProbeResult(probe=probe, ip="127.0.0.1", outcome="ok", observations=observations)


def _evidence(finding: Finding) -> dict[str, Any]:
    assert finding.evidence is not None
    doc = json.loads(finding.evidence)
    assert doc["format"] == "rio.evidence/v1"
    return doc  # type: ignore[no-any-return]


def _found(result: ProbeResult, catalogue: Catalogue) -> list[tuple[str, int | None]]:
    return [(f.rule, f.port) for f in derive_findings(result, target="t", catalogue=catalogue)]


# -- catalogue ----------------------------------------------------------------------------------


def test_packaged_catalogue_is_versioned_and_defines_every_rule(catalogue: Catalogue) -> None:
    assert (catalogue.format, catalogue.version) == ("rio.findings/v1", "2026.12")
    assert set(catalogue.rules) == RULE_IDS
    for rule in catalogue.rules.values():
        assert rule.refs, f"{rule.id} cites nothing"


def test_every_reference_states_its_text_version(catalogue: Catalogue) -> None:
    for ref in catalogue.references.values():
        assert ref.text_version.strip()
    csl = [r for r in catalogue.references.values() if "Cybersecurity Law" in r.instrument]
    assert csl and all("2017" in r.text_version and "2025" in r.text_version for r in csl)


def test_catalogue_maps_are_read_only(catalogue: Catalogue) -> None:
    with pytest.raises(TypeError):
        catalogue.rules["RIO-X"] = catalogue.rules["RIO-TLS-EXPIRED"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalogue.version = "x"  # type: ignore[misc]


def _write(tmp_path: Path, edit: object) -> Path:
    raw = yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))
    assert callable(edit)
    edit(raw)
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _set(*keys: object, value: object) -> object:
    def edit(raw: dict[str, object]) -> None:
        target: object = raw
        for key in keys[:-1]:
            target = target[key]  # type: ignore[index]
        target[keys[-1]] = value  # type: ignore[index]

    return edit


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (_set("extra", value=1), "extra", "unknown key"),
        (_set("format", value="rio.findings/v2"), "format", "is not"),
        (_set("rules", 0, "severity", value="severe"), "rules[0].severity", "not one of"),
        (_set("rules", 0, "kind", value="crime"), "rules[0].kind", "not one of"),
        (_set("rules", 0, "refs", value=["NOPE"]), "rules[0].refs[0]", "names no reference"),
        (_set("rules", 0, "colour", value="red"), "rules[0].colour", "unknown key"),
        (_set("rules", 1, "id", value="RIO-PORT-TELNET"), "rules[1].id", "duplicate"),
        (_set("references", 0, "title", value=""), "references[0].title", "non-empty"),
        (lambda raw: raw["references"][0].pop("note"), "references[0].note", "missing"),
        (lambda raw: raw.pop("version"), "version", "missing"),
    ],
)
def test_malformed_catalogue_refused_naming_file_and_field(
    tmp_path: Path, edit: object, field: str, problem: str
) -> None:
    path = _write(tmp_path, edit)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert caught.value.file == str(path)
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {field}: ")


def test_unreadable_catalogue_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot be read"):
        load_catalogue(tmp_path / "missing.yaml")


def test_rule_missing_from_catalogue_is_a_clear_error(tmp_path: Path) -> None:
    def drop_expired(raw: dict[str, list[dict[str, object]]]) -> None:
        raw["rules"] = [r for r in raw["rules"] if r["id"] != "RIO-TLS-EXPIRED"]

    partial = load_catalogue(_write(tmp_path, drop_expired))
    result = _result("tls", Observation(key="tls.cert.expired", value=True, port=443))
    with pytest.raises(CatalogueError, match="RIO-TLS-EXPIRED"):
        derive_findings(result, target="t", catalogue=partial)


# -- rules --------------------------------------------------------------------------------------


def test_risky_open_ports_and_only_those_are_findings(catalogue: Catalogue) -> None:
    ports = [21, 22, 23, 80, 445, 3306, 3389, 5432, 6379, 27017]
    observations = [Observation(key="port.open", value={"port": p}, port=p) for p in ports]
    observations.append(Observation(key="port.closed", value={"port": 3389}, port=3389))
    observations.append(Observation(key="port.filtered", value={"port": 23}, port=23))
    assert sorted(_found(_result("port", *observations), catalogue)) == sorted(
        [
            ("RIO-PORT-FTP", 21),
            ("RIO-PORT-TELNET", 23),
            ("RIO-PORT-SMB", 445),
            ("RIO-PORT-DATABASE", 3306),
            ("RIO-PORT-RDP", 3389),
            ("RIO-PORT-DATABASE", 5432),
            ("RIO-PORT-DATABASE", 6379),
            ("RIO-PORT-DATABASE", 27017),
        ]
    )


def test_same_fault_on_several_paths_is_one_finding(catalogue: Catalogue) -> None:
    cookie = {"scheme": "https", "secure": True, "httponly": False, "samesite": None}
    result = _result(
        "http",
        Observation(key="http.cookie", value={**cookie, "path": "/"}, port=443, evidence="a"),
        Observation(key="http.cookie", value={**cookie, "path": "/x"}, port=443, evidence="b"),
    )
    findings = derive_findings(result, target="t", catalogue=catalogue)
    assert [f.rule for f in findings] == ["RIO-HTTP-COOKIE-NOT-HTTPONLY"]
    (finding,) = findings
    assert finding.path == "/"
    # The evidence lists every cookie that showed the fault, in the order seen.
    assert [s["read"] for s in _evidence(finding)["seen"]] == ["a", "b"]


def test_frame_ancestors_in_csp_satisfies_framing_protection(catalogue: Catalogue) -> None:
    result = _result(
        "http",
        Observation(
            key="http.header.xfo", value={"present": False, "csp_frame_ancestors": True}, port=443
        ),
    )
    assert _found(result, catalogue) == []


@pytest.mark.parametrize(
    ("days_left", "expired", "expected"),
    [
        (30, False, []),
        (29, False, ["RIO-TLS-EXPIRING"]),
        (0, False, ["RIO-TLS-EXPIRING"]),
        (-1, True, ["RIO-TLS-EXPIRED"]),
    ],
)
def test_expiry_warning_only_within_thirty_days_and_not_once_expired(
    catalogue: Catalogue, days_left: int, expired: bool, expected: list[str]
) -> None:
    result = _result(
        "tls",
        Observation(key="tls.cert.expired", value=expired, port=443),
        Observation(key="tls.cert.expiry", value={"days_left": days_left}, port=443),
    )
    assert [rule for rule, _ in _found(result, catalogue)] == expected


def test_unknown_or_undecided_observations_make_no_findings(catalogue: Catalogue) -> None:
    result = _result(
        "tls",
        Observation(key="tls.legacy.untestable", value={"version": "tls1_0"}, port=443),
        Observation(key="tls.cert.name", value={"match": None}, port=443),
        Observation(key="dns.axfr", value={"allowed": None}),
    )
    assert _found(result, catalogue) == []


# -- finding digests ----------------------------------------------------------------------------


def _finding(catalogue: Catalogue, evidence: str | None) -> Finding:
    result = _result(
        "http", Observation(key="http.banner", value={"version": True}, port=80, evidence=evidence)
    )
    (finding,) = derive_findings(result, target="www.demo.test", catalogue=catalogue)
    return finding


def test_finding_carries_catalogue_words_and_resolved_references(catalogue: Catalogue) -> None:
    finding = _finding(catalogue, "nginx/1.18.0")
    rule = catalogue.rules["RIO-HTTP-BANNER-VERSION"]
    assert (finding.title, finding.severity, finding.kind, finding.remediation) == (
        rule.title,
        rule.severity,
        rule.kind,
        rule.remediation,
    )
    assert [r["id"] for r in finding.refs] == list(rule.refs)
    assert all(r["article"] and r["instrument"] for r in finding.refs)


def test_digest_covers_evidence_only_through_its_hash(catalogue: Catalogue) -> None:
    one, same, other = (
        _finding(catalogue, e) for e in ("nginx/1.18.0", "nginx/1.18.0", "nginx/1.19.0")
    )
    assert one.digest() == same.digest()
    assert one.digest() != other.digest()
    assert "nginx" not in str(one.to_json())
    assert one.to_json()["evidence_sha256"] is not None


def test_digest_changes_with_any_public_field(catalogue: Catalogue) -> None:
    finding = _finding(catalogue, "x")
    for change in (
        {"severity": "high"},
        {"target": "other.test"},
        {"port": 81},
        {"ip": "127.0.0.2"},
    ):
        assert dataclasses.replace(finding, **change).digest() != finding.digest()


def test_dns_observations_map_to_their_rules(catalogue: Catalogue) -> None:
    result = _result(
        "dns",
        Observation(key="dns.axfr", value={"allowed": True}),
        Observation(key="dns.recursion", value={"open": True, "ra": True}),
        Observation(key="dns.spf", value={"present": True}),
        Observation(key="dns.dmarc", value={"present": False}),
        Observation(key="dns.dnssec", value={"present": False}),
    )
    assert [rule for rule, _ in _found(result, catalogue)] == [
        "RIO-DNS-AXFR-ALLOWED",
        "RIO-DNS-OPEN-RESOLVER",
        "RIO-DNS-DMARC-MISSING",
        "RIO-DNS-DNSSEC-ABSENT",
    ]
    assert catalogue.rules["RIO-DNS-DNSSEC-ABSENT"].severity == "info"
