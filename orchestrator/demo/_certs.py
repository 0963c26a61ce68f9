"""Certificates for the target farm: one farm CA, one leaf per target, expired self-signed for weak.

Startup must stay fast for hundreds of targets, so one EC P-256 key is generated for all leaves
(and one for the CA); only the certificates differ. Python's :mod:`ssl` loads a certificate chain
from files only, so :func:`server_contexts` writes the PEMs into a private temporary directory,
loads every context and removes the directory before it returns.
"""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["FarmCertificates", "make_certificates", "server_contexts"]

_VALID_FOR = timedelta(days=397)
# Backdated so a client whose clock is a little behind still sees a valid certificate.
_BACKDATE = timedelta(hours=1)
# The weak targets' certificate expired a month ago: a clear RIO-TLS-EXPIRED + SELF-SIGNED case.
_EXPIRED_SPAN = (timedelta(days=60), timedelta(days=30))


@dataclass(frozen=True, kw_only=True, slots=True)
class FarmCertificates:
    """The PEM material of one farm.

    Attributes:
        ca_pem: the farm CA certificate.
        key_pem: the private key shared by every leaf (unencrypted PKCS#8).
        leaves: target IP -> that target's certificate.
    """

    ca_pem: bytes
    key_pem: bytes
    leaves: Mapping[str, bytes]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rio demo farm"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: Sequence[str], ip: str) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    entries.append(x509.IPAddress(ipaddress.ip_address(ip)))
    return x509.SubjectAlternativeName(entries)


def make_certificates(
    *, ips: Sequence[str], weak: frozenset[str], names: Sequence[str], now: datetime
) -> FarmCertificates:
    """Build the farm CA and one certificate per target.

    Args:
        ips: the target addresses.
        weak: the targets that get an expired self-signed certificate instead of a CA-signed one.
        names: DNS names every leaf carries in its SAN besides its own IP
            (e.g. ``www.demo.test``, ``portal.demo.test``).
        now: the issuance instant (timezone-aware).

    Returns:
        The CA certificate, the shared leaf key and the leaves, all PEM.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name("rio demo farm CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    common_name = names[0] if names else "demo"
    leaves: dict[str, bytes] = {}
    for ip in ips:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(_san(names, ip), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(leaf_usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        if ip in weak:
            cert = (
                builder.issuer_name(_name(common_name))
                .not_valid_before(now - _EXPIRED_SPAN[0])
                .not_valid_after(now - _EXPIRED_SPAN[1])
                .sign(leaf_key, hashes.SHA256())
            )
        else:
            cert = (
                builder.issuer_name(ca_subject)
                .not_valid_before(now - _BACKDATE)
                .not_valid_after(now + _VALID_FOR)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                    critical=False,
                )
                .sign(ca_key, hashes.SHA256())
            )
        leaves[ip] = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return FarmCertificates(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM), key_pem=key_pem, leaves=leaves
    )


def server_contexts(certs: FarmCertificates) -> dict[str, ssl.SSLContext]:
    """One TLS server context per target, loaded from ``certs``.

    Args:
        certs: the farm's certificates.

    Returns:
        Target IP -> server context presenting that target's certificate.
    """
    contexts: dict[str, ssl.SSLContext] = {}
    # The directory is private to this process (mode 0700) and gone before we return.
    with tempfile.TemporaryDirectory(prefix="rio-farm-") as directory:
        key_path = Path(directory) / "key.pem"
        key_path.write_bytes(certs.key_pem)
        for index, (ip, cert_pem) in enumerate(certs.leaves.items()):
            cert_path = Path(directory) / f"cert-{index}.pem"
            cert_path.write_bytes(cert_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_path, key_path)
            contexts[ip] = context
    return contexts
