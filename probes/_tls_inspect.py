"""What Python's ``ssl`` does not show about a TLS server, read with ``openssl s_client``.

Python's ``ssl`` (3.11) gives neither the certificate chain the server sent, nor whether it
supports secure renegotiation (RFC 5746), nor the ephemeral key it used, nor a stapled OCSP
response (it cannot even ask for one). OpenSSL's own client prints all four after one ordinary
handshake: ``-showcerts`` (the chain as sent), ``Secure Renegotiation IS [NOT] supported`` (the
``renegotiation_info`` extension of the ServerHello), ``Server Temp Key`` (the DH or ECDH group)
and ``-status`` (a ``status_request`` in the ClientHello; the server staples or says nothing).
This is the same OpenSSL the rest of the tls probe links, the tool testssl.sh drives, and no
hand-written ClientHello. Nothing is renegotiated: whether a server *lacks* RFC 5746 is read from
its hello, never tested by renegotiating (that is the part that can load a server).

The chain is judged here, offline, against trust stores (:func:`judge_chain`): the system store
and, where the policy names one, a CA bundle (an entity's private PKI). The path is built from the
leaf up: issuers the server sent first, then the store's; a path that needs an intermediate only
the store holds means the server's chain is **incomplete** (clients without that intermediate
cached fail). rio never fetches a missing intermediate from the certificate's AIA URL: that is
traffic to an address outside the announced scope. Signatures and CA flags are checked; validity
dates are not (expiry has rules of its own), nor are name constraints, policies or revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import ssl
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from probes.base import Observation, Permit, ProbeContext

__all__ = [
    "INSPECT_HANDSHAKES",
    "MIN_DH_BITS",
    "MIN_ECDH_BITS",
    "ClientReport",
    "StoreVerdict",
    "TempKey",
    "inspect_handshakes",
    "judge_chain",
    "load_store",
    "parse_s_client",
    "s_client",
    "self_signed",
]

#: Mozilla intermediate v5.7: "DH parameter size: 2048 (ffdhe2048, RFC 7919)"
MIN_DH_BITS = 2048
#: below P-256 strength (secp224r1, prime192v1, ...); X25519 and X448 are always strong enough
MIN_ECDH_BITS = 256
_STRONG_CURVES = frozenset({"X25519", "X448"})
_MAX_PATH = 10
_MAX_OUTPUT = 1_000_000
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_NEW = re.compile(r"^New, (\S+), Cipher is (\S+)$", re.M)
_RENEG = re.compile(r"^Secure Renegotiation IS( NOT)? supported$", re.M)
_TEMP = re.compile(r"^Server Temp Key: (.+)$", re.M)
_BITS = re.compile(r"^(\d+) bits?$")
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, kw_only=True, slots=True)
class TempKey:
    """The server's ephemeral key exchange key: ``DH`` with its size, or an ECDH group."""

    kind: str
    """``DH`` or ``ECDH``"""
    group: str | None
    bits: int

    @property
    def weak(self) -> bool:
        if self.kind == "DH":
            return self.bits < MIN_DH_BITS
        return self.group not in _STRONG_CURVES and self.bits < MIN_ECDH_BITS

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "group": self.group, "bits": self.bits, "weak": self.weak}


def _temp_key(line: str) -> TempKey | None:
    parts = [p.strip() for p in line.split(",")]
    size = _BITS.match(parts[-1]) if parts else None
    if size is None:
        return None
    bits = int(size.group(1))
    if parts[0] == "DH" and len(parts) == 2:
        return TempKey(kind="DH", group=None, bits=bits)
    if parts[0] == "ECDH" and len(parts) == 3:
        return TempKey(kind="ECDH", group=parts[1], bits=bits)
    if len(parts) == 2:  # "X25519, 253 bits"
        return TempKey(kind="ECDH", group=parts[0], bits=bits)
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientReport:
    """What one ``s_client`` handshake printed, parsed."""

    connected: bool
    """a handshake completed (a cipher was agreed)"""
    protocol: str | None
    cipher: str | None
    secure_renegotiation: bool | None
    temp_key: TempKey | None
    ocsp_stapled: bool | None
    """``None`` when the client did not ask (no ``-status``)"""
    ocsp_status: str | None
    """``good``, ``revoked``, ``unknown`` from a stapled response"""
    chain: tuple[bytes, ...]
    """DER certificates as the server sent them, leaf first"""
    error: str | None = None


def _chain(text: str) -> tuple[bytes, ...]:
    start = text.find("Certificate chain\n")
    if start < 0:
        return ()
    end = text.find("\n---\n", start)
    section = text[start : end if end >= 0 else len(text)]
    return tuple(ssl.PEM_cert_to_DER_cert(pem) for pem in _PEM.findall(section))


