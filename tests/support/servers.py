"""Loopback servers and certificates for probe tests.

* :class:`CertFactory` makes certificates with ``cryptography``: a test CA and leaves issued by it
  (valid, expired, not yet valid, wrong name, 1024-bit RSA, SHA-1 signed via the ``openssl`` CLI
  because ``cryptography`` refuses SHA-1 signatures), and CA-less self-signed ones.
* :class:`LoopbackHttpServer` is a threaded HTTP or HTTPS server whose answers (status, headers,
  cookies, redirect, banner) come from an :class:`HttpBehaviour`; :data:`WELL_CONFIGURED` and
  :data:`POORLY_CONFIGURED` are the two reference sites.
* :class:`TcpListeners` holds a set of open ports; every server records each accepted connection
  (:class:`Connection`: peer and local address) so tests can prove where a probe connected.

Everything binds loopback only (a non-loopback host is refused), port 0 by default, and stops
when its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "POORLY_CONFIGURED",
    "WELL_CONFIGURED",
    "CertFactory",
    "CertPair",
    "Connection",
    "ConnectionLog",
    "HttpBehaviour",
    "LoopbackHttpServer",
    "Request",
    "TcpListeners",
    "closed_port",
    "server_tls_context",
]

_JOIN_SECONDS = 5.0
_HANDLER_TIMEOUT = 5.0
_POLL_SECONDS = 0.05

KeyKind = Literal["ec256", "rsa2048", "rsa1024"]
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test server host {host!r} is not a loopback address")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


# -- connections ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Connection:
    """One accepted connection: who connected (peer) and to which address and port (local)."""

    peer: tuple[str, int]
    local: tuple[str, int]


@dataclass(slots=True)
class ConnectionLog:
    """Thread-safe list of accepted connections."""

    _items: list[Connection] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, sock: socket.socket, peer: Any) -> None:
        local = sock.getsockname()
        with self._lock:
            self._items.append(
                Connection(peer=(str(peer[0]), int(peer[1])), local=(str(local[0]), int(local[1])))
            )

    def all(self) -> list[Connection]:
        with self._lock:
            return list(self._items)


@dataclass(frozen=True, kw_only=True, slots=True)
class Request:
    """One HTTP request as the server saw it."""

    method: str
    path: str
    host: str | None
    user_agent: str | None


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CertPair:
    """A certificate and its key, as PEM files the ``ssl`` module can load."""

    cert_path: Path
    key_path: Path
    der: bytes


def _key(kind: KeyKind) -> _PrivateKey:
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(
        public_exponent=65537, key_size=2048 if kind == "rsa2048" else 1024
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertFactory:
    """Make certificates into ``directory``; one test CA per factory, made on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ca: tuple[_PrivateKey, x509.Certificate, Path, Path] | None = None
        self._count = 0

    def _write(self, stem: str, cert: x509.Certificate, key: _PrivateKey) -> CertPair:
        self._count += 1
        cert_path = self.directory / f"{self._count:02d}-{stem}.crt"
        key_path = self.directory / f"{self._count:02d}-{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(_key_pem(key))
        return CertPair(
            cert_path=cert_path,
            key_path=key_path,
            der=cert.public_bytes(serialization.Encoding.DER),
        )

    def _ca_material(self) -> tuple[_PrivateKey, x509.Certificate, Path, Path]:
        if self._ca is None:
            key = _key("ec256")
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(_name("rio test CA"))
                .issuer_name(_name("rio test CA"))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(key, hashes.SHA256())
            )
            pair = self._write("ca", cert, key)
            self._ca = (key, cert, pair.cert_path, pair.key_path)
        return self._ca

    @property
    def ca_path(self) -> Path:
        """PEM file of the test CA (for clients that want to verify)."""
        return self._ca_material()[2]

    @property
    def ca_key_path(self) -> Path:
        """PEM file of the test CA's private key (to sign OCSP responses for stapling)."""
        return self._ca_material()[3]

    def _builder(
        self,
        names: tuple[str, ...],
        not_before: dt.datetime,
        not_after: dt.datetime,
        key: _PrivateKey,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        )

    def issued(
        self,
        *names: str,
        valid_days: tuple[float, float] = (-1, 365),
        key: KeyKind = "ec256",
    ) -> CertPair:
        """A leaf for ``names`` (first is the CN) issued by the test CA.

        Args:
            names: DNS names for the SAN (wildcards allowed).
            valid_days: not-before and not-after, in days from now (negative = past).
            key: the leaf's key type; ``rsa1024`` is a weak key.
        """
        ca_key, ca_cert, _, _ = self._ca_material()
        now = dt.datetime.now(dt.UTC)
        leaf_key = _key(key)
        cert = (
            self._builder(
                names,
                now + dt.timedelta(days=valid_days[0]),
                now + dt.timedelta(days=valid_days[1]),
                leaf_key,
            )
            .issuer_name(ca_cert.subject)
            .sign(ca_key, hashes.SHA256())
        )
        return self._write(names[0].replace("*", "star"), cert, leaf_key)

    def self_signed(self, *names: str, valid_days: tuple[float, float] = (-1, 365)) -> CertPair:
        """A CA-less certificate for ``names``, signed by its own key."""
        now = dt.datetime.now(dt.UTC)
        key = _key("ec256")
        cert = (
            self._builder(
                names,
                now + dt.timedelta(days=valid_days[0]),
                now + dt.timedelta(days=valid_days[1]),
                key,
            )
            .issuer_name(_name(names[0]))
            .sign(key, hashes.SHA256())
        )
        return self._write(f"self-{names[0]}", cert, key)

    def sha1_issued(self, name: str) -> CertPair:
        """A leaf for ``name`` issued by the test CA with a SHA-1 signature (needs ``openssl``).

        Raises:
            FileNotFoundError: the ``openssl`` command is not installed.
        """
        openssl = shutil.which("openssl")
        if openssl is None:
            raise FileNotFoundError("openssl command not found (needed for SHA-1 certificates)")
        _, _, ca_cert_path, ca_key_path = self._ca_material()
        leaf_key = _key("rsa2048")
        self._count += 1
        stem = self.directory / f"{self._count:02d}-sha1-{name}"
        key_path, csr_path = stem.with_suffix(".key"), stem.with_suffix(".csr")
        ext_path, cert_path = stem.with_suffix(".ext"), stem.with_suffix(".crt")
        key_path.write_bytes(_key_pem(leaf_key))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name(name))
            .sign(leaf_key, hashes.SHA256())
        )
        csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        ext_path.write_text(f"subjectAltName=DNS:{name}\n")
        subprocess.run(
            [
                openssl,
                "x509",
                "-req",
                "-in",
                str(csr_path),
                "-CA",
                str(ca_cert_path),
                "-CAkey",
                str(ca_key_path),
                "-CAcreateserial",
                "-sha1",
                "-days",
                "90",
                "-extfile",
                str(ext_path),
                "-out",
                str(cert_path),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return CertPair(
            cert_path=cert_path,
            key_path=key_path,
            der=cert.public_bytes(serialization.Encoding.DER),
        )


def server_tls_context(pair: CertPair, *, legacy: bool = False) -> ssl.SSLContext:
    """A server context serving ``pair``; ``legacy`` also accepts TLS 1.0 and 1.1.

    ``SECLEVEL=0`` lets the server load weak keys and SHA-1 certificates, which is the point.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # legacy servers are deliberate
        context.minimum_version = ssl.TLSVersion.TLSv1 if legacy else ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pair.cert_path, pair.key_path)
    return context


# -- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpBehaviour:
    """What a :class:`LoopbackHttpServer` answers to every request."""

    status: int = 200
    banner: str = "rio-test"
    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[str, ...] = ()
    location: str | None = None
    body: bytes = b"<html><body>rio test</body></html>\n"


WELL_CONFIGURED = HttpBehaviour(
    headers=(
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
        ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
    ),
    cookies=("session=abc123; Path=/; Secure; HttpOnly; SameSite=Lax",),
)
POORLY_CONFIGURED = HttpBehaviour(
    banner="Apache/2.4.41 (Ubuntu)",
    headers=(("X-Powered-By", "PHP/7.2.24"),),
    cookies=("session=abc123; Path=/",),
)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = _HANDLER_TIMEOUT
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return self.server.behaviour.banner

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _answer(self, with_body: bool) -> None:
        behaviour = self.server.behaviour
        self.server.requests.append(
            Request(
                method=self.command,
                path=self.path,
                host=self.headers.get("Host"),
                user_agent=self.headers.get("User-Agent"),
            )
        )
        self.send_response(behaviour.status)
        for name, value in behaviour.headers:
            self.send_header(name, value)
        for cookie in behaviour.cookies:
            self.send_header("Set-Cookie", cookie)
        if behaviour.location is not None:
            self.send_header("Location", behaviour.location)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(behaviour.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(behaviour.body)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self, host: str, behaviour: HttpBehaviour, tls: ssl.SSLContext | None, log: ConnectionLog
    ) -> None:
        self.address_family = _family(host)
        self.behaviour = behaviour
        self.tls = tls
        self.log = log
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        super().__init__((host, 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, peer = self.socket.accept()
        self.log.record(sock, peer)
        if self.tls is not None:
            # Handshake lazily in the handler thread, so a failing handshake never stalls accept.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, peer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Handshake failures (legacy probes, closed connections) are expected; keep them quiet.
        error = sys.exc_info()[1]
        if error is not None:
            self.errors.append(error)


class LoopbackHttpServer:
    """A threaded HTTP (or HTTPS, given ``tls``) server on loopback answering from ``behaviour``.

    Attributes:
        host, port: where it listens.
        connections: every accepted connection (:class:`Connection`).
        requests: every request served (:class:`Request`).
    """

    def __init__(
        self,
        behaviour: HttpBehaviour = WELL_CONFIGURED,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        _require_loopback(host)
        self._log = ConnectionLog()
        self._server = _HttpServer(host, behaviour, tls, self._log)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def connections(self) -> list[Connection]:
        return self._log.all()

    @property
    def requests(self) -> list[Request]:
        return list(self._server.requests)

    def __enter__(self) -> LoopbackHttpServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_SECONDS},
            name=f"http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_SECONDS)


# -- raw TCP ----------------------------------------------------------------------------------


class TcpListeners:
    """``count`` listening sockets on loopback that accept and close; connections are recorded."""

    def __init__(self, count: int, *, host: str = "127.0.0.1") -> None:
        _require_loopback(host)
        self.host = host
        self._log = ConnectionLog()
        self._sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sock.bind((host, 0))
            sock.listen(16)
            sock.setblocking(False)
            self._sockets.append(sock)
        self.ports: tuple[int, ...] = tuple(int(s.getsockname()[1]) for s in self._sockets)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connections(self) -> list[Connection]:
        return self._log.all()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self._sockets:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=_POLL_SECONDS):
                    listener = key.fileobj
                    assert isinstance(listener, socket.socket)
                    with contextlib.suppress(BlockingIOError, OSError):
                        conn, peer = listener.accept()
                        self._log.record(conn, peer)
                        conn.close()

    def __enter__(self) -> TcpListeners:
        self._thread = threading.Thread(target=self._serve, name="tcp-listeners", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_SECONDS)
        for sock in self._sockets:
            sock.close()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port with nothing listening on ``host`` (bound once by us, then released)."""
    _require_loopback(host)
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
