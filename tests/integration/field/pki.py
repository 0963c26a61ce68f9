"""A private PKI for the field lab, made with the ``openssl`` command like an operator would.

* a root CA (``Lab Private Root CA``) and an intermediate CA it signs (``Lab Private
  Intermediate CA``): the object's own PKI, which the inspection's CA bundle names;
* a root nobody trusts (``Lab Unknown CA``): what an untrusted issuer looks like;
* leaves issued by any of them, and OCSP responses (``openssl ocsp`` acting as the responder
  for one request) for a web server to staple from a file.

Everything is written under one directory; nothing is installed into any system store.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

__all__ = ["Issuer", "Leaf", "PrivatePki", "ocsp_response"]

Issuer = Literal["root", "intermediate", "unknown"]
_SUBJECTS: dict[str, str] = {
    "root": "/CN=Lab Private Root CA/O=rio field lab",
    "intermediate": "/CN=Lab Private Intermediate CA/O=rio field lab",
    "unknown": "/CN=Lab Unknown CA/O=somebody else",
}
_CA_EXT = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
_TIMEOUT = 60


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise FileNotFoundError("openssl not found")
    return found


def _run(*args: str) -> None:
    subprocess.run([_openssl(), *args], check=True, capture_output=True, timeout=_TIMEOUT)


class Leaf:
    """A leaf certificate and its key (PEM files); ``chain`` is leaf + the issuers given."""

    def __init__(self, cert: Path, key: Path, issuer_cert: Path, issuer_key: Path) -> None:
        self.cert = cert
        self.key = key
        self.issuer_cert = issuer_cert
        self.issuer_key = issuer_key

    def chain_file(self, *extra: Path) -> Path:
        """The leaf followed by ``extra`` certificates, as one PEM file (what nginx serves)."""
        path = self.cert.with_name(self.cert.stem + "-chain.pem")
        path.write_bytes(self.cert.read_bytes() + b"".join(p.read_bytes() for p in extra))
        return path


class PrivatePki:
    """Root, intermediate and unknown CAs in ``directory``, made on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: set[str] = set()

    def ca(self, which: Issuer) -> tuple[Path, Path]:
        """(certificate, key) of a CA, making it (and the root an intermediate needs) first."""
        cert, key = self.directory / f"{which}-ca.crt", self.directory / f"{which}-ca.key"
        if which in self._made:
            return cert, key
        self.directory.mkdir(parents=True, exist_ok=True)
        subject = _SUBJECTS[which]
        if which == "intermediate":
            root_cert, root_key = self.ca("root")
            csr = self.directory / "intermediate.csr"
            _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                 "-out", str(csr), "-subj", subject)  # fmt: skip
            ext = self.directory / "intermediate.ext"
            ext.write_text(_CA_EXT.replace("CA:TRUE", "CA:TRUE,pathlen:0"))
            _run("x509", "-req", "-in", str(csr), "-CA", str(root_cert), "-CAkey", str(root_key),
                 "-set_serial", _serial(), "-days", "3650", "-sha256", "-extfile", str(ext),
                 "-out", str(cert))  # fmt: skip
        else:
            _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                 "-out", str(cert), "-subj", subject, "-days", "3650", "-sha256",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        self._made.add(which)
        return cert, key

    def bundle(self, path: Path, *also: Path) -> Path:
        """The object's CA bundle: its root and intermediate (and ``also``), one PEM file."""
        parts = [self.ca("root")[0], self.ca("intermediate")[0], *also]
        path.write_bytes(b"".join(p.read_bytes() for p in parts))
        return path

    def leaf(self, name: str, issuer: Issuer) -> Leaf:
        """A TLS server certificate for ``name`` (RSA 2048, SAN, serverAuth) from ``issuer``."""
        ca_cert, ca_key = self.ca(issuer)
        stem = self.directory / name
        key, csr, cert = (
            stem.with_suffix(".key"),
            stem.with_suffix(".csr"),
            stem.with_suffix(".crt"),
        )
        _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}")  # fmt: skip
        ext = stem.with_suffix(".ext")
        ext.write_text(
            f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        _run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-set_serial", _serial(), "-days", "365", "-sha256", "-extfile", str(ext),
             "-out", str(cert))  # fmt: skip
        return Leaf(cert=cert, key=key, issuer_cert=ca_cert, issuer_key=ca_key)


def _serial() -> str:
    return "0x" + secrets.token_hex(8)


def ocsp_response(cert: Path, issuer_cert: Path, issuer_key: Path, out: Path) -> Path:
    """A DER OCSP response saying ``cert`` is good, signed by its issuer, valid for 7 days.

    ``openssl ocsp`` answers one request from an index file in the ``openssl ca`` format.
    """
    directory = out.parent
    serial = subprocess.run(
        [_openssl(), "x509", "-in", str(cert), "-noout", "-serial"],
        check=True, capture_output=True, text=True, timeout=_TIMEOUT,
    ).stdout.strip().split("=", 1)[1]  # fmt: skip
    subject = subprocess.run(
        [_openssl(), "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "compat"],
        check=True, capture_output=True, text=True, timeout=_TIMEOUT,
    ).stdout.strip().split("=", 1)[1].strip()  # fmt: skip
    expiry = (datetime.now(UTC) + timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
    index = directory / f"{out.stem}.index"
    index.write_text(f"V\t{expiry}\t\t{serial}\tunknown\t{subject}\n")
    request = directory / f"{out.stem}.req"
    _run("ocsp", "-issuer", str(issuer_cert), "-cert", str(cert), "-no_nonce",
         "-reqout", str(request))  # fmt: skip
    _run("ocsp", "-index", str(index), "-CA", str(issuer_cert), "-rsigner", str(issuer_cert),
         "-rkey", str(issuer_key), "-reqin", str(request), "-respout", str(out),
         "-ndays", "7")  # fmt: skip
    return out