def parse_s_client(stdout: str, stderr: str = "") -> ClientReport:
    """Parse ``openssl s_client`` output (OpenSSL 1.1.1 and 3.x print the same lines)."""
    new = _NEW.search(stdout)
    connected = new is not None and new.group(2) != "(NONE)"
    reneg = _RENEG.search(stdout)
    temp = _TEMP.search(stdout)
    stapled: bool | None = None
    status = None
    if "OCSP response: no response sent" in stdout:
        stapled = False
    elif "OCSP Response Status: successful" in stdout:
        stapled = True
        found = re.search(r"^\s*Cert Status: (\w+)", stdout, re.M)
        status = found.group(1) if found else None
    error = None
    if not connected:
        lines = [ln.strip() for ln in stderr.splitlines() if "error" in ln.lower()]
        error = (lines[0] if lines else stderr.strip()[-200:] or "no cipher agreed")[:300]
    return ClientReport(
        connected=connected,
        protocol=new.group(1) if connected and new is not None else None,
        cipher=new.group(2) if connected and new is not None else None,
        secure_renegotiation=(reneg.group(1) is None) if connected and reneg else None,
        temp_key=_temp_key(temp.group(1)) if connected and temp else None,
        ocsp_stapled=stapled if connected else None,
        ocsp_status=status,
        chain=_chain(stdout) if connected else (),
        error=error,
    )


async def s_client(
    openssl: str,
    ip: str,
    port: int,
    sni: str | None,
    timeout: float,
    *,
    ciphers: str = "ALL:@SECLEVEL=0",
    protocol: str = "no_tls1_3",
    status: bool = True,
) -> ClientReport:
    """One handshake with ``ip:port`` by ``openssl s_client``; closes at once (stdin is empty).

    Args:
        protocol: ``no_tls1_3`` (TLS 1.0-1.2: renegotiation and the ServerKeyExchange exist
            there only), ``tls1_2`` or ``any``.

    Raises:
        TimeoutError: no answer within ``timeout`` (the process is killed).
        OSError: ``openssl`` could not be started.
    """
    host = f"[{ip}]" if ":" in ip else ip
    argv = [openssl, "s_client", "-connect", f"{host}:{port}", "-showcerts", "-cipher", ciphers]
    # Servers without RFC 5746 are refused by OpenSSL 3 clients unless allowed: seeing them is
    # the point. TLS 1.0 upward, like the probe's legacy handshakes.
    argv += ["-legacy_server_connect", "-min_protocol", "TLSv1"]
    argv += ["-servername", sni] if sni else ["-noservername"]
    if protocol != "any":
        argv.append(f"-{protocol}")
    if status:
        argv.append("-status")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        raise
    return parse_s_client(
        out[:_MAX_OUTPUT].decode(errors="replace"), err[:_MAX_OUTPUT].decode(errors="replace")
    )


# -- trust --------------------------------------------------------------------------------------


