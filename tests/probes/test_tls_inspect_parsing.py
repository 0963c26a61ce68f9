"""Parsing what ``openssl s_client`` prints, and judging chains offline (no network)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from probes._tls_inspect import TempKey, judge_chain, load_store, parse_s_client
from probes.services import ehlo_extensions
from tests.integration.field.pki import PrivatePki
from tests.support.servers import CertFactory

_HEAD = "CONNECTED(00000003)\n---\n"


def _out(*lines: str, chain: str = "") -> str:
    return _HEAD + chain + "\n".join(lines) + "\n"


def test_secure_renegotiation_temp_key_and_cipher_are_read() -> None:
    report = parse_s_client(
        _out(
            "OCSP response: no response sent",
            "Server Temp Key: X25519, 253 bits",
            "---",
            "New, TLSv1.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256",
            "Secure Renegotiation IS supported",
        )
    )
    assert report.connected and report.protocol == "TLSv1.2"
    assert report.cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    assert report.secure_renegotiation is True
    assert report.temp_key == TempKey(kind="ECDH", group="X25519", bits=253)
    assert report.temp_key.weak is False  # 253 bits, but X25519
    assert report.ocsp_stapled is False


def test_a_server_without_rfc5746_says_not_supported() -> None:
    report = parse_s_client(
        _out(
            "New, TLSv1.2, Cipher is DHE-RSA-AES256-GCM-SHA384",
            "Secure Renegotiation IS NOT supported",
        )
    )
    assert report.secure_renegotiation is False


@pytest.mark.parametrize(
    ("line", "key", "weak"),
    [
        ("DH, 1024 bits", TempKey(kind="DH", group=None, bits=1024), True),
        ("DH, 2048 bits", TempKey(kind="DH", group=None, bits=2048), False),
        ("ECDH, prime256v1, 256 bits", TempKey(kind="ECDH", group="prime256v1", bits=256), False),
        ("ECDH, secp224r1, 224 bits", TempKey(kind="ECDH", group="secp224r1", bits=224), True),
        ("X448, 448 bits", TempKey(kind="ECDH", group="X448", bits=448), False),
    ],
)
def test_temp_keys_and_their_strength(line: str, key: TempKey, weak: bool) -> None:
    report = parse_s_client(_out(f"Server Temp Key: {line}", "New, TLSv1.2, Cipher is X"))
    assert report.temp_key == key
    assert key.weak is weak


def test_a_stapled_response_and_its_status_are_read() -> None:
    report = parse_s_client(
        _out(
            "OCSP response: ",
            "======================================",
            "OCSP Response Data:",
            "    OCSP Response Status: successful (0x0)",
            "    Cert Status: good",
            "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384",
        )
    )
    assert report.ocsp_stapled is True and report.ocsp_status == "good"


def test_a_failed_handshake_reports_nothing_but_the_error() -> None:
    report = parse_s_client(
        _out(
            "no peer certificate available",
            "New, (NONE), Cipher is (NONE)",
            "Secure Renegotiation IS NOT supported",
        ),
        "40E7:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure\n",
    )
    assert not report.connected
    assert report.secure_renegotiation is None and report.chain == ()
    assert report.error is not None and "handshake failure" in report.error


def test_only_the_chain_section_gives_certificates(tmp_path: Path) -> None:
    certs = CertFactory(tmp_path)
    leaf = certs.issued("a.lab.test").cert_path.read_text()
    ca = certs.ca_path.read_text()
    chain = f"Certificate chain\n 0 s:CN = a.lab.test\n{leaf} 1 s:CN = rio test CA\n{ca}---\n"
    text = _out("Server certificate", leaf, "New, TLSv1.2, Cipher is X", chain=chain)
    report = parse_s_client(text)
    assert report.chain == (ssl.PEM_cert_to_DER_cert(leaf), ssl.PEM_cert_to_DER_cert(ca))


def _certs(*paths: Path) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.read_bytes()) for p in paths]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PrivatePki:
    return PrivatePki(tmp_path_factory.mktemp("pki"))


def test_leaf_of_the_private_root_is_trusted_only_by_a_store_holding_that_root(
    pki: PrivatePki, tmp_path: Path
) -> None:
    leaf = pki.leaf("p.lab.test", "root")
    bundle = load_store(pki.bundle(tmp_path / "bundle.pem"))
    verdict = judge_chain(_certs(leaf.cert), bundle, "bundle")
    assert verdict.trusted and verdict.from_store == ()
    other = judge_chain(_certs(leaf.cert), _certs(pki.ca("unknown")[0]), "other")
    assert not other.trusted and other.reason.startswith("issuer not found")


def test_intermediate_only_the_store_holds_makes_the_chain_incomplete(
    pki: PrivatePki, tmp_path: Path
) -> None:
    leaf = pki.leaf("c.lab.test", "intermediate")
    bundle = load_store(pki.bundle(tmp_path / "bundle.pem"))
    sent_alone = judge_chain(_certs(leaf.cert), bundle, "bundle")
    assert sent_alone.trusted and len(sent_alone.from_store) == 1
    intermediate = pki.ca("intermediate")[0]
    complete = judge_chain(_certs(leaf.cert, intermediate), bundle, "bundle")
    assert complete.trusted and complete.from_store == ()
    assert len(complete.path) == 3


def test_a_self_signed_leaf_is_named_so_and_a_foreign_signature_is_no_issuer(
    pki: PrivatePki, tmp_path: Path
) -> None:
    certs = CertFactory(tmp_path)
    own = certs.self_signed("s.lab.test").cert_path
    assert judge_chain(_certs(own), [], "none").reason == "self-signed leaf"
    # same issuer name, different key: the signature does not verify, so it is not the issuer
    (tmp_path / "other").mkdir()
    impostor = CertFactory(tmp_path / "other")
    forged = impostor.issued("f.lab.test").cert_path
    verdict = judge_chain(_certs(forged), _certs(certs.ca_path), "system")
    assert not verdict.trusted and verdict.reason == "issuer not found: CN=rio test CA"


def test_ehlo_extensions_are_the_keywords_after_the_greeting_line() -> None:
    reply = "250-mail.lab.test Hello rio\n250-SIZE 52428800\n250-starttls\n250 HELP"
    assert ehlo_extensions(reply) == ["SIZE", "STARTTLS", "HELP"]


def test_a_sha1_signature_is_unverifiable_not_an_unknown_issuer(tmp_path: Path) -> None:
    # cryptography refuses to verify SHA-1 signatures; RIO-TLS-WEAK-SIGNATURE reports them.
    certs = CertFactory(tmp_path)
    leaf = certs.sha1_issued("s.lab.test").cert_path
    verdict = judge_chain(_certs(leaf), _certs(certs.ca_path), "bundle")
    assert not verdict.trusted and verdict.unverifiable
    assert verdict.reason.startswith("signature not verifiable")
