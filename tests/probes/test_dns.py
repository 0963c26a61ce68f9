"""The dns probes against the stub name server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from probes.base import ProbeContext, ProbeResult
from probes.dns import RECURSION_CHECK_NAME, DnsProbe, DnsZoneTransferProbe
from probes.errors import PermitError, ProbeArgumentError
from probes.findings import Catalogue, derive_findings
from tests.probes.conftest import USER_AGENT, IssuePermit
from tests.support.dns_server import StubDNSServer
from tests.support.servers import closed_port

DOMAIN = "demo.test"
SOA = "ns1.demo.test. hostmaster.demo.test. 1 7200 3600 1209600 300"
DNSKEY = (
    "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
    "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
)
GOOD_ZONE: dict[str, list[tuple[str, str]]] = {
    DOMAIN: [
        ("SOA", SOA),
        ("NS", "ns1.demo.test."),
        ("A", "127.0.0.10"),
        ("MX", "10 mail.demo.test."),
        ("TXT", '"v=spf1 mx -all"'),
        ("CAA", '0 issue "letsencrypt.org"'),
        ("DNSKEY", DNSKEY),
    ],
    f"_dmarc.{DOMAIN}": [("TXT", '"v=DMARC1; p=reject"')],
}
POOR_ZONE: dict[str, list[tuple[str, str]]] = {
    DOMAIN: [("SOA", SOA), ("A", "127.0.0.10"), ("TXT", '"v=spf10 not-really"')],
}
ALL_TYPES = ["A", "AAAA", "MX", "NS", "TXT", "CAA", "SOA"]


@pytest.fixture
def good_server() -> Iterator[StubDNSServer]:
    with StubDNSServer(GOOD_ZONE, authoritative_zones=(DOMAIN,)) as server:
        yield server


@pytest.fixture
def poor_server() -> Iterator[StubDNSServer]:
    with StubDNSServer(POOR_ZONE, authoritative_zones=(DOMAIN,), recursive=True) as server:
        yield server


def _ctx(port: int) -> ProbeContext:
    return ProbeContext(user_agent=USER_AGENT, dns_port=port)


async def _probe(issue_permit: IssuePermit, server: StubDNSServer, **params: Any) -> ProbeResult:
    permit = issue_permit(
        "dns",
        server.host,
        server_name=DOMAIN,
        params={"record_types": ALL_TYPES, "recursion_check": True, "timeout": 2, **params},
    )
    return await DnsProbe().run(permit, _ctx(server.port))


def _rules(result: ProbeResult, catalogue: Catalogue) -> set[str]:
    return {f.rule for f in derive_findings(result, target=DOMAIN, catalogue=catalogue)}


async def test_well_configured_zone_has_no_findings(
    issue_permit: IssuePermit, catalogue: Catalogue, good_server: StubDNSServer
) -> None:
    result = await _probe(issue_permit, good_server)
    assert result.outcome == "ok", result.error
    assert _rules(result, catalogue) == set()
    assert good_server.errors == []


async def test_poorly_configured_zone_on_open_resolver_findings(
    issue_permit: IssuePermit, catalogue: Catalogue, poor_server: StubDNSServer
) -> None:
    result = await _probe(issue_permit, poor_server)
    assert result.outcome == "ok", result.error
    assert _rules(result, catalogue) == {
        "RIO-DNS-SPF-MISSING",
        "RIO-DNS-DMARC-MISSING",
        "RIO-DNS-DNSSEC-ABSENT",
        "RIO-DNS-OPEN-RESOLVER",
        "RIO-DNS-CAA-MISSING",  # the poor zone publishes no CAA either
    }


async def test_rrsets_are_observed_per_record_type(
    issue_permit: IssuePermit, good_server: StubDNSServer
) -> None:
    result = await _probe(issue_permit, good_server, record_types=["MX", "AAAA"])
    rrsets = [o.value for o in result.observations if o.key == "dns.rrset"]
    assert rrsets == [
        {
            "name": DOMAIN,
            "type": "MX",
            "rcode": "NOERROR",
            "authoritative": True,
            "records": ["10 mail.demo.test."],
        },
        {"name": DOMAIN, "type": "AAAA", "rcode": "NOERROR", "authoritative": True, "records": []},
    ]


async def test_only_the_domain_and_the_reserved_name_are_asked(
    issue_permit: IssuePermit, poor_server: StubDNSServer
) -> None:
    result = await _probe(issue_permit, poor_server)
    asked = set(poor_server.queries)
    assert (RECURSION_CHECK_NAME.rstrip("."), "A") in asked
    assert {name for name, _ in asked} == {
        DOMAIN,
        f"_dmarc.{DOMAIN}",
        RECURSION_CHECK_NAME.rstrip("."),
    }
    assert result.connections == len(poor_server.queries)


async def test_recursion_is_not_checked_unless_asked(
    issue_permit: IssuePermit, catalogue: Catalogue, poor_server: StubDNSServer
) -> None:
    result = await _probe(issue_permit, poor_server, recursion_check=False)
    assert "RIO-DNS-OPEN-RESOLVER" not in _rules(result, catalogue)
    assert all(name != RECURSION_CHECK_NAME.rstrip(".") for name, _ in poor_server.queries)


async def test_silent_port_is_an_outcome_not_an_exception(issue_permit: IssuePermit) -> None:
    permit = issue_permit(
        "dns", "127.0.0.1", server_name=DOMAIN, params={"record_types": ["A"], "timeout": 1}
    )
    result = await DnsProbe().run(permit, _ctx(closed_port()))
    assert result.outcome in ("unreachable", "timeout")
    assert result.observations == ()


async def test_zone_transfer_refusal_is_observed_without_finding(
    issue_permit: IssuePermit, catalogue: Catalogue, good_server: StubDNSServer
) -> None:
    permit = issue_permit("dns-axfr", good_server.host, server_name=DOMAIN, params={"timeout": 2})
    result = await DnsZoneTransferProbe().run(permit, _ctx(good_server.port))
    assert result.outcome == "ok", result.error
    assert [(o.key, o.value) for o in result.observations] == [
        ("dns.axfr", {"name": DOMAIN, "allowed": False, "rcode": "REFUSED"})
    ]
    assert (DOMAIN, "AXFR") in good_server.queries
    assert _rules(result, catalogue) == set()


async def test_zone_transfer_needs_its_own_permit(
    issue_permit: IssuePermit, good_server: StubDNSServer
) -> None:
    permit = issue_permit("dns", good_server.host, server_name=DOMAIN)
    with pytest.raises(PermitError):
        await DnsZoneTransferProbe().run(permit, _ctx(good_server.port))
    assert good_server.queries == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"params": {"record_types": ["ANY"]}}, "record_types"),
        ({"params": {"record_types": ["AXFR"]}}, "record_types"),
        ({"params": {"record_types": []}}, "record_types"),
        ({"params": {"recursion_check": "yes"}}, "recursion_check"),
        ({"params": {"zone_transfer": True}}, "params"),
        ({"server_name": None}, "server_name"),
        ({"server_name": "-demo.test"}, "server_name"),
        ({"server_name": "demo.test\nx"}, "server_name"),
        ({"server_name": "demo test"}, "server_name"),
    ],
)
async def test_parameters_refused_outside_allowlist(
    argument_permit: IssuePermit, fields: dict[str, Any], field: str
) -> None:
    # The gate would refuse these parameters first (tests/gate); this proves the probe's own
    # allowlist holds too. The permit is sealed by hand and the probe refuses before sending.
    permit = argument_permit("dns", "127.0.0.1", **{"server_name": DOMAIN, **fields})
    with pytest.raises(ProbeArgumentError, match=field):
        await DnsProbe().run(permit, _ctx(53))


async def test_cancelling_the_task_raises_probe_cancelled(issue_permit: IssuePermit) -> None:
    import asyncio
    import socket

    from probes.errors import ProbeCancelledError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        permit = issue_permit(
            "dns", "127.0.0.1", server_name=DOMAIN, params={"record_types": ["A"], "timeout": 30}
        )
        task = asyncio.create_task(DnsProbe().run(permit, _ctx(silent.getsockname()[1])))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(ProbeCancelledError):
            await task