def load_store(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle (the system store or a policy's CA bundle).

    Raises:
        OSError: the file cannot be read.
        ValueError: it holds no certificate.
    """
    data = path.read_bytes()
    with warnings.catch_warnings():
        # Debian's store holds roots with non-positive serials; cryptography warns, still parses.
        warnings.simplefilter("ignore")
        certs = tuple(x509.load_pem_x509_certificates(data))
    if not certs:
        raise ValueError(f"{path}: no certificate")
    return certs


def self_signed(cert: x509.Certificate) -> bool:
    """Issuer is subject and the certificate's own key verifies its signature."""
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # any failure: not provably self-signed
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version is x509.Version.v1 and self_signed(cert)  # an old v1 root


class _UnverifiableError(Exception):
    """The signature uses an algorithm ``cryptography`` will not verify (SHA-1, MD5)."""


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` (a CA by name and flag) signed ``cert``.

    Raises:
        _UnverifiableError: the names match but the signature algorithm cannot be verified.
    """
    if cert.issuer != issuer.subject or not _is_ca(issuer):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError as exc:
        if "Unsupported signature algorithm" in str(exc):
            raise _UnverifiableError(str(exc)) from exc
        return False
    except Exception:  # wrong key: not this issuer
        return False
    return True


def _find(
    cert: x509.Certificate, candidates: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    return next((c for c in candidates if _issued_by(cert, c)), None)


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreVerdict:
    """Whether one trust store trusts the presented chain, and why not."""

    store: str
    trusted: bool
    reason: str
    path: tuple[str, ...]
    """subjects from the leaf to where the path ended"""
    from_store: tuple[str, ...]
    """intermediates the path needed that the server did not send (an incomplete chain)"""
    unverifiable: bool = False
    """a signature on the path uses an algorithm refused outright (SHA-1: its own rule)"""

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "trusted": self.trusted,
            "reason": self.reason,
            "path": list(self.path),
            "missing_intermediates": list(self.from_store),
            "unverifiable": self.unverifiable,
        }


def judge_chain(
    presented: Sequence[x509.Certificate], store: Sequence[x509.Certificate], name: str
) -> StoreVerdict:
    """Build a path from the leaf to a self-signed anchor of ``store`` (see the module doc).

    Raises:
        ValueError: ``presented`` is empty.
    """
    if not presented:
        raise ValueError("no certificate presented")
    anchors = {c.fingerprint(_SHA256): c for c in store if self_signed(c)}
    store_intermediates = [c for c in store if not self_signed(c)]
    sent = list(presented[1:])
    current = presented[0]
    path = [current.subject.rfc4514_string()]
    supplied: list[str] = []

    def verdict(trusted: bool, reason: str, unverifiable: bool = False) -> StoreVerdict:
        return StoreVerdict(
            store=name,
            trusted=trusted,
            reason=reason,
            path=tuple(path),
            from_store=tuple(supplied),
            unverifiable=unverifiable,
        )

    try:
        return _walk(current, anchors, sent, store_intermediates, path, supplied, verdict)
    except _UnverifiableError:
        algorithm = current.signature_algorithm_oid._name
        return verdict(False, f"signature not verifiable ({algorithm})", unverifiable=True)


def _walk(
    current: x509.Certificate,
    anchors: dict[bytes, x509.Certificate],
    sent: list[x509.Certificate],
    store_intermediates: list[x509.Certificate],
    path: list[str],
    supplied: list[str],
    verdict: Callable[[bool, str], StoreVerdict],
) -> StoreVerdict:
    for _ in range(_MAX_PATH):
        if self_signed(current):
            if current.fingerprint(_SHA256) in anchors:
                return verdict(True, "ends at a trusted root")
            if len(path) == 1:
                return verdict(False, "self-signed leaf")
            return verdict(False, "ends at a root this store does not trust")
        anchor = _find(current, anchors.values())
        if anchor is not None:
            path.append(anchor.subject.rfc4514_string())
            if supplied:
                return verdict(True, "trusted, with intermediates the server did not send")
            return verdict(True, "issued by a trusted root")
        nxt = _find(current, sent)
        if nxt is None:
            nxt = _find(current, store_intermediates)
            if nxt is None:
                return verdict(False, f"issuer not found: {current.issuer.rfc4514_string()}")
            supplied.append(nxt.subject.rfc4514_string())
        else:
            sent.remove(nxt)
        current = nxt
        path.append(current.subject.rfc4514_string())
    return verdict(False, f"no anchor within {_MAX_PATH} certificates")


# -- the probe's inspect step -------------------------------------------------------------------

#: handshakes :func:`inspect_handshakes` makes (its rate-budget cost): one for renegotiation,
#: OCSP, the ECDH group and the chain; one offering only DHE suites (or, where the first found
#: no TLS 1.0-1.2, one TLS 1.3 handshake for the chain and OCSP)
INSPECT_HANDSHAKES = 2
_PROFILE = "Mozilla intermediate v5.7"


def _system_store() -> Path | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _chain_observation(
    chain: tuple[bytes, ...], bundle: Path | None, port: int
) -> list[Observation]:
    """Judge the presented chain against the system store and the policy's bundle."""
    try:
        presented = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        return [
            Observation(key="tls.chain.untestable", value={"reason": str(exc)[:200]}, port=port)
        ]
    stores: list[tuple[str, Path]] = []
    system = _system_store()
    if system is not None:
        stores.append(("system", system))
    if bundle is not None:
        stores.append(("bundle", bundle))
    verdicts: list[StoreVerdict] = []
    files: list[dict[str, str]] = []
    unreadable: list[dict[str, str]] = []
    for name, path in stores:
        try:
            verdicts.append(judge_chain(presented, load_store(path), name))
            # which anchors were used: the policy names the file, not its contents
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except (OSError, ValueError) as exc:
            unreadable.append({"store": name, "file": str(path), "reason": str(exc)[:200]})
        else:
            files.append({"file": str(path), "sha256": digest})
    if not verdicts:
        why = {"reason": "no readable trust store", "stores": unreadable}
        return [Observation(key="tls.chain.untestable", value=why, port=port)]
    trusted = any(v.trusted for v in verdicts)
    self_signed_leaf = self_signed(presented[0])
    incomplete = any(v.from_store for v in verdicts)
    evidence = "\n".join(
        f"{i}: subject: {c.subject.rfc4514_string()}\n   issuer: {c.issuer.rfc4514_string()}"
        for i, c in enumerate(presented)
    )
    value = {
        "trusted": trusted,
        "presented": len(presented),
        "self_signed_leaf": self_signed_leaf,
        "incomplete": incomplete,
        "untrusted_issuer": not trusted
        and not self_signed_leaf
        and not incomplete
        and not any(v.unverifiable for v in verdicts),
        "stores": [{**v.to_json(), **f} for v, f in zip(verdicts, files, strict=True)] + unreadable,
    }
    return [Observation(key="tls.chain", value=value, port=port, evidence=evidence)]


def _ecdh(key: TempKey | None, port: int) -> list[Observation]:
    if key is None or key.kind != "ECDH":
        return []
    value = {**key.to_json(), "minimum_bits": MIN_ECDH_BITS, "profile": _PROFILE}
    return [Observation(key="tls.kex.ecdh", value=value, port=port)]


async def inspect_handshakes(
    permit: Permit,
    ctx: ProbeContext,
    port: int,
    bundle: Path | None,
    observations: list[Observation],
) -> int:
    """Renegotiation, OCSP stapling, DH/ECDH groups and chain trust; returns handshakes made.

    Appends ``tls.renegotiation``, ``tls.ocsp``, ``tls.kex.ecdh``, ``tls.kex.dh`` and
    ``tls.chain`` (or ``tls.inspect.untestable`` naming why) to ``observations``.
    """
    openssl = ctx.openssl_path or shutil.which("openssl")
    if openssl is None:
        why = {"reason": "openssl (Debian package openssl) is not installed"}
        observations.append(Observation(key="tls.inspect.untestable", value=why, port=port))
        return 0
    sni = permit.server_name
    made = 0

    async def shake(**options: Any) -> ClientReport | None:
        nonlocal made
        left = permit.seconds_left()
        if made >= INSPECT_HANDSHAKES or left <= 0 or ctx.is_cancelled():
            return None
        made += 1
        timeout = min(float(permit.params.get("timeout", 10.0)), left)
        try:
            return await s_client(openssl, permit.ip, port, sni, timeout, **options)
        except (TimeoutError, OSError) as exc:
            why = {"reason": f"{type(exc).__name__}: {exc}"[:200], "step": str(options)}
            observations.append(Observation(key="tls.inspect.untestable", value=why, port=port))
            return None

    first = await shake(protocol="no_tls1_3")
    report = first if first is not None and first.connected else None
    value: dict[str, Any]
    if report is not None:
        secure = report.secure_renegotiation
        if secure is not None:
            value = {"secure": secure, "protocol": report.protocol, "rfc": "RFC 5746"}
            observations.append(Observation(key="tls.renegotiation", value=value, port=port))
        observations.extend(_ecdh(report.temp_key, port))
        dhe = await shake(ciphers="kDHE:@SECLEVEL=0", protocol="tls1_2", status=False)
        if dhe is not None:
            key = dhe.temp_key if dhe.connected else None
            bits = key.bits if key is not None and key.kind == "DH" else None
            value = {
                "accepted": dhe.connected,
                "cipher": dhe.cipher,
                "bits": bits,
                "weak": bits is not None and bits < MIN_DH_BITS,
                "minimum_bits": MIN_DH_BITS,
                "profile": _PROFILE,
            }
            observations.append(Observation(key="tls.kex.dh", value=value, port=port))
    else:
        # No TLS 1.0-1.2 (or the first handshake failed): renegotiation and DHE do not apply;
        # the chain and OCSP come from a handshake of any version.
        if first is not None:
            why = {"reason": first.error or "no TLS 1.0-1.2 handshake", "step": "tls1.2"}
            observations.append(Observation(key="tls.inspect.partial", value=why, port=port))
        retry = await shake(protocol="any")
        report = retry if retry is not None and retry.connected else None
        if report is None:
            return made
        observations.extend(_ecdh(report.temp_key, port))
    if report.ocsp_stapled is not None:
        value = {"stapled": report.ocsp_stapled, "status": report.ocsp_status}
        observations.append(Observation(key="tls.ocsp", value=value, port=port))
    if report.chain:
        loop = asyncio.get_running_loop()
        observations.extend(
            await loop.run_in_executor(None, _chain_observation, report.chain, bundle, port)
        )
    return made
