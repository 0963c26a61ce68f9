"""The tls probe: one handshake to read what the server presents, optionally two legacy ones.

The handshake does not verify the certificate (``CERT_NONE``) and allows every cipher
(``SECLEVEL=0``): the point is to *see* an expired, self-signed or weak certificate, which a
verifying client would refuse to show us. The certificate is judged afterwards with
``cryptography.x509``. Handshakes are blocking ``ssl`` calls run in the default executor, each
bounded by a socket timeout, and connect only to the permit's pinned address.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import socket
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID

from probes._tls_inspect import INSPECT_HANDSHAKES, inspect_handshakes, self_signed
from probes._tls_suites import (
    LEGACY_SERVER_CONNECT,
    MOZILLA_INTERMEDIATE_TLS12,
    Suite,
    accepted_suites,
    supports_tls13,
)
from probes.base import (
    Disruption,
    Observation,
    Permit,
    ProbeContext,
    ProbeResult,
    check_permit,
    monotonic,
)
from probes.errors import ProbeArgumentError, ProbeCancelledError

__all__ = [
    "INSPECT_HANDSHAKES",
    "CertificateFacts",
    "TlsProbe",
    "certificate_facts",
    "hostname_matches",
]

_PARAM_KEYS = frozenset(
    {"timeout", "check_legacy", "enumerate", "max_handshakes", "inspect", "ca_bundle"}
)

_MAX_HANDSHAKES = 64
_DEFAULT_TIMEOUT = 10.0
_ALL_CIPHERS = "ALL:@SECLEVEL=0"
_MIN_RSA_BITS = 2048
_MIN_EC_BITS = 256
_WEAK_HASHES = ("md5", "sha1")
_LEGACY = ((ssl.TLSVersion.TLSv1, "tls1_0"), (ssl.TLSVersion.TLSv1_1, "tls1_1"))
# Errors that mean *we* could not offer the protocol, not that the server refused it.
_LOCAL_INABILITY = frozenset(
    {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "UNSUPPORTED_SSL_VERSION"}
)


def _refuse(field: str, value: object, why: str) -> ProbeArgumentError:
    return ProbeArgumentError(f"tls probe: {field}: {value!r} {why}")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Params:
    port: int
    timeout: float
    check_legacy: bool
    enumerate: bool = False
    max_handshakes: int = 0
    inspect: bool = False
    ca_bundle: Path | None = None


def _params(permit: Permit) -> _Params:
    params: Mapping[str, Any] = permit.params
    unknown = sorted(str(k) for k in params if k not in _PARAM_KEYS)
    if unknown:
        raise _refuse("params", unknown, f"has unknown keys (allowed: {sorted(_PARAM_KEYS)})")
    timeout = params.get("timeout", _DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _refuse("params.timeout", timeout, "is not a positive number of seconds")
    legacy = params.get("check_legacy", False)
    if not isinstance(legacy, bool):
        raise _refuse("params.check_legacy", legacy, "is not true or false")
    try:
        ip = ipaddress.ip_address(permit.ip)
    except ValueError:
        raise _refuse("ip", permit.ip, "is not an IP address literal") from None
    if str(ip) != permit.ip:
        raise _refuse("ip", permit.ip, "is not a canonical IP literal")
    port = permit.port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _refuse("port", port, "is not a port number 1-65535")
    enumerate_ = params.get("enumerate", False)
    if not isinstance(enumerate_, bool):
        raise _refuse("params.enumerate", enumerate_, "is not true or false")
    budget = params.get("max_handshakes", 24 if enumerate_ else 0)
    if isinstance(budget, bool) or not isinstance(budget, int) or not 0 <= budget <= 64:
        raise _refuse("params.max_handshakes", budget, f"is not a count 0..{_MAX_HANDSHAKES}")
    inspect = params.get("inspect", False)
    if not isinstance(inspect, bool):
        raise _refuse("params.inspect", inspect, "is not true or false")
    bundle = params.get("ca_bundle")
    if bundle is not None and (not isinstance(bundle, str) or not Path(bundle).is_absolute()):
        raise _refuse("params.ca_bundle", bundle, "is not an absolute path")
    return _Params(
        port=port,
        timeout=float(timeout),
        check_legacy=legacy,
        enumerate=enumerate_,
        max_handshakes=budget,
        inspect=inspect,
        ca_bundle=Path(bundle) if bundle is not None else None,
    )


def hostname_matches(name: str, patterns: list[str]) -> bool:
    """Whether ``name`` matches one of the certificate names (RFC 6125 wildcard rules).

    A wildcard stands for exactly one whole left-most label (``*.example.com`` matches
    ``www.example.com``, not ``example.com`` nor ``a.b.example.com``); partial-label wildcards
    (``w*.example.com``) are not honoured.
    """
    wanted = name.rstrip(".").lower()
    for pattern in patterns:
        candidate = pattern.rstrip(".").lower()
        if candidate == wanted:
            return True
        if candidate.startswith("*.") and "*" not in candidate[2:]:
            head, _, rest = wanted.partition(".")
            if head and rest == candidate[2:] and rest.count(".") >= 1:
                return True
    return False


@dataclass(frozen=True, kw_only=True, slots=True)
class CertificateFacts:
    """What the leaf certificate says about itself, judged at ``now``."""

    sha256: str
    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    expired: bool
    not_yet_valid: bool
    days_left: int
    self_signed: bool
    key_type: str
    key_bits: int | None
    weak_key: bool
    signature_hash: str | None
    weak_signature: bool


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        # Without a SAN, clients of old fell back to the common name; judge it the same way.
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return names


def _key(cert: x509.Certificate) -> tuple[str, int | None, bool]:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, key.key_size < _MIN_RSA_BITS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.key_size < _MIN_EC_BITS
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, True  # DSA is withdrawn for TLS certificates
    return type(key).__name__.removesuffix("PublicKey").lstrip("_"), None, False


def certificate_facts(der: bytes, now: datetime | None = None) -> CertificateFacts:
    """Parse a DER certificate and judge validity, self-signature, key and signature strength.

    Raises:
        ValueError: ``der`` is not a certificate.
    """
    cert = x509.load_der_x509_certificate(der)
    current = now if now is not None else datetime.now(UTC)
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    key_type, key_bits, weak_key = _key(cert)
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # an unknown algorithm OID: not provably weak
        algorithm = None
    hash_name = algorithm.name if isinstance(algorithm, hashes.HashAlgorithm) else None
    return CertificateFacts(
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        names=tuple(_names(cert)),
        not_before=not_before,
        not_after=not_after,
        expired=current > not_after,
        not_yet_valid=current < not_before,
        days_left=math.floor((not_after - current).total_seconds() / 86400),
        self_signed=self_signed(cert),
        key_type=key_type,
        key_bits=key_bits,
        weak_key=weak_key,
        signature_hash=hash_name,
        weak_signature=hash_name in _WEAK_HASHES,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Handshake:
    protocol: str | None
    cipher: tuple[str, str, int] | None
    der: bytes | None


def _context(version: ssl.TLSVersion | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(_ALL_CIPHERS)
    context.options |= LEGACY_SERVER_CONNECT
    if version is not None:
        # Deprecated on purpose: learning whether a server still accepts them is the point.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
    return context


def _handshake(
    ip: str, port: int, sni: str | None, timeout: float, version: ssl.TLSVersion | None
) -> _Handshake:
    context = _context(version)
    with (
        socket.create_connection((ip, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        return _Handshake(
            protocol=tls.version(), cipher=tls.cipher(), der=tls.getpeercert(binary_form=True)
        )


def _cert_observations(
    facts: CertificateFacts, server_name: str | None, port: int
) -> list[Observation]:
    evidence = (
        f"subject: {facts.subject}\nissuer: {facts.issuer}\nnames: {', '.join(facts.names)}\n"
        f"not_before: {facts.not_before.isoformat()}\nnot_after: {facts.not_after.isoformat()}"
    )
    obs = [
        Observation(key="tls.cert", value={"sha256": facts.sha256}, port=port, evidence=evidence),
        Observation(key="tls.cert.expired", value=facts.expired, port=port),
        Observation(key="tls.cert.not_yet_valid", value=facts.not_yet_valid, port=port),
        Observation(
            key="tls.cert.expiry",
            value={"not_after": facts.not_after.isoformat(), "days_left": facts.days_left},
            port=port,
        ),
        Observation(key="tls.cert.self_signed", value=facts.self_signed, port=port),
        Observation(
            key="tls.cert.key",
            value={"type": facts.key_type, "bits": facts.key_bits, "weak": facts.weak_key},
            port=port,
        ),
        Observation(
            key="tls.cert.signature",
            value={"hash": facts.signature_hash, "weak": facts.weak_signature},
            port=port,
        ),
    ]
    if server_name is not None:
        obs.append(
            Observation(
                key="tls.cert.name",
                value={
                    "server_name": server_name,
                    "match": hostname_matches(server_name, list(facts.names)),
                },
                port=port,
            )
        )
    return obs


def _legacy_outcome(exc: BaseException) -> str | None:
    """``None`` if the server refused; otherwise why the attempt says nothing."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLError) and reason in _LOCAL_INABILITY:
        return f"local OpenSSL cannot offer it ({reason})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return None


