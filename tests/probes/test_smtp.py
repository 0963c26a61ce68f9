"""The smtp probe against Debian's Exim on loopback port 25: greeting, EHLO, QUIT.

The weak Exim announces its name and version and offers no STARTTLS; the sound one offers
STARTTLS and greets neutrally. No mail command is ever sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.base import Observation, ProbeContext, ProbeResult
from probes.findings import Catalogue, derive_findings, load_versions
from probes.services import SMTP_EHLO_NAME, SmtpProbe
from tests.integration.field.lab import Lab
from tests.probes.conftest import IssuePermit, lab_servers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("smtp-lab"), "smtp", "smtp-sound") as running:
        yield running


def _only(result: ProbeResult, key: str) -> Observation:
    (obs,) = [o for o in result.observations if o.key == key]
    return obs


def _smtp(lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, server: str) -> ProbeResult:
    permit = issue_permit("smtp", lab.ip(server), port=25, params={"timeout": 5})
    result = asyncio.run(SmtpProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == 1
    return result


def test_exim_announcing_its_version_without_starttls_is_two_findings_and_a_version_match(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _smtp(lab, issue_permit, ctx, "smtp")
    banner = _only(result, "smtp.banner")
    assert banner.value == {"code": 220, "version": True}
    assert banner.evidence is not None and "ESMTP Exim 4." in banner.evidence
    starttls = _only(result, "smtp.starttls")
    assert starttls.value["offered"] is False and "PIPELINING" in starttls.value["extensions"]
    assert starttls.evidence is not None and SMTP_EHLO_NAME in starttls.evidence
    found = derive_findings(result, target="ip:lab", catalogue=catalogue, versions=load_versions())
    rules = {f.rule for f in found}
    assert rules == {"RIO-SMTP-BANNER-VERSION", "RIO-SMTP-NO-STARTTLS", "RIO-VERSION-KNOWN-CVE"}
    cve = next(f for f in found if f.rule == "RIO-VERSION-KNOWN-CVE")
    assert cve.severity == "critical"  # CVE-2023-42115, a version match (Debian backports)


def test_exim_offering_starttls_with_a_neutral_greeting_has_no_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _smtp(lab, issue_permit, ctx, "smtp-sound")
    assert _only(result, "smtp.banner").value == {"code": 220, "version": False}
    assert _only(result, "smtp.starttls").value["offered"] is True
    found = derive_findings(result, target="ip:lab", catalogue=catalogue, versions=load_versions())
    assert found == []
