"""The tls probe's inspect step against real servers (nginx, Exim with GnuTLS) on loopback 443/465.

Each planted fault has its server, and the sound nginx of the field lab shows none of them:
secure renegotiation (RFC 5746) absent, a chain that leads to no trusted root, an incomplete
chain, 1024-bit DHE, no stapled OCSP response. The private CA's leaf is untrusted against the
system store alone and trusted once the policy's CA bundle names the object's CA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from probes.base import Observation, ProbeContext, ProbeResult
from probes.findings import Catalogue, derive_findings
from probes.tls import INSPECT_HANDSHAKES, TlsProbe
from tests.integration.field.lab import Lab
from tests.probes.conftest import IssuePermit, lab_servers

pytestmark = pytest.mark.slow

_SERVERS = ("nginx-sound", "tls-private-ca", "tls-incomplete-chain", "tls-unknown-ca",
            "tls-weak-dh", "smtp")  # fmt: skip
_INSPECT_RULES = {
    "RIO-TLS-INSECURE-RENEGOTIATION",
    "RIO-TLS-UNTRUSTED-ISSUER",
    "RIO-TLS-CHAIN-INCOMPLETE",
    "RIO-TLS-WEAK-DH",
    "RIO-TLS-WEAK-ECDH",
    "RIO-TLS-OCSP-NOT-STAPLED",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("tls-inspect-lab"), *_SERVERS) as running:
        yield running


def _inspect(
    lab: Lab,
    issue_permit: IssuePermit,
    ctx: ProbeContext,
    server: str,
    *,
    port: int = 443,
    bundle: bool = True,
) -> ProbeResult:
    params: dict[str, Any] = {"timeout": 5, "inspect": True}
    if bundle:
        params["ca_bundle"] = str(lab.ca_bundle)
    permit = issue_permit("tls", lab.ip(server), port=port, params=params)
    result = asyncio.run(TlsProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    return result


def _only(result: ProbeResult, key: str) -> Observation:
    (obs,) = [o for o in result.observations if o.key == key]
    return obs


def _rules(result: ProbeResult, catalogue: Catalogue) -> set[str]:
    found = derive_findings(result, target="ip:lab", catalogue=catalogue)
    return {f.rule for f in found} & _INSPECT_RULES


def test_the_sound_site_renegotiates_securely_staples_ocsp_and_is_trusted_with_the_bundle(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _inspect(lab, issue_permit, ctx, "nginx-sound")
    assert result.connections == 1 + INSPECT_HANDSHAKES
    assert _only(result, "tls.renegotiation").value["secure"] is True
    assert _only(result, "tls.ocsp").value == {"stapled": True, "status": "good"}
    assert _only(result, "tls.kex.ecdh").value["weak"] is False
    assert _only(result, "tls.kex.dh").value["accepted"] is False  # EC certificate: no DHE-RSA
    chain = _only(result, "tls.chain").value
    assert chain["trusted"] is True
    assert [s["trusted"] for s in chain["stores"]] == [False, True]  # system, bundle
    assert _rules(result, catalogue) == set()


def test_a_server_without_rfc5746_is_insecure_renegotiation(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    # Exim's SMTPS (GnuTLS, NORMAL:%DISABLE_SAFE_RENEGOTIATION): nothing is renegotiated.
    result = _inspect(lab, issue_permit, ctx, "smtp", port=465)
    assert _only(result, "tls.renegotiation").value == {
        "secure": False,
        "protocol": "TLSv1.2",
        "rfc": "RFC 5746",
    }
    assert "RIO-TLS-INSECURE-RENEGOTIATION" in _rules(result, catalogue)


def test_private_ca_leaf_is_untrusted_against_the_system_store_alone(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _inspect(lab, issue_permit, ctx, "tls-private-ca", bundle=False)
    chain = _only(result, "tls.chain")
    assert chain.value["untrusted_issuer"] is True
    (store,) = chain.value["stores"]
    assert store["store"] == "system" and "Lab Private Root CA" in store["reason"]
    assert chain.evidence is not None and "CN=private.lab.test" in chain.evidence
    assert "RIO-TLS-UNTRUSTED-ISSUER" in _rules(result, catalogue)


def test_private_ca_leaf_is_trusted_once_the_bundle_names_the_private_ca(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _inspect(lab, issue_permit, ctx, "tls-private-ca")
    chain = _only(result, "tls.chain").value
    assert chain["trusted"] is True and chain["incomplete"] is False
    bundle = chain["stores"][1]
    assert bundle["file"] == str(lab.ca_bundle) and len(bundle["sha256"]) == 64
    assert _rules(result, catalogue) == {"RIO-TLS-OCSP-NOT-STAPLED"}


def test_a_leaf_sent_without_its_intermediate_is_an_incomplete_chain(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _inspect(lab, issue_permit, ctx, "tls-incomplete-chain")
    chain = _only(result, "tls.chain").value
    assert chain["presented"] == 1 and chain["incomplete"] is True
    assert any(
        "Lab Private Intermediate CA" in m for m in chain["stores"][1]["missing_intermediates"]
    )
    rules = _rules(result, catalogue)
    assert "RIO-TLS-CHAIN-INCOMPLETE" in rules and "RIO-TLS-UNTRUSTED-ISSUER" not in rules


def test_a_chain_ending_at_an_unknown_root_is_untrusted_with_or_without_the_bundle(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _inspect(lab, issue_permit, ctx, "tls-unknown-ca")
    chain = _only(result, "tls.chain").value
    assert chain["presented"] == 2 and chain["trusted"] is False
    assert {s["reason"] for s in chain["stores"]} == {"ends at a root this store does not trust"}
    assert "RIO-TLS-UNTRUSTED-ISSUER" in _rules(result, catalogue)


def test_dhe_with_a_1024_bit_group_is_weak_dh(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _inspect(lab, issue_permit, ctx, "tls-weak-dh")
    dh = _only(result, "tls.kex.dh").value
    assert dh["accepted"] is True and dh["bits"] == 1024 and dh["weak"] is True
    assert dh["cipher"] == "DHE-RSA-AES128-GCM-SHA256"
    assert "RIO-TLS-WEAK-DH" in _rules(result, catalogue)


def test_without_the_inspect_switch_no_inspection_handshake_is_made(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    permit = issue_permit("tls", lab.ip("tls-weak-dh"), port=443, params={"timeout": 5})
    result = asyncio.run(TlsProbe().run(permit, ctx))
    assert result.connections == 1
    assert not [o for o in result.observations if o.key.startswith(("tls.kex", "tls.chain"))]
