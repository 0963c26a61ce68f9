"""Cipher-suite enumeration against real `openssl s_server` and nginx (field lab)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.base import ProbeContext, ProbeResult
from probes.findings import Catalogue, derive_findings
from probes.tls import TlsProbe
from tests.integration.field.lab import DOMAIN, Lab
from tests.probes.conftest import IssuePermit, lab_servers

pytestmark = pytest.mark.slow
SUITE_RULES = {
    "RIO-TLS-NULL-OR-ANON-SUITE",
    "RIO-TLS-NO-FORWARD-SECRECY",
    "RIO-TLS-CBC-SHA1",
    "RIO-TLS-NO-TLS13",
}
PARAMS = {"timeout": 5, "enumerate": True, "max_handshakes": 24}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(
        tmp_path_factory.mktemp("tls-lab"), "tls-weak-suites", "nginx-sound"
    ) as running:
        yield running


def _shake(issue_permit: IssuePermit, ctx: ProbeContext, ip: str, name: str | None) -> ProbeResult:
    permit = issue_permit("tls", ip, port=443, server_name=name, params=dict(PARAMS))
    result = asyncio.run(TlsProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections <= 1 + PARAMS["max_handshakes"]
    return result


def test_weak_suites_and_missing_tls13_are_found_naming_the_profile_rule(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _shake(issue_permit, ctx, lab.ip("tls-weak-suites"), None)
    tls12 = next(o for o in result.observations if o.key == "tls.suites.tls1_2").value
    names = {s["name"] for s in tls12["accepted"]}
    assert names == {"AECDH-AES128-SHA", "AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256"}
    assert tls12["complete"] is True
    findings = derive_findings(result, target="ip:x", catalogue=catalogue)
    found = {f.rule: f for f in findings if f.rule in SUITE_RULES}
    assert set(found) == SUITE_RULES
    assert found["RIO-TLS-NO-FORWARD-SECRECY"].detail["suites"] == ["AES128-SHA"]
    assert found["RIO-TLS-NO-FORWARD-SECRECY"].detail["profile"] == "Mozilla intermediate v5.7"


def test_mozilla_intermediate_site_has_no_tls_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _shake(issue_permit, ctx, lab.ip("nginx-sound"), f"secure.{DOMAIN}")
    assert next(o for o in result.observations if o.key == "tls.tls13").value["supported"]
    profile = next(o for o in result.observations if o.key == "tls.suites.profile").value
    assert profile["outside"] == [] and profile["complete"] is True
    assert derive_findings(result, target=f"host:secure.{DOMAIN}", catalogue=catalogue) == []


def test_enumeration_stops_at_the_handshake_budget(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    permit = issue_permit(
        "tls", lab.ip("tls-weak-suites"), port=443,
        params={"timeout": 5, "enumerate": True, "max_handshakes": 3},
    )  # fmt: skip
    result = asyncio.run(TlsProbe().run(permit, ctx))
    # the first handshake, then TLS 1.3 and two of the suite elimination's
    assert result.connections == 1 + 3
    tls12 = next(o for o in result.observations if o.key == "tls.suites.tls1_2").value
    assert tls12["complete"] is False and len(tls12["accepted"]) == 2
