"""Which cipher suites a TLS server accepts, within a fixed number of handshakes.

Python's ``ssl`` with one context per protocol version does the handshakes (the same OpenSSL
the rest of the tls probe uses; no hand-written ClientHello, no extra dependency such as
sslyze, whose ``nassl`` ships its own OpenSSL builds). The method is *preference elimination*:
offer every suite the local OpenSSL has, see which one the server picks, strike it, offer the
rest again, until the server refuses or the handshake budget is spent. That costs one handshake
per accepted suite plus one, instead of one per suite known. TLS 1.3 suites cannot be chosen
through ``ssl``; TLS 1.3 is tested for support only.

Suites the local OpenSSL cannot offer (RC4, single DES, export suites are not built into
Debian's OpenSSL 3) are never seen accepted; the observation says which classes were testable.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LEGACY_SERVER_CONNECT",
    "MOZILLA_INTERMEDIATE_TLS12",
    "Suite",
    "accepted_suites",
    "supports_tls13",
]

#: the TLS 1.2 suites of Mozilla's "intermediate" server profile (guidelines v5.7)
MOZILLA_INTERMEDIATE_TLS12: frozenset[str] = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    }
)
_OFFER = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
#: OpenSSL 3 refuses servers without RFC 5746 (secure renegotiation) unless this is set; the
#: probe must see them to report them (``ssl.OP_LEGACY_SERVER_CONNECT`` from Python 3.12)
LEGACY_SERVER_CONNECT: int = getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)


@dataclass(frozen=True, kw_only=True, slots=True)
class Suite:
    """One accepted suite and what it is made of (from OpenSSL's own description)."""

    name: str
    protocol: str
    kea: str
    auth: str
    symmetric: str
    digest: str | None
    aead: bool

    @property
    def forward_secret(self) -> bool:
        return self.kea in ("kx-ecdhe", "kx-dhe")

    @property
    def null_or_anonymous(self) -> bool:
        return self.symmetric == "null" or self.auth == "auth-null"

    @property
    def cbc_sha1(self) -> bool:
        return not self.aead and self.digest == "sha1" and self.symmetric.endswith("-cbc")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kea": self.kea, "auth": self.auth, "aead": self.aead}


def _context(version: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(ciphers)
    context.options |= LEGACY_SERVER_CONNECT
    with warnings.catch_warnings():
        # Deprecated on purpose: learning whether a server still accepts them is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    return context


def _offerable(version: ssl.TLSVersion) -> dict[str, dict[str, Any]]:
    """Suites the local OpenSSL can offer for ``version`` (no PSK/SRP: they need a secret)."""
    context = _context(version, _OFFER)
    return {
        c["name"]: dict(c)
        for c in context.get_ciphers()
        if c["protocol"] != "TLSv1.3" and "PSK" not in c["name"] and "SRP" not in c["name"]
    }


def _chosen(ip: str, port: int, sni: str | None, timeout: float, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection((ip, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        cipher = tls.cipher()
        return cipher[0] if cipher else ""


def accepted_suites(
    ip: str,
    port: int,
    sni: str | None,
    timeout: float,
    version: ssl.TLSVersion,
    spend: Callable[[], bool],
) -> tuple[list[Suite], bool]:
    """The suites the server accepts for ``version``, by preference elimination.

    Args:
        spend: called before each handshake; returns False when the budget is spent.

    Returns:
        (accepted suites in the server's order, whether the list is complete).

    Raises:
        OSError: the connection itself failed (timeout, refused, reset).
    """
    known = _offerable(version)
    remaining = list(known)
    accepted: list[Suite] = []
    while remaining:
        if not spend():
            return accepted, False
        try:
            offer = ":".join([*remaining, "@SECLEVEL=0"])
            name = _chosen(ip, port, sni, timeout, _context(version, offer))
        except ssl.SSLError:
            return accepted, True  # the server accepts none of what is left
        if name not in known or name not in remaining:
            return accepted, False  # the server chose something we did not offer: stop
        info = known[name]
        accepted.append(
            Suite(
                name=name,
                protocol=str(info["protocol"]),
                kea=str(info.get("kea")),
                auth=str(info.get("auth")),
                symmetric=str(info.get("symmetric")),
                digest=info.get("digest"),
                aead=bool(info.get("aead")),
            )
        )
        remaining.remove(name)
    return accepted, True


def supports_tls13(ip: str, port: int, sni: str | None, timeout: float) -> bool:
    """Whether a TLS 1.3-only handshake succeeds.

    Raises:
        OSError: the connection itself failed (timeout, refused, reset).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= LEGACY_SERVER_CONNECT
    try:
        _chosen(ip, port, sni, timeout, context)
    except ssl.SSLError:
        return False
    return True