class TlsProbe:
    """Handshake with the pinned address, read the leaf certificate, optionally try TLS 1.0/1.1."""

    name: ClassVar[str] = "tls"
    disruption: ClassVar[Disruption] = Disruption.LIGHT

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Handshake with ``permit.ip:permit.port`` using ``permit.server_name`` as SNI.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired between handshakes.
        """
        check_permit(permit, self.name)
        params = _params(permit)
        try:
            return await self._run(permit, ctx, params)
        except asyncio.CancelledError as exc:
            # One shape for every probe: a cancelled task reports the kill switch's error.
            raise ProbeCancelledError("tls probe: cancelled") from exc

    async def _run(self, permit: Permit, ctx: ProbeContext, params: _Params) -> ProbeResult:
        port, sni = params.port, permit.server_name
        loop = asyncio.get_running_loop()
        started = monotonic()
        observations: list[Observation] = []
        connections = 0

        def result(
            outcome: str, error: str | None = None, latency: float | None = None
        ) -> ProbeResult:
            return ProbeResult(
                probe=self.name,
                ip=permit.ip,
                outcome=outcome,
                observations=tuple(observations),
                error=error,
                started=started,
                elapsed=monotonic() - started,
                connections=connections,
                latency=latency,
            )

        if ctx.is_cancelled():
            raise ProbeCancelledError("tls probe: cancelled before the handshake")
        timeout = min(params.timeout, max(permit.seconds_left(), 0.001))
        connections += 1
        try:
            shake = await loop.run_in_executor(
                None, _handshake, permit.ip, port, sni, timeout, None
            )
        except TimeoutError as exc:
            return result("timeout", f"handshake: {exc}")
        except OSError as exc:  # refused, reset, unreachable, or an ssl.SSLError
            if isinstance(exc, ssl.SSLError):
                observations.append(
                    Observation(
                        key="tls.handshake", value={"ok": False, "reason": exc.reason}, port=port
                    )
                )
                return result("error", f"handshake: {exc}")
            return result("unreachable", f"handshake: {exc}")
        latency = monotonic() - started
        observations.append(Observation(key="tls.handshake", value={"ok": True}, port=port))
        observations.append(Observation(key="tls.protocol", value=shake.protocol, port=port))
        if shake.cipher is not None:
            name, _, bits = shake.cipher
            observations.append(
                Observation(key="tls.cipher", value={"name": name, "bits": bits}, port=port)
            )
        if shake.der:
            try:
                facts = certificate_facts(shake.der)
            except ValueError as exc:
                observations.append(
                    Observation(key="tls.cert.unparsable", value=True, port=port, evidence=str(exc))
                )
            else:
                observations.extend(_cert_observations(facts, sni, port))
        if params.check_legacy:
            for version, label in _LEGACY:
                if ctx.is_cancelled():
                    raise ProbeCancelledError(f"tls probe: cancelled before {label}")
                left = permit.seconds_left()
                if left <= 0:
                    return result("timeout", "permit deadline reached", latency)
                try:
                    _context(version)
                except (ssl.SSLError, ValueError) as exc:
                    observations.append(
                        Observation(
                            key="tls.legacy.untestable",
                            value={"version": label, "reason": str(exc)},
                            port=port,
                        )
                    )
                    continue
                connections += 1
                try:
                    await loop.run_in_executor(
                        None, _handshake, permit.ip, port, sni, min(timeout, left), version
                    )
                except OSError as exc:
                    why = _legacy_outcome(exc)
                    if why is not None:
                        observations.append(
                            Observation(
                                key="tls.legacy.untestable",
                                value={"version": label, "reason": why},
                                port=port,
                            )
                        )
                    else:
                        observations.append(
                            Observation(
                                key=f"tls.legacy.{label}", value={"accepted": False}, port=port
                            )
                        )
                else:
                    observations.append(
                        Observation(key=f"tls.legacy.{label}", value={"accepted": True}, port=port)
                    )
        if params.inspect:
            if ctx.is_cancelled():
                raise ProbeCancelledError("tls probe: cancelled before the inspection")
            connections += await inspect_handshakes(
                permit, ctx, params.port, params.ca_bundle, observations
            )
        if params.enumerate:
            made = await self._enumerate(permit, ctx, params, timeout, observations)
            connections += made
        return result("ok", None, latency)

    async def _enumerate(
        self,
        permit: Permit,
        ctx: ProbeContext,
        params: _Params,
        timeout: float,
        observations: list[Observation],
    ) -> int:
        """Accepted suites per protocol and TLS 1.3 support, in at most max_handshakes."""
        loop = asyncio.get_running_loop()
        port, sni = params.port, permit.server_name
        made = 0

        def spend() -> bool:
            nonlocal made
            if made >= params.max_handshakes or ctx.is_cancelled() or permit.seconds_left() <= 0:
                return False
            made += 1
            return True

        # TLS 1.3 first: one handshake, and the budget must not run out before it.
        if spend():
            try:
                tls13 = await loop.run_in_executor(
                    None, supports_tls13, permit.ip, port, sni, timeout
                )
            except OSError:
                pass  # no verdict: the connection failed, not the protocol
            else:
                observations.append(
                    Observation(
                        key="tls.tls13",
                        value={"supported": tls13, "profile": "Mozilla intermediate v5.7"},
                        port=port,
                    )
                )
        legacy = {
            label
            for o in observations
            for label in ("tls1_0", "tls1_1")
            if o.key == f"tls.legacy.{label}" and o.value == {"accepted": True}
        }
        # TLS 1.2 before the legacy versions: what most clients use is judged first.
        versions = [(ssl.TLSVersion.TLSv1_2, "tls1_2")]
        versions += [(v, label) for v, label in _LEGACY if label in legacy]
        accepted: list[Suite] = []
        complete = True
        for version, label in versions:
            try:
                suites, done = await loop.run_in_executor(
                    None, accepted_suites, permit.ip, port, sni, timeout, version, spend
                )
            except OSError as exc:
                suites, done = [], False
                observations.append(
                    Observation(
                        key="tls.suites.untestable",
                        value={"protocol": label, "reason": str(exc)[:200]},
                        port=port,
                    )
                )
            complete = complete and done
            accepted += suites
            observations.append(
                Observation(
                    key=f"tls.suites.{label}",
                    value={"accepted": [x.to_json() for x in suites], "complete": done},
                    port=port,
                )
            )
        observations += _suite_verdicts(accepted, complete, port)
        return made


def _suite_verdicts(accepted: list[Suite], complete: bool, port: int) -> list[Observation]:
    """Judge accepted suites against Mozilla's intermediate profile, one rule per class."""
    profile = "Mozilla intermediate v5.7"
    classes = (
        ("null_anon", [s for s in accepted if s.null_or_anonymous],
         "no NULL encryption and no anonymous key exchange"),
        ("no_forward_secrecy", [s for s in accepted if not s.forward_secret],
         "key exchange is ECDHE or DHE only (forward secrecy)"),
        ("cbc_sha1", [s for s in accepted if s.cbc_sha1],
         "AEAD suites only (AES-GCM, ChaCha20-Poly1305); no CBC with SHA-1"),
    )  # fmt: skip
    out = []
    for key, suites, rule in classes:
        out.append(
            Observation(
                key=f"tls.suites.{key}",
                value={
                    "present": bool(suites),
                    "suites": [s.name for s in suites],
                    "complete": complete,
                    "profile": profile,
                    "profile_rule": rule,
                },
                port=port,
            )
        )
    outside = sorted(
        s.name
        for s in accepted
        if s.protocol != "TLSv1.3" and s.name not in MOZILLA_INTERMEDIATE_TLS12
    )
    out.append(
        Observation(
            key="tls.suites.profile",
            value={"profile": profile, "outside": outside, "complete": complete},
            port=port,
        )
    )
    return out
