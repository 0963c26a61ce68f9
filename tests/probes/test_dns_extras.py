"""CAA, lax SPF, DMARC p=none, broken DNSSEC and version.bind, against Debian's real BIND.

Two field-lab name servers: ``dns`` serves lax.test (SPF ~all, DMARC p=none, no CAA) and
bogus.test (signed, signatures expired) and answers version.bind; ``dns-sound`` serves
sound.test (SPF -all, DMARC p=reject, CAA, validly signed) and hides its version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.base import ProbeContext, ProbeResult
from probes.dns import DnsProbe
from probes.findings import Catalogue, derive_findings
from tests.integration.field.lab import Lab
from tests.probes.conftest import USER_AGENT, IssuePermit, lab_servers

pytestmark = pytest.mark.slow

EXTRA_RULES = {
    "RIO-DNS-SPF-LAX",
    "RIO-DNS-DMARC-MONITOR-ONLY",
    "RIO-DNS-CAA-MISSING",
    "RIO-DNS-DNSSEC-BROKEN",
    "RIO-DNS-VERSION-DISCLOSED",
}
PARAMS = {"record_types": ["CAA"], "version_check": True, "timeout": 5}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("dns-lab"), "dns", "dns-sound") as running:
        yield running


def _ask(issue_permit: IssuePermit, ip: str, domain: str) -> ProbeResult:
    permit = issue_permit("dns", ip, server_name=domain, params=dict(PARAMS))
    result = asyncio.run(DnsProbe().run(permit, ProbeContext(user_agent=USER_AGENT)))
    assert result.outcome == "ok", result.error
    return result


def _extra(result: ProbeResult, catalogue: Catalogue) -> set[str]:
    found = {f.rule for f in derive_findings(result, target="domain:x", catalogue=catalogue)}
    return found & EXTRA_RULES


def test_lax_spf_monitor_only_dmarc_no_caa_and_version_are_found(
    lab: Lab, issue_permit: IssuePermit, catalogue: Catalogue
) -> None:
    result = _ask(issue_permit, lab.ip("dns"), "lax.test")
    assert _extra(result, catalogue) == {
        "RIO-DNS-SPF-LAX",
        "RIO-DNS-DMARC-MONITOR-ONLY",
        "RIO-DNS-CAA-MISSING",
        "RIO-DNS-VERSION-DISCLOSED",
    }
    spf = next(o for o in result.observations if o.key == "dns.spf.all")
    assert spf.value == {"all": "~all", "lax": True, "result": "softfail"}


def test_zone_with_expired_signatures_is_broken_dnssec(
    lab: Lab, issue_permit: IssuePermit, catalogue: Catalogue
) -> None:
    result = _ask(issue_permit, lab.ip("dns"), "bogus.test")
    dnssec = next(o for o in result.observations if o.key == "dns.dnssec").value
    assert dnssec["present"] is True and dnssec["valid"] is False, dnssec
    assert "RIO-DNS-DNSSEC-BROKEN" in _extra(result, catalogue)
    assert "RIO-DNS-SPF-LAX" not in _extra(result, catalogue)  # it says -all


def test_sound_zone_and_server_have_none_of_these_findings(
    lab: Lab, issue_permit: IssuePermit, catalogue: Catalogue
) -> None:
    result = _ask(issue_permit, lab.ip("dns-sound"), "sound.test")
    dnssec = next(o for o in result.observations if o.key == "dns.dnssec").value
    assert dnssec["valid"] is True, dnssec
    assert derive_findings(result, target="domain:sound.test", catalogue=catalogue) == []
