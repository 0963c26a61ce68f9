"""The tls probe: what a loopback TLS server presents, judged into exact findings."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest

from probes.base import ProbeContext, ProbeResult
from probes.errors import ProbeArgumentError
from probes.findings import Catalogue, derive_findings
from probes.tls import TlsProbe, hostname_matches
from tests.probes.conftest import IssuePermit
from tests.support.servers import (
    CertFactory,
    CertPair,
    LoopbackHttpServer,
    closed_port,
    server_tls_context,
)

NAME = "www.demo.test"


async def _probe(
    issue_permit: IssuePermit,
    ctx: ProbeContext,
    context: ssl.SSLContext | None,
    server_name: str | None = NAME,
    **params: Any,
) -> ProbeResult:
    with LoopbackHttpServer(tls=context) as server:
        permit = issue_permit(
            "tls",
            server.host,
            port=server.port,
            server_name=server_name,
            params={"timeout": 5, **params},
        )
        return await TlsProbe().run(permit, ctx)


def _rules(result: ProbeResult, catalogue: Catalogue) -> set[str]:
    return {f.rule for f in derive_findings(result, target=NAME, catalogue=catalogue)}


CASES: list[tuple[str, Callable[[CertFactory], CertPair], set[str]]] = [
    ("valid", lambda f: f.issued(NAME), set()),
    ("wildcard", lambda f: f.issued("*.demo.test"), set()),
    ("self-signed", lambda f: f.self_signed(NAME), {"RIO-TLS-SELF-SIGNED"}),
    ("expired", lambda f: f.issued(NAME, valid_days=(-90, -1)), {"RIO-TLS-EXPIRED"}),
    ("not-yet-valid", lambda f: f.issued(NAME, valid_days=(2, 90)), {"RIO-TLS-NOT-YET-VALID"}),
    ("expiring", lambda f: f.issued(NAME, valid_days=(-60, 10)), {"RIO-TLS-EXPIRING"}),
    ("wrong-name", lambda f: f.issued("other.test"), {"RIO-TLS-NAME-MISMATCH"}),
    ("wildcard-too-deep", lambda f: f.issued("*.test"), {"RIO-TLS-NAME-MISMATCH"}),
    ("weak-key", lambda f: f.issued(NAME, key="rsa1024"), {"RIO-TLS-WEAK-KEY"}),
    ("strong-rsa", lambda f: f.issued(NAME, key="rsa2048"), set()),
    ("sha1", lambda f: f.sha1_issued(NAME), {"RIO-TLS-WEAK-SIGNATURE"}),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_certificate_findings(
    issue_permit: IssuePermit,
    ctx: ProbeContext,
    catalogue: Catalogue,
    certs: CertFactory,
    make: Callable[[CertFactory], CertPair],
    expected: set[str],
) -> None:
    result = await _probe(issue_permit, ctx, server_tls_context(make(certs)))
    assert result.outcome == "ok", result.error
    assert _rules(result, catalogue) == expected


async def test_handshake_facts_are_observed(
    issue_permit: IssuePermit, ctx: ProbeContext, certs: CertFactory
) -> None:
    pair = certs.issued(NAME)
    result = await _probe(issue_permit, ctx, server_tls_context(pair))
    values = {o.key: o.value for o in result.observations}
    assert values["tls.protocol"] in ("TLSv1.2", "TLSv1.3")
    assert values["tls.cert.key"] == {"type": "EC", "bits": 256, "weak": False}
    assert values["tls.cert.signature"] == {"hash": "sha256", "weak": False}
    assert values["tls.cert.name"] == {"server_name": NAME, "match": True}
    assert 363 <= values["tls.cert.expiry"]["days_left"] <= 365
    assert result.connections == 1
    cert = next(o for o in result.observations if o.key == "tls.cert")
    assert cert.evidence is not None and NAME in cert.evidence


async def test_without_server_name_no_name_judgement_is_made(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue, certs: CertFactory
) -> None:
    result = await _probe(
        issue_permit, ctx, server_tls_context(certs.issued("other.test")), server_name=None
    )
    assert "tls.cert.name" not in {o.key for o in result.observations}
    assert _rules(result, catalogue) == set()


async def test_modern_server_refuses_legacy_protocols(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue, certs: CertFactory
) -> None:
    result = await _probe(
        issue_permit, ctx, server_tls_context(certs.issued(NAME)), check_legacy=True
    )
    legacy = {o.key: o.value for o in result.observations if o.key.startswith("tls.legacy")}
    if "tls.legacy.untestable" in legacy:
        pytest.skip(f"local OpenSSL cannot offer TLS 1.0/1.1: {legacy}")
    assert legacy == {
        "tls.legacy.tls1_0": {"accepted": False},
        "tls.legacy.tls1_1": {"accepted": False},
    }
    assert _rules(result, catalogue) == set()
    assert result.connections == 3


async def test_legacy_server_accepting_tls_1_0_and_1_1_is_found(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue, certs: CertFactory
) -> None:
    context = server_tls_context(certs.issued(NAME), legacy=True)
    result = await _probe(issue_permit, ctx, context, check_legacy=True)
    keys = {o.key: o.value for o in result.observations if o.key.startswith("tls.legacy")}
    if "tls.legacy.untestable" in keys:
        pytest.skip(f"local OpenSSL cannot offer TLS 1.0/1.1: {keys}")
    assert _rules(result, catalogue) == {"RIO-TLS-LEGACY-1-0", "RIO-TLS-LEGACY-1-1"}


async def test_closed_port_is_an_unreachable_outcome(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    permit = issue_permit("tls", "127.0.0.1", port=closed_port(), params={"timeout": 2})
    result = await TlsProbe().run(permit, ctx)
    assert result.outcome == "unreachable"


async def test_plain_http_server_is_a_handshake_error_outcome(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    result = await _probe(issue_permit, ctx, None)
    assert result.outcome == "error"
    assert [o.key for o in result.observations] == ["tls.handshake"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"timeout": -1}, "timeout"),
        ({"check_legacy": "yes"}, "check_legacy"),
        ({"ciphers": "ALL"}, "params"),
    ],
)
async def test_parameters_refused_outside_allowlist(
    argument_permit: IssuePermit, ctx: ProbeContext, params: dict[str, Any], field: str
) -> None:
    # The gate would refuse these parameters first (tests/gate); this proves the probe's own
    # allowlist holds too. The permit is sealed by hand and the probe refuses before sending.
    with pytest.raises(ProbeArgumentError, match=field):
        await TlsProbe().run(argument_permit("tls", "127.0.0.1", port=443, params=params), ctx)


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("www.demo.test", ["www.demo.test"], True),
        ("WWW.Demo.Test.", ["www.demo.test"], True),
        ("www.demo.test", ["*.demo.test"], True),
        ("demo.test", ["*.demo.test"], False),
        ("a.b.demo.test", ["*.demo.test"], False),
        ("www.demo.test", ["w*.demo.test"], False),
        ("www.demo.test", ["*.test"], False),
        ("www.demo.test", [], False),
    ],
)
def test_hostname_matching_follows_single_label_wildcards(
    name: str, patterns: list[str], expected: bool
) -> None:
    assert hostname_matches(name, patterns) is expected
