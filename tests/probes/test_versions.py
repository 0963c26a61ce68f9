"""Announced versions against the versions data file: ranges, strict loading, replacement."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.run.runner import _versions
from orchestrator.settings import load_settings
from probes.base import Observation, ProbeContext, ProbeResult
from probes.findings import Catalogue, CatalogueError, derive_findings, load_versions
from probes.findings.rules import VERSION_RULE
from probes.findings.versions import parse_versions, version_key
from probes.services import RedisProbe
from tests.integration.field.lab import Lab
from tests.probes.conftest import IssuePermit, lab_servers

_HEAD = 'format: rio.versions/v1\nsource: "test"\ndate: "2026-12-03"\nadvisories:\n'


def _result(*observations: Observation) -> ProbeResult:
    return ProbeResult(probe="ssh", ip="127.0.0.9", outcome="ok", observations=observations)


def _ssh_banner(software: str) -> Observation:
    value = {"valid": True, "protocol": "2.0", "software": software, "comments": None}
    return Observation(key="ssh.banner", value=value, port=22, evidence=f"SSH-2.0-{software}")


@pytest.mark.parametrize(
    ("low", "high"),
    [("9.2p1", "9.8p1"), ("9.8", "9.8p1"), ("1.0.1", "1.0.1f"), ("1.0.1f", "1.0.1g"),
     ("1.0.1g", "1.0.2"), ("2.4.9", "2.4.49"), ("1.22.1", "1.23.0")],
)  # fmt: skip
def test_versions_compare_part_by_part(low: str, high: str) -> None:
    assert version_key(low) < version_key(high)


@given(st.lists(st.integers(0, 999), min_size=1, max_size=4), st.integers(0, 999))
def test_a_longer_release_number_sorts_after_its_prefix(parts: list[int], extra: int) -> None:
    text = ".".join(map(str, parts))
    assert version_key(text) < version_key(f"{text}.{extra}")


def test_openssh_in_the_regresshion_range_is_a_finding_with_every_matching_cve(
    catalogue: Catalogue,
) -> None:
    findings = derive_findings(
        _result(_ssh_banner("OpenSSH_9.2p1")),
        target="ip:127.0.0.9",
        catalogue=catalogue,
        versions=load_versions(),
    )
    (finding,) = [f for f in findings if f.rule == VERSION_RULE]
    cves = {c["cve"] for c in finding.detail["cves"]}
    assert cves == {"CVE-2024-6387", "CVE-2023-48795"}
    assert finding.severity == "high" and finding.detail["confirmed"] is False
    assert finding.detail["data"]["date"] == "2026-12-03"


def test_a_fixed_openssh_release_and_an_unversioned_banner_are_no_finding(
    catalogue: Catalogue,
) -> None:
    for software in ("OpenSSH_9.9p1", "OpenSSH"):
        findings = derive_findings(
            _result(_ssh_banner(software)),
            target="ip:127.0.0.9",
            catalogue=catalogue,
            versions=load_versions(),
        )
        assert [f.rule for f in findings if f.rule == VERSION_RULE] == []


def test_versions_from_http_ftp_and_bind_announcements_are_read(catalogue: Catalogue) -> None:
    observations = (
        Observation(key="http.banner", value={"version": True}, port=80,
                    evidence="Apache/2.4.49 (Unix) OpenSSL/1.0.1f"),
        Observation(key="ftp.banner", value={"version": True}, port=21,
                    evidence="220 (vsFTPd 2.3.4)"),
        Observation(key="dns.version", value={"text": "9.18.10-Debian"}, port=53),
    )  # fmt: skip
    findings = derive_findings(
        _result(*observations), target="ip:127.0.0.9", catalogue=catalogue,
        versions=load_versions(),
    )  # fmt: skip
    products = {(f.port, f.detail["product"]) for f in findings if f.rule == VERSION_RULE}
    # One finding per product: the Server header names two (httpd and its OpenSSL).
    assert products == {(80, "apache-httpd"), (80, "openssl"), (21, "vsftpd"), (53, "bind")}
    vsftpd = next(f for f in findings if f.rule == VERSION_RULE and f.port == 21)
    assert vsftpd.severity == "critical"


def test_replacement_file_from_the_environment_is_used_instead_of_the_packaged_one(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    replacement = tmp_path / "versions.yaml"
    replacement.write_text(
        _HEAD + "  - {product: openssh, cve: CVE-2099-0001, severity: low, summary: test,"
        " affected: [{from: '9.9p1', below: '10.0p1'}]}\n"
    )
    settings = load_settings({"RIO_HOME": str(tmp_path), "RIO_VERSIONS_FILE": str(replacement)})
    table = _versions(settings.versions_file)
    assert table.file == str(replacement)
    findings = derive_findings(
        _result(_ssh_banner("OpenSSH_9.9p1")), target="ip:127.0.0.9", catalogue=catalogue,
        versions=table,
    )  # fmt: skip
    assert [c["cve"] for f in findings for c in f.detail.get("cves", [])] == ["CVE-2099-0001"]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("{product: openssh, cve: CVE-2024-6387, severity: high, summary: s, affected: []}",
         "advisories[0].affected"),
        ("{product: sendmail, cve: CVE-2024-1, severity: high, summary: s, affected: [{below: '1'}]}",
         "advisories[0].product"),
        ("{product: nginx, cve: CVE-1, severity: high, summary: s, affected: [{below: '1.2'}]}",
         "advisories[0].cve"),
        ("{product: nginx, cve: CVE-2024-0001, severity: bad, summary: s, affected: [{below: '1'}]}",
         "advisories[0].severity"),
        ("{product: nginx, cve: CVE-2024-0001, severity: low, summary: s, affected: [{below: 'x'}]}",
         "advisories[0].affected[0].below"),
        ("{product: nginx, cve: CVE-2024-0001, severity: low, summary: s,"
         " affected: [{from: '2.0', below: '1.0'}]}", "advisories[0].affected[0]"),
        ("{product: nginx, cve: CVE-2024-0001, severity: low, summary: s, url: u,"
         " affected: [{below: '1.0'}]}", "advisories[0]"),
    ],
)  # fmt: skip
def test_malformed_versions_file_is_refused_naming_the_field(entry: str, field: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        parse_versions(_HEAD + f"  - {entry}\n", "v.yaml")
    assert caught.value.file == "v.yaml" and caught.value.field == field


def test_versions_file_without_source_or_date_is_refused() -> None:
    with pytest.raises(CatalogueError, match="date"):
        parse_versions('format: rio.versions/v1\nsource: "x"\nadvisories: []\n', "v.yaml")


def test_unreadable_replacement_file_is_an_input_error_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError, match=r"RIO_VERSIONS_FILE: .*missing.yaml"):
        _versions(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("versions-lab"), "redis", "redis-sound") as running:
        yield running


@pytest.mark.slow
def test_real_redis_announcing_its_version_is_matched_and_a_protected_one_shows_none(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    table = load_versions()
    seen = {}
    for name in ("redis", "redis-sound"):
        permit = issue_permit("redis", lab.ip(name), port=6379, params={"timeout": 5})
        result = asyncio.run(RedisProbe().run(permit, ctx))
        assert result.outcome == "ok", result.error
        findings = derive_findings(
            result, target=permit.target, catalogue=catalogue, versions=table
        )
        seen[name] = [f for f in findings if f.rule == VERSION_RULE]
    version = seen["redis"][0].detail["version"] if seen["redis"] else None
    expected = bool(version) and bool(table.matching("redis", version))
    assert bool(seen["redis"]) == expected and version is not None
    assert seen["redis-sound"] == []
