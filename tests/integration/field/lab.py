"""The field lab: real Debian servers on loopback, on their standard ports, with planted flaws.

rio's own farm (``orchestrator/demo/farm.py``) runs servers rio wrote itself on ports it chose;
the field runs nginx on 80 and 443, BIND on 53, redis on 6379. This lab starts those programs,
from their Debian packages, each on its own loopback address, so a whole announced inspection
can be run over them exactly as the README tells a user to.

API (everything a test or another helper needs):

* :func:`claim_block` picks a ``127.A.B.0/24`` block for this test session and holds a lock file
  on it, so two test sessions on one machine never bind the same addresses. Servers sit at fixed
  host numbers inside the block (:attr:`Server.host`).
* :data:`SERVERS` lists every server, one :class:`Server` each: its binary, address, ports,
  the names it answers to in the lab's zone, and a ``configure`` function that writes its
  configuration into its own directory and returns the argv. **To add a server, add one entry.**
* :data:`FLAWS` lists every planted flaw as data (:class:`Flaw`): the server, the port, where
  the finding must be reported (``target`` as announced), and the catalogue ``rule`` that claims
  to detect it (``None`` while rio's catalogue has no check for it: those are the known gaps,
  each naming the issue that adds the check). **To plant a flaw, add its config to the server's
  ``configure`` and one entry here.**
* :class:`Lab` (a context manager) starts the chosen servers, waits (bounded) until each one
  answers on every port, and stops them all, killing what does not stop; ``lab.ip(name)``,
  ``lab.scope_text()`` and ``lab.policy_text()`` give the addresses and the scope and policy
  files that announce exactly these servers.
* ``lab.log(server)`` reads what a server logged (nginx's access log names each request's
  User-Agent, From and Host), for assertions about what a defender sees.
* :func:`unavailable` says why the lab cannot run here (a missing binary, no root for ports
  below 1024), or ``None``.

Traffic: every server binds only its own address in the claimed block; BIND serves a local root
zone, so its open recursion never reaches past the lab. BIND matches ``listen-on`` against
interface addresses, so its one address is added to ``lo`` as a /32 while the lab runs and
removed afterwards (hence root); nothing else in the system is changed or left running.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.integration.field.pki import PrivatePki, ocsp_response
from tests.support.servers import CertFactory, CertPair

__all__ = [
    "DOMAIN",
    "FLAWS",
    "SERVERS",
    "Block",
    "Flaw",
    "Lab",
    "LabContext",
    "Server",
    "claim_block",
    "unavailable",
]

#: the lab's DNS zone, served by its BIND server
DOMAIN = "lab.test"
_START_SECONDS = 20.0
_STOP_SECONDS = 5.0
_POLL_SECONDS = 0.05
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


# -- the address block --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Block:
    """A claimed ``127.A.B.0/24``; :meth:`release` (or process exit) frees it."""

    prefix: str
    """``127.A.B``"""
    lock: IO[bytes] = field(repr=False, compare=False)

    def ip(self, host: int) -> str:
        return f"{self.prefix}.{host}"

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


def claim_block(*, tries: int = 50, rng: random.Random | None = None) -> Block:
    """Claim a random ``127.A.B.0/24`` (A in 100..249) that no other test session holds.

    The claim is an exclusive ``flock`` on a file in the temp directory, held until
    :meth:`Block.release` or process exit. 127.0.x.x (demo, CLI tests) and 127.64.0.0/15 (bench)
    are never chosen.

    Raises:
        RuntimeError: no free block within ``tries`` attempts.
    """
    chooser = rng if rng is not None else random.SystemRandom()
    for _ in range(tries):
        prefix = f"127.{chooser.randint(100, 249)}.{chooser.randint(0, 255)}"
        path = Path(tempfile.gettempdir()) / f"rio-field-lab-{prefix}.lock"
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        return Block(prefix=prefix, lock=handle)
    raise RuntimeError(f"no free 127.x.y.0/24 lab block after {tries} tries")


# -- servers and flaws as data ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class LabContext:
    """What a server's ``configure`` gets: its directory, the lab's addresses and certificates."""

    directory: Path
    block: Block
    certs: CertFactory
    root: bool
    pki: PrivatePki
    """the object's private PKI (root, intermediate) and an unknown CA, made with openssl"""
    scratch: list[Path] = field(default_factory=list)
    """directories outside the lab's private tree (for servers whose own user must reach
    them); the lab removes them when it stops"""

    def ip(self, server: str) -> str:
        return self.block.ip(server_named(server).host)


@dataclass(frozen=True, kw_only=True, slots=True)
class Server:
    """One real server of the lab.

    Attributes:
        name: unique name, used by :class:`Flaw` and :meth:`Lab.ip`.
        binary: the program (looked up on PATH and in the sbin directories).
        package: the Debian package that ships it (for skip messages and ``.ci/run``).
        host: host number inside the claimed block.
        ports: TCP ports it listens on; the lab waits until each accepts a connection.
        names: names under :data:`DOMAIN` that resolve to it in the lab's zone.
        configure: writes the configuration into ``ctx.directory``, returns the argv (the
            binary first, as found by :func:`_which`). The program must stay in the
            foreground and must not daemonise.
        interface_address: the program binds only interface addresses (BIND): its address is
            added to ``lo`` while it runs.
    """

    name: str
    binary: str
    package: str
    host: int
    ports: tuple[int, ...]
    configure: Callable[[LabContext, str], list[str]]
    names: tuple[str, ...] = ()
    interface_address: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Flaw:
    """One planted flaw.

    Attributes:
        id: unique, stable name (``nginx-weak:443:no-hsts``).
        server: the :class:`Server` it is planted on.
        port: the port it is seen on (``None`` for zone-level DNS facts).
        target: where rio must report it: ``"ip"`` (the server's address as announced),
            ``"host:NAME"`` or ``"domain:NAME"``.
        rule: the catalogue rule that claims to detect it, or ``None`` (a known gap).
        gap: for ``rule=None``, the issue that adds the check.
        what: one line for a person.
    """

    id: str
    server: str
    port: int | None
    target: str
    rule: str | None
    what: str
    gap: str | None = None


def _which(binary: str) -> str | None:
    found = shutil.which(binary)
    if found is not None:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _binary(binary: str) -> str:
    found = _which(binary)
    if found is None:
        raise FileNotFoundError(f"{binary} not found")
    return found


# nginx ----------------------------------------------------------------------------------------

_NGINX_COMMON = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
{user}
events {{ worker_connections {connections}; }}
http {{
  log_format {log_name} '{log_format}';
  access_log {d}/access.log {log_name};
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
{body}
}}
"""


def nginx_conf(
    d: Path, *, log_name: str, log_format: str, body: str, user: str = "", connections: int = 64
) -> str:
    """An nginx.conf that keeps everything in ``d`` (pid, logs, temp folders), in the foreground.

    ``body`` goes inside ``http { }`` (indented here); each request is logged to
    ``d/access.log`` in ``log_format``. Shared by the field lab and ``bench/nginx.py``.
    """
    return _NGINX_COMMON.format(
        d=d,
        user=user,
        connections=connections,
        log_name=log_name,
        log_format=log_format,
        body=textwrap.indent(body, "  "),
    )


def nginx_argv(d: Path) -> list[str]:
    """The command that runs nginx on ``d/nginx.conf`` (see :func:`nginx_conf`)."""
    return [_binary("nginx"), "-e", str(d / "error.log"), "-p", str(d), "-c", str(d / "nginx.conf")]


# What a defender reads: who connected, as whom (User-Agent, From), for which name.
_LAB_LOG = '$remote_addr "$http_user_agent" "$http_from" "$host" "$request" $status'


def _nginx(ctx: LabContext, body: str) -> list[str]:
    d = ctx.directory
    user = "user nobody nogroup;" if ctx.root else ""
    conf = nginx_conf(
        d, log_name="lab", log_format=_LAB_LOG, body="default_type text/html;\n" + body, user=user
    )
    (d / "nginx.conf").write_text(conf)
    return nginx_argv(d)


#: where Debian's nginx-common ships the stock "Welcome to nginx!" page
_NGINX_DEFAULT_ROOT = "/usr/share/nginx/html"


def _nginx_weak(ctx: LabContext, ip: str) -> list[str]:
    # Self-signed certificate, version banner, no security headers, no redirect to HTTPS,
    # a session cookie without Secure or HttpOnly.
    pair = ctx.certs.self_signed(f"www.{DOMAIN}")
    return _nginx(
        ctx,
        f"""\
server_tokens on;
server {{
  listen {ip}:80 default_server;
  listen {ip}:443 ssl default_server;
  server_name www.{DOMAIN};
  ssl_certificate {pair.cert_path};
  ssl_certificate_key {pair.key_path};
  location / {{
    add_header Set-Cookie "session=lab; Path=/";
    # Planted: the package's own default page ("Welcome to nginx!").
    root {_NGINX_DEFAULT_ROOT};
    index index.html;
  }}
  # Planted: repository metadata, an env file with secrets, a listed backup directory with a
  # database dump, the status page.
  location = /.git/HEAD {{ return 200 "ref: refs/heads/main\\n"; }}
  location = /.env {{ return 200 "APP_ENV=production\\nDB_PASSWORD=lab-secret-not-for-use\\n"; }}
  # (nginx's workers run as nobody, who cannot read the lab's private directory: the listed
  # directory is the package's own, world-readable one.)
  location /backup/ {{ alias {_NGINX_DEFAULT_ROOT}/; index _none_; autoindex on; }}
  location = /nginx_status {{ stub_status; }}
}}
""",
    )


_INTERMEDIATE = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
)  # fmt: skip


def _nginx_sound(ctx: LabContext, ip: str) -> list[str]:
    # What a careful operator serves: CA-issued EC certificate for the name, TLS 1.2+, HTTP
    # redirected to HTTPS, HSTS, CSP with frame-ancestors, nosniff, X-Frame-Options, no version,
    # a cookie with Secure, HttpOnly and SameSite.
    pair = ctx.certs.issued(f"secure.{DOMAIN}", valid_days=(-1, 365))
    # An OCSP response signed by the CA, stapled from a file (no responder to reach).
    staple = ocsp_response(
        pair.cert_path, ctx.certs.ca_path, ctx.certs.ca_key_path, ctx.directory / "ocsp.der"
    )
    headers = """\
add_header Strict-Transport-Security "max-age=31536000" always;
add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'none'" always;
add_header X-Content-Type-Options nosniff always;
add_header X-Frame-Options DENY always;
add_header Set-Cookie "session=lab; Path=/; Secure; HttpOnly; SameSite=Strict" always;
"""
    return _nginx(
        ctx,
        f"""\
server_tokens off;
server {{
  listen {ip}:80 default_server;
  server_name secure.{DOMAIN};
  return 301 https://secure.{DOMAIN}$request_uri;
}}
server {{
  listen {ip}:443 ssl default_server;
  server_name secure.{DOMAIN};
  ssl_certificate {pair.cert_path};
  ssl_certificate_key {pair.key_path};
  ssl_protocols TLSv1.2 TLSv1.3;
  # Mozilla intermediate (v5.7) suites; nginx's own default would add static-RSA CBC ones.
  ssl_ciphers {":".join(_INTERMEDIATE)};
  ssl_stapling on;
  ssl_stapling_file {staple};
{textwrap.indent(headers, "  ")}
  location / {{ return 200 "<html><title>sound</title>sound site</html>\\n"; }}
}}
""",
    )


def _nginx_tls(
    ctx: LabContext,
    ip: str,
    name: str,
    cert: Path,
    key: Path,
    *,
    extra: str = "",
    ciphers: str = ":".join(_INTERMEDIATE),
) -> list[str]:
    """nginx serving ``cert`` (the whole file: leaf and whatever chain it holds) on 443."""
    return _nginx(
        ctx,
        f"""\
server_tokens off;
server {{
  listen {ip}:443 ssl default_server;
  server_name {name};
  ssl_certificate {cert};
  ssl_certificate_key {key};
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ciphers {ciphers};
{textwrap.indent(extra, "  ")}
  location / {{ return 200 "<html><title>{name}</title></html>\\n"; }}
}}
""",
    )


def _nginx_private_ca(ctx: LabContext, ip: str) -> list[str]:
    # The object's private root issued the leaf: untrusted against the system store, trusted
    # with the inspection's CA bundle (see Lab.ca_bundle). Not a flaw under the lab's policy.
    leaf = ctx.pki.leaf(f"private.{DOMAIN}", "root")
    return _nginx_tls(ctx, ip, f"private.{DOMAIN}", leaf.cert, leaf.key)


def _nginx_incomplete_chain(ctx: LabContext, ip: str) -> list[str]:
    # Planted: the leaf comes from the private intermediate, which nginx does not send.
    leaf = ctx.pki.leaf(f"chain.{DOMAIN}", "intermediate")
    return _nginx_tls(ctx, ip, f"chain.{DOMAIN}", leaf.cert, leaf.key)


def _nginx_unknown_ca(ctx: LabContext, ip: str) -> list[str]:
    # Planted: leaf and root of a CA that neither the system store nor the bundle trusts.
    leaf = ctx.pki.leaf(f"unknown.{DOMAIN}", "unknown")
    chain = leaf.chain_file(leaf.issuer_cert)
    return _nginx_tls(ctx, ip, f"unknown.{DOMAIN}", chain, leaf.key)


def _nginx_weak_dh(ctx: LabContext, ip: str) -> list[str]:
    # Planted: DHE suites with a 1024-bit group (SECLEVEL=0: OpenSSL 3 refuses to load it else).
    dh = ctx.directory / "dh1024.pem"
    subprocess.run(
        [_binary("openssl"), "dhparam", "-dsaparam", "-out", str(dh), "1024"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    pair = ctx.certs.issued(f"dh.{DOMAIN}", key="rsa2048")
    suites = "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0"
    return _nginx_tls(
        ctx, ip, f"dh.{DOMAIN}", pair.cert_path, pair.key_path,
        extra=f"ssl_dhparam {dh};\n", ciphers=suites,
    )  # fmt: skip


# openssl s_server -----------------------------------------------------------------------------

_Configure = Callable[[LabContext, str], list[str]]


def _s_server(pair: CertPair, *, legacy: bool = False, weak_suites: bool = False) -> _Configure:
    def configure(ctx: LabContext, ip: str) -> list[str]:
        del ctx
        argv = [_binary("openssl"), "s_server", "-quiet", "-accept", f"{ip}:443"]
        argv += ["-cert", str(pair.cert_path), "-key", str(pair.key_path), "-www"]
        if weak_suites:
            # Planted: an anonymous suite, static-RSA CBC-SHA1, one sound suite; no TLS 1.3.
            suites = "AECDH-AES128-SHA:AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0"
            return [*argv, "-cipher", suites, "-max_protocol", "TLSv1.2"]
        # SECLEVEL=0 lets OpenSSL 3 load a 1024-bit key or a SHA-1 certificate at all.
        argv += ["-cipher", "DEFAULT:@SECLEVEL=0"]
        # Only the legacy variant accepts TLS 1.0 and 1.1; the others start at TLS 1.2.
        argv += ["-min_protocol", "TLSv1" if legacy else "TLSv1.2"]
        return argv

    return configure


def _tls(
    make: Callable[[CertFactory], CertPair], *, legacy: bool = False, weak_suites: bool = False
) -> _Configure:
    def configure(ctx: LabContext, ip: str) -> list[str]:
        return _s_server(make(ctx.certs), legacy=legacy, weak_suites=weak_suites)(ctx, ip)

    return configure


# BIND -----------------------------------------------------------------------------------------


def _zone_records(ctx: LabContext) -> str:
    lines = [f"ns IN A {ctx.ip('dns')}"]
    for server in SERVERS:
        for name in server.names:
            lines.append(f"{name} IN A {ctx.block.ip(server.host)}")
    return "\n".join(lines)


#: zones beside the lab's own, per BIND server: name -> (planted records, signing)
#: signing: None (unsigned), "expired" (RRSIGs that ended yesterday), "valid"
_ZONES: dict[str, dict[str, tuple[str, str | None]]] = {
    "dns": {
        # Planted: SPF ends in ~all, DMARC only monitors, no CAA.
        "lax.test": ('@ IN TXT "v=spf1 ip4:192.0.2.0/24 ~all"\n'
                     '_dmarc IN TXT "v=DMARC1; p=none; rua=mailto:d@lax.test"\n', None),
        # Planted: signed, but every signature expired yesterday.
        "bogus.test": ('@ IN TXT "v=spf1 -all"\n', "expired"),
    },
    "dns-sound": {
        "sound.test": ('@ IN TXT "v=spf1 -all"\n_dmarc IN TXT "v=DMARC1; p=reject"\n'
                       '@ IN CAA 0 issue "ca.example"\n', "valid"),
    },
}  # fmt: skip


def _sign(ctx: LabContext, zone: str, path: Path, signing: str) -> Path:
    """Sign ``path`` with a fresh ECDSA key; ``expired`` makes signatures that ended yesterday."""
    d = ctx.directory
    keygen = subprocess.run(
        [_binary("dnssec-keygen"), "-q", "-K", str(d), "-a", "ECDSAP256SHA256", "-f", "KSK", zone],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    key = keygen.stdout.strip()
    path.write_text(path.read_text() + f"$INCLUDE {d / key}.key\n")
    now = datetime.now(UTC)
    stamp = "%Y%m%d%H%M%S"
    if signing == "expired":
        start, end = now - timedelta(days=30), now - timedelta(days=1)
    else:
        start, end = now - timedelta(hours=1), now + timedelta(days=30)
    signed = path.with_suffix(".signed")
    subprocess.run(
        # -P: skip the post-signing check, which (rightly) fails on expired signatures.
        [_binary("dnssec-signzone"), "-q", "-P", "-K", str(d), "-d", str(d), "-o", zone, "-z",
         "-s", start.strftime(stamp), "-e", end.strftime(stamp), "-f", str(signed), str(path),
         f"{d / key}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return signed


def _zone_file(ctx: LabContext, zone: str, ns_ip: str, body: str) -> Path:
    soa = f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300"
    path = ctx.directory / f"{zone}.db"
    path.write_text(f"$TTL 300\n{soa}\n@ IN NS ns.{zone}.\nns IN A {ns_ip}\n{body}")
    return path


def _bind_conf(ctx: LabContext, ip: str, options: str, zones: dict[str, Path]) -> list[str]:
    d = ctx.directory
    soa = f"@ IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 300"
    (d / "root.db").write_text(f"$TTL 300\n{soa}\n@ IN NS ns.{DOMAIN}.\nns.{DOMAIN}. IN A {ip}\n")
    zone_lines = "".join(f'zone "{z}" {{ type primary; file "{f}"; }};\n' for z, f in zones.items())
    (d / "named.conf").write_text(f"""\
options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  listen-on port 53 {{ {ip}; }};
  listen-on-v6 {{ none; }};
  query-source address {ip};
{options}
  notify no;
  dnssec-validation no;
  empty-zones-enable no;
  max-cache-size 16m;
}};
controls {{ }};
zone "." {{ type primary; file "{d}/root.db"; }};
{zone_lines}""")
    return [_binary("named"), "-g", "-4", "-c", str(d / "named.conf")]


def _extra_zones(ctx: LabContext, server: str, ip: str) -> dict[str, Path]:
    zones = {}
    for zone, (body, signing) in _ZONES.get(server, {}).items():
        path = _zone_file(ctx, zone, ip, body)
        zones[zone] = path if signing is None else _sign(ctx, zone, path, signing)
    return zones


def _bind(ctx: LabContext, ip: str) -> list[str]:
    # Planted: open recursion for anyone, AXFR to anyone, no SPF, no DMARC, unsigned zone,
    # the version in version.bind; lax.test and bogus.test (see _ZONES).
    # The root zone is served locally, so recursion answers NXDOMAIN for anything outside the
    # lab instead of asking the real root servers; rndc's control channel is off (it would
    # take 127.0.0.1:953 from the machine).
    d = ctx.directory
    soa = f"@ IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 300"
    (d / f"{DOMAIN}.db").write_text(
        f"$TTL 300\n{soa}\n@ IN NS ns.{DOMAIN}.\n{_zone_records(ctx)}\n"
    )
    zones = {DOMAIN: d / f"{DOMAIN}.db", **_extra_zones(ctx, "dns", ip)}
    options = "  recursion yes;\n  allow-recursion { any; };\n  allow-query { any; };\n"
    options += "  allow-transfer { any; };\n"
    return _bind_conf(ctx, ip, options, zones)


def _bind_sound(ctx: LabContext, ip: str) -> list[str]:
    # No recursion, no transfers, no version; sound.test is signed and has SPF -all,
    # DMARC p=reject and CAA.
    options = "  recursion no;\n  allow-transfer { none; };\n  version none;\n"
    return _bind_conf(ctx, ip, options, _extra_zones(ctx, "dns-sound", ip))


# the rest -------------------------------------------------------------------------------------


def _redis(ctx: LabContext, ip: str) -> list[str]:
    # Planted: no password, protected mode off, reachable on the standard port.
    argv = [_binary("redis-server"), "--bind", ip, "--port", "6379", "--protected-mode", "no"]
    return [*argv, "--save", "", "--appendonly", "no", "--dir", str(ctx.directory)]


def _redis_sound(ctx: LabContext, ip: str) -> list[str]:
    # A password (the port stays reachable: that finding remains, rightly).
    return [*_redis(ctx, ip), "--requirepass", "lab-secret-not-for-use"]


def _memcached(ctx: LabContext, ip: str) -> list[str]:
    # Planted: no SASL, reachable on the standard port (TCP; UDP off).
    argv = [_binary("memcached"), "-l", ip, "-p", "11211", "-U", "0", "-m", "16"]
    return argv + (["-u", "nobody"] if ctx.root else [])


def _memcached_sound(ctx: LabContext, ip: str) -> list[str]:
    # ASCII-protocol authentication from a file: unauthenticated commands are refused.
    # memcached reads the file after dropping to its user, and the test directories are
    # private to root: so this one keeps root's identity (it binds loopback only).
    auth = ctx.directory / "auth"
    auth.write_text("lab:lab-secret-not-for-use\n")
    argv = [_binary("memcached"), "-l", ip, "-p", "11211", "-U", "0", "-m", "16"]
    return argv + (["-u", "root"] if ctx.root else []) + ["-Y", str(auth)]


#: planted on the weak sshd: legacy algorithms appended to OpenSSH's defaults
_SSHD_LEGACY = """\
KexAlgorithms +diffie-hellman-group1-sha1,diffie-hellman-group14-sha1
HostKeyAlgorithms +ssh-rsa
Ciphers +aes128-cbc,3des-cbc
MACs +hmac-md5,hmac-sha1-96
"""
#: the sound sshd: OpenSSH's default algorithms, keys only, no distribution banner suffix
_SSHD_SOUND = """\
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
DebianBanner no
"""


def _sshd(ctx: LabContext, ip: str) -> list[str]:
    # Planted: password authentication and root login allowed, legacy algorithms offered.
    return _sshd_with(ctx, ip, "PasswordAuthentication yes\nPermitRootLogin yes\n" + _SSHD_LEGACY)


def _sshd_sound(ctx: LabContext, ip: str) -> list[str]:
    return _sshd_with(ctx, ip, _SSHD_SOUND)


def _sshd_with(ctx: LabContext, ip: str, settings: str) -> list[str]:
    d = ctx.directory
    keys = []
    for kind in ("ed25519", "rsa"):  # an RSA key, so that ssh-rsa can be offered at all
        key = d / f"ssh_host_{kind}_key"
        subprocess.run(
            [_binary("ssh-keygen"), "-q", "-t", kind, "-N", "", "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        keys.append(f"HostKey {key}")
    (d / "sshd_config").write_text(
        f"ListenAddress {ip}:22\n"
        + "\n".join(keys)
        + f"\nPidFile {d}/sshd.pid\nUsePAM no\n"
        + settings
    )
    # sshd insists on its privilege-separation directory; Debian's is /run/sshd.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return [_binary("sshd"), "-D", "-e", "-f", str(d / "sshd_config")]


def _vsftpd(ctx: LabContext, ip: str) -> list[str]:
    # Planted: plain FTP on 21 with anonymous login, the version in the greeting.
    return _vsftpd_with(ctx, ip, "anonymous_enable=YES\nlocal_enable=NO\n")


def _vsftpd_sound(ctx: LabContext, ip: str) -> list[str]:
    # No anonymous login (accounts only; vsftpd refuses to start with neither), a neutral
    # greeting. Plain FTP on 21 stays a finding, rightly.
    settings = "anonymous_enable=NO\nlocal_enable=YES\nftpd_banner=FTP service ready.\n"
    return _vsftpd_with(ctx, ip, settings)


def _vsftpd_with(ctx: LabContext, ip: str, settings: str) -> list[str]:
    d = ctx.directory
    for sub in ("empty", "pub"):
        (d / sub).mkdir(mode=0o755, exist_ok=True)
    (d / "vsftpd.conf").write_text(
        f"""\
listen=YES
listen_ipv6=NO
listen_address={ip}
listen_port=21
background=NO
write_enable=NO
anon_root={d}/pub
secure_chroot_dir={d}/empty
pasv_address={ip}
pasv_min_port=40000
pasv_max_port=40009
xferlog_enable=NO
vsftpd_log_file={d}/vsftpd.log
seccomp_sandbox=NO
"""
        + settings
    )
    return [_binary("vsftpd"), str(d / "vsftpd.conf")]


#: the Debian package's system user, which exim switches to for logging and receiving
_EXIM_USER = "Debian-exim"
_EXIM_COMMON = """\
keep_environment =
primary_hostname = mail.{domain}
spool_directory = {d}/spool
log_file_path = {d}/log/%s.log
pid_file_path = {d}/exim.pid
exim_user = {user}
exim_group = {user}
tls_certificate = {d}/tls.crt
tls_privatekey = {d}/tls.key
# Nothing is ever accepted: no relay, no local delivery (no routers, no transports).
acl_smtp_rcpt = acl_check_rcpt
{settings}
begin acl
acl_check_rcpt:
  deny message = no mail in the lab
"""


def _exim(ctx: LabContext, ip: str, settings: str) -> list[str]:
    # exim logs and receives as its own user, who cannot enter the lab's root-only tree: its
    # spool, logs and TLS files live in a scratch directory of its own (removed at stop).
    # The configuration stays root's (exim refuses -C files others could write).
    user = pwd.getpwnam(_EXIM_USER)
    d = Path(tempfile.mkdtemp(prefix=f"rio-field-lab-{ctx.block.prefix}-exim-"))
    ctx.scratch.append(d)
    pair = ctx.certs.issued(f"mail.{DOMAIN}", key="rsa2048")
    (d / "spool").mkdir()
    (d / "log").mkdir()
    shutil.copyfile(pair.cert_path, d / "tls.crt")
    shutil.copyfile(pair.key_path, d / "tls.key")
    for path in (d, d / "spool", d / "log", d / "tls.crt", d / "tls.key"):
        os.chown(path, user.pw_uid, user.pw_gid)
    conf = ctx.directory / "exim.conf"
    conf.write_text(_EXIM_COMMON.format(domain=DOMAIN, d=d, user=_EXIM_USER, settings=settings))
    conf.chmod(0o644)
    return [_binary("exim4"), "-C", str(conf), "-bdf"]


def _exim_weak(ctx: LabContext, ip: str) -> list[str]:
    # Planted: no STARTTLS on 25, Exim's default greeting (name and version), and SMTPS on 465
    # whose GnuTLS priority disables RFC 5746 (insecure legacy renegotiation only).
    return _exim(
        ctx,
        ip,
        f"""\
local_interfaces = <; {ip}.25 ; {ip}.465
tls_on_connect_ports = 465
tls_advertise_hosts =
tls_require_ciphers = NORMAL:%DISABLE_SAFE_RENEGOTIATION
""",
    )


def _exim_sound(ctx: LabContext, ip: str) -> list[str]:
    # STARTTLS offered to everyone, a neutral greeting.
    return _exim(
        ctx,
        ip,
        f"""\
local_interfaces = <; {ip}.25
tls_advertise_hosts = *
smtp_banner = $smtp_active_hostname ESMTP
""",
    )


SERVERS: tuple[Server, ...] = (
    Server(
        name="nginx-weak",
        binary="nginx",
        package="nginx-light",
        host=10,
        ports=(80, 443),
        names=("www",),
        configure=_nginx_weak,
    ),
    Server(
        name="nginx-sound",
        binary="nginx",
        package="nginx-light",
        host=11,
        ports=(80, 443),
        names=("secure",),
        configure=_nginx_sound,
    ),
    Server(
        name="tls-expired",
        binary="openssl",
        package="openssl",
        host=20,
        ports=(443,),
        names=("expired",),
        configure=_tls(lambda c: c.issued(f"expired.{DOMAIN}", valid_days=(-60, -1))),
    ),
    Server(
        name="tls-not-yet-valid",
        binary="openssl",
        package="openssl",
        host=21,
        ports=(443,),
        configure=_tls(lambda c: c.issued(f"future.{DOMAIN}", valid_days=(10, 400))),
    ),
    Server(
        name="tls-expiring",
        binary="openssl",
        package="openssl",
        host=22,
        ports=(443,),
        configure=_tls(lambda c: c.issued(f"soon.{DOMAIN}", valid_days=(-300, 10))),
    ),
    Server(
        name="tls-weak-key",
        binary="openssl",
        package="openssl",
        host=23,
        ports=(443,),
        configure=_tls(lambda c: c.issued(f"weak.{DOMAIN}", key="rsa1024")),
    ),
    Server(
        name="tls-sha1",
        binary="openssl",
        package="openssl",
        host=24,
        ports=(443,),
        configure=_tls(lambda c: c.sha1_issued(f"sha1.{DOMAIN}")),
    ),
    Server(
        name="tls-legacy",
        binary="openssl",
        package="openssl",
        host=25,
        ports=(443,),
        configure=_tls(lambda c: c.issued(f"legacy.{DOMAIN}"), legacy=True),
    ),
    Server(
        name="tls-wrong-name",
        binary="openssl",
        package="openssl",
        host=26,
        ports=(443,),
        names=("mismatch",),
        configure=_tls(lambda c: c.issued(f"other.{DOMAIN}")),
    ),
    Server(
        name="tls-weak-suites",
        binary="openssl",
        package="openssl",
        host=27,
        ports=(443,),
        configure=_tls(lambda c: c.issued(f"suites.{DOMAIN}", key="rsa2048"), weak_suites=True),
    ),
    Server(
        name="dns",
        binary="named",
        package="bind9",
        host=53,
        ports=(53,),
        configure=_bind,
        interface_address=True,
    ),
    Server(
        name="dns-sound",
        binary="named",
        package="bind9",
        host=54,
        ports=(53,),
        configure=_bind_sound,
        interface_address=True,
    ),
    Server(
        name="redis",
        binary="redis-server",
        package="redis-server",
        host=63,
        ports=(6379,),
        configure=_redis,
    ),
    Server(
        name="memcached",
        binary="memcached",
        package="memcached",
        host=64,
        ports=(11211,),
        configure=_memcached,
    ),
    Server(
        name="ssh",
        binary="sshd",
        package="openssh-server",
        host=65,
        ports=(22,),
        configure=_sshd,
    ),
    Server(
        name="ftp",
        binary="vsftpd",
        package="vsftpd",
        host=66,
        ports=(21,),
        configure=_vsftpd,
    ),
    Server(
        name="tls-private-ca",
        binary="nginx",
        package="nginx-light",
        host=28,
        ports=(443,),
        names=("private",),
        configure=_nginx_private_ca,
    ),
    Server(
        name="tls-incomplete-chain",
        binary="nginx",
        package="nginx-light",
        host=29,
        ports=(443,),
        configure=_nginx_incomplete_chain,
    ),
    Server(
        name="tls-unknown-ca",
        binary="nginx",
        package="nginx-light",
        host=30,
        ports=(443,),
        configure=_nginx_unknown_ca,
    ),
    Server(
        name="tls-weak-dh",
        binary="nginx",
        package="nginx-light",
        host=31,
        ports=(443,),
        configure=_nginx_weak_dh,
    ),
    Server(
        name="smtp",
        binary="exim4",
        package="exim4-daemon-light",
        host=40,
        ports=(25, 465),
        names=("mail",),
        configure=_exim_weak,
    ),
    # Sound counterparts: the same programs configured with care (no finding of their probe).
    Server(
        name="redis-sound",
        binary="redis-server",
        package="redis-server",
        host=73,
        ports=(6379,),
        configure=_redis_sound,
    ),
    Server(
        name="memcached-sound",
        binary="memcached",
        package="memcached",
        host=74,
        ports=(11211,),
        configure=_memcached_sound,
    ),
    Server(
        name="ssh-sound",
        binary="sshd",
        package="openssh-server",
        host=75,
        ports=(22,),
        configure=_sshd_sound,
    ),
    Server(
        name="smtp-sound",
        binary="exim4",
        package="exim4-daemon-light",
        host=41,
        ports=(25,),
        configure=_exim_sound,
    ),
    Server(
        name="ftp-sound",
        binary="vsftpd",
        package="vsftpd",
        host=76,
        ports=(21,),
        configure=_vsftpd_sound,
    ),
)

_W = "host:www." + DOMAIN
_D = "domain:" + DOMAIN


def _http_weak() -> list[Flaw]:
    flaws = []
    for port in (80, 443):
        for rule, what in (
            ("RIO-HTTP-CSP-MISSING", "no Content-Security-Policy"),
            ("RIO-HTTP-XCTO-MISSING", "no X-Content-Type-Options"),
            ("RIO-HTTP-XFO-MISSING", "no framing protection"),
            ("RIO-HTTP-COOKIE-NOT-HTTPONLY", "session cookie without HttpOnly"),
            ("RIO-HTTP-BANNER-VERSION", "Server: nginx/<version>"),
        ):
            slug = rule.removeprefix("RIO-HTTP-").lower()
            flaws.append(
                Flaw(id=f"nginx-weak:{port}:{slug}", server="nginx-weak", port=port, target=_W,
                     rule=rule, what=what)
            )  # fmt: skip
    return flaws


FLAWS: tuple[Flaw, ...] = (
    *_http_weak(),
    Flaw(id="nginx-weak:80:no-https-redirect", server="nginx-weak", port=80, target=_W,
         rule="RIO-HTTP-NO-HTTPS-REDIRECT", what="plain HTTP served, no redirect to HTTPS"),
    Flaw(id="nginx-weak:443:no-hsts", server="nginx-weak", port=443, target=_W,
         rule="RIO-HTTP-HSTS-MISSING", what="HTTPS without Strict-Transport-Security"),
    Flaw(id="nginx-weak:443:cookie-not-secure", server="nginx-weak", port=443, target=_W,
         rule="RIO-HTTP-COOKIE-NOT-SECURE", what="cookie over HTTPS without Secure"),
    Flaw(id="nginx-weak:80:default-page", server="nginx-weak", port=80, target=_W,
         rule="RIO-HTTP-DEFAULT-PAGE", what="'Welcome to nginx!' default page"),
    Flaw(id="nginx-weak:80:git", server="nginx-weak", port=80, target=_W,
         rule="RIO-HTTP-VCS-EXPOSED", what="/.git/HEAD served"),
    Flaw(id="nginx-weak:80:env", server="nginx-weak", port=80, target=_W,
         rule="RIO-HTTP-ENV-EXPOSED", what="/.env with a database password served"),
    Flaw(id="nginx-weak:80:listing", server="nginx-weak", port=80, target=_W,
         rule="RIO-HTTP-DIRECTORY-LISTING", what="/backup/ listed (autoindex)"),
    Flaw(id="nginx-weak:80:status", server="nginx-weak", port=80, target=_W,
         rule="RIO-HTTP-STATUS-PAGE", what="/nginx_status (stub_status) reachable"),
    Flaw(id="nginx-weak:443:self-signed", server="nginx-weak", port=443, target=_W,
         rule="RIO-TLS-SELF-SIGNED", what="self-signed certificate"),
    Flaw(id="tls-expired:443:expired", server="tls-expired", port=443, target="ip",
         rule="RIO-TLS-EXPIRED", what="certificate expired yesterday"),
    Flaw(id="tls-not-yet-valid:443:not-yet-valid", server="tls-not-yet-valid", port=443,
         target="ip", rule="RIO-TLS-NOT-YET-VALID", what="certificate valid only in 10 days"),
    Flaw(id="tls-expiring:443:expiring", server="tls-expiring", port=443, target="ip",
         rule="RIO-TLS-EXPIRING", what="certificate expires in 10 days"),
    Flaw(id="tls-weak-key:443:rsa1024", server="tls-weak-key", port=443, target="ip",
         rule="RIO-TLS-WEAK-KEY", what="1024-bit RSA key"),
    Flaw(id="tls-sha1:443:sha1-signature", server="tls-sha1", port=443, target="ip",
         rule="RIO-TLS-WEAK-SIGNATURE", what="certificate signed with SHA-1"),
    Flaw(id="tls-legacy:443:tls1.0", server="tls-legacy", port=443, target="ip",
         rule="RIO-TLS-LEGACY-1-0", what="TLS 1.0 accepted"),
    Flaw(id="tls-legacy:443:tls1.1", server="tls-legacy", port=443, target="ip",
         rule="RIO-TLS-LEGACY-1-1", what="TLS 1.1 accepted"),
    Flaw(id="tls-weak-suites:443:anonymous", server="tls-weak-suites", port=443, target="ip",
         rule="RIO-TLS-NULL-OR-ANON-SUITE", what="AECDH-AES128-SHA (anonymous) accepted"),
    Flaw(id="tls-weak-suites:443:static-rsa", server="tls-weak-suites", port=443, target="ip",
         rule="RIO-TLS-NO-FORWARD-SECRECY", what="AES128-SHA (static RSA) accepted"),
    Flaw(id="tls-weak-suites:443:cbc-sha1", server="tls-weak-suites", port=443, target="ip",
         rule="RIO-TLS-CBC-SHA1", what="CBC suites with SHA-1 accepted"),
    Flaw(id="tls-weak-suites:443:no-tls13", server="tls-weak-suites", port=443, target="ip",
         rule="RIO-TLS-NO-TLS13", what="TLS 1.3 not offered"),
    Flaw(id="tls-wrong-name:443:name-mismatch", server="tls-wrong-name", port=443,
         target="host:mismatch." + DOMAIN, rule="RIO-TLS-NAME-MISMATCH",
         what="certificate for other.lab.test served as mismatch.lab.test"),
    Flaw(id="dns:53:open-resolver", server="dns", port=None, target=_D,
         rule="RIO-DNS-OPEN-RESOLVER", what="recursion for any client"),
    Flaw(id="dns:53:axfr", server="dns", port=None, target=_D,
         rule="RIO-DNS-AXFR-ALLOWED", what="zone transfer to any client"),
    Flaw(id="dns:53:no-spf", server="dns", port=None, target=_D,
         rule="RIO-DNS-SPF-MISSING", what="no SPF record"),
    Flaw(id="dns:53:no-dmarc", server="dns", port=None, target=_D,
         rule="RIO-DNS-DMARC-MISSING", what="no DMARC record"),
    Flaw(id="dns:53:unsigned", server="dns", port=None, target=_D,
         rule="RIO-DNS-DNSSEC-ABSENT", what="zone not signed"),
    Flaw(id="dns:53:version", server="dns", port=None, target=_D,
         rule="RIO-DNS-VERSION-DISCLOSED", what="version.bind answers BIND's version"),
    Flaw(id="dns:53:no-caa", server="dns", port=None, target=_D,
         rule="RIO-DNS-CAA-MISSING", what="no CAA record"),
    Flaw(id="dns:53:lax.test:spf-softfail", server="dns", port=None, target="domain:lax.test",
         rule="RIO-DNS-SPF-LAX", what="SPF ends in ~all"),
    Flaw(id="dns:53:lax.test:dmarc-none", server="dns", port=None, target="domain:lax.test",
         rule="RIO-DNS-DMARC-MONITOR-ONLY", what="DMARC p=none"),
    Flaw(id="dns:53:bogus.test:expired-rrsig", server="dns", port=None,
         target="domain:bogus.test", rule="RIO-DNS-DNSSEC-BROKEN",
         what="zone signed, every RRSIG expired yesterday"),
    Flaw(id="redis:6379:reachable", server="redis", port=6379, target="ip",
         rule="RIO-PORT-DATABASE", what="redis reachable on its standard port"),
    Flaw(id="redis:6379:no-auth", server="redis", port=6379, target="ip",
         rule="RIO-REDIS-NO-AUTH", what="redis answers INFO without a password"),
    Flaw(id="memcached:11211:reachable", server="memcached", port=11211, target="ip",
         rule="RIO-PORT-CACHE", what="memcached reachable on its standard port"),
    Flaw(id="memcached:11211:no-auth", server="memcached", port=11211, target="ip",
         rule="RIO-MEMCACHED-NO-AUTH", what="memcached answers version without SASL"),
    Flaw(id="ssh:22:password-auth", server="ssh", port=22, target="ip",
         rule="RIO-SSH-PASSWORD-AUTH", what="sshd offers password authentication"),
    Flaw(id="ssh:22:legacy-kex", server="ssh", port=22, target="ip", rule="RIO-SSH-LEGACY-KEX",
         what="diffie-hellman-group1-sha1 and group14-sha1 offered"),
    Flaw(id="ssh:22:ssh-rsa", server="ssh", port=22, target="ip", rule="RIO-SSH-LEGACY-HOSTKEY",
         what="ssh-rsa (SHA-1) host key signatures offered"),
    Flaw(id="ssh:22:cbc", server="ssh", port=22, target="ip", rule="RIO-SSH-LEGACY-CIPHER",
         what="aes128-cbc and 3des-cbc offered"),
    Flaw(id="ssh:22:hmac-md5", server="ssh", port=22, target="ip", rule="RIO-SSH-LEGACY-MAC",
         what="hmac-md5 and hmac-sha1-96 offered"),
    Flaw(id="ssh:22:os-banner", server="ssh", port=22, target="ip", rule="RIO-SSH-BANNER-OS",
         what="banner carries the Debian patch level"),
    Flaw(id="ssh:22:root-login", server="ssh", port=22, target="ip", rule=None,
         what="sshd permits root login (not visible before authentication)", gap="#16"),
    Flaw(id="nginx-weak:443:no-ocsp-staple", server="nginx-weak", port=443, target=_W,
         rule="RIO-TLS-OCSP-NOT-STAPLED", what="no stapled OCSP response (info)"),
    Flaw(id="tls-incomplete-chain:443:incomplete", server="tls-incomplete-chain", port=443,
         target="ip", rule="RIO-TLS-CHAIN-INCOMPLETE",
         what="leaf of the private intermediate sent without the intermediate"),
    Flaw(id="tls-unknown-ca:443:untrusted", server="tls-unknown-ca", port=443, target="ip",
         rule="RIO-TLS-UNTRUSTED-ISSUER", what="chain ends at a root nobody trusts"),
    Flaw(id="tls-weak-dh:443:dh1024", server="tls-weak-dh", port=443, target="ip",
         rule="RIO-TLS-WEAK-DH", what="DHE with a 1024-bit group"),
    Flaw(id="smtp:465:insecure-renegotiation", server="smtp", port=465, target="ip",
         rule="RIO-TLS-INSECURE-RENEGOTIATION",
         what="SMTPS without RFC 5746 (GnuTLS %DISABLE_SAFE_RENEGOTIATION)"),
    Flaw(id="smtp:25:no-starttls", server="smtp", port=25, target="ip",
         rule="RIO-SMTP-NO-STARTTLS", what="EHLO answer lists no STARTTLS"),
    Flaw(id="smtp:25:version", server="smtp", port=25, target="ip",
         rule="RIO-SMTP-BANNER-VERSION", what="greeting names Exim and its version"),
    Flaw(id="smtp:25:known-cve", server="smtp", port=25, target="ip",
         rule="RIO-VERSION-KNOWN-CVE", what="Exim 4.96 announced: inside CVE-2023-42115's range"),
    Flaw(id="ftp:21:reachable", server="ftp", port=21, target="ip", rule="RIO-PORT-FTP",
         what="plain FTP reachable"),
    Flaw(id="ftp:21:anonymous", server="ftp", port=21, target="ip", rule="RIO-FTP-ANONYMOUS",
         what="anonymous FTP login accepted"),
    Flaw(id="ftp:21:version", server="ftp", port=21, target="ip", rule="RIO-FTP-BANNER-VERSION",
         what="greeting names vsFTPd and its version"),
)  # fmt: skip


def server_named(name: str) -> Server:
    for server in SERVERS:
        if server.name == name:
            return server
    raise KeyError(f"no lab server named {name!r}")


def unavailable(servers: Sequence[Server] = SERVERS) -> str | None:
    """Why the lab cannot run on this machine, or ``None`` when it can."""
    missing = sorted({f"{s.binary} (Debian {s.package})" for s in servers if not _which(s.binary)})
    if missing:
        return "field lab: server binaries not installed: " + ", ".join(missing)
    if os.geteuid() != 0:
        return "field lab: needs root (standard ports below 1024; BIND's address on lo)"
    if any(s.interface_address for s in servers) and _which("ip") is None:
        return "field lab: the `ip` command (iproute2) is needed to give BIND its address"
    return None


# -- running it ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Running:
    server: Server
    ip: str
    process: subprocess.Popen[bytes]
    log: Path


class LabError(RuntimeError):
    """A lab server did not start; the message carries its log's tail."""


class Lab:
    """Start ``servers`` on ``block`` (context manager); stop them all on exit.

    Args:
        block: from :func:`claim_block`.
        directory: an empty directory for configurations, certificates and logs.
        servers: which of :data:`SERVERS` to start (default: all).
    """

    def __init__(self, block: Block, directory: Path, servers: Sequence[Server] = SERVERS) -> None:
        self.block = block
        self.directory = directory
        self.servers = tuple(servers)
        self.certs = CertFactory(directory / "certs")
        self.pki = PrivatePki(directory / "pki")
        self._running: list[_Running] = []
        self._addresses: list[str] = []
        self._scratch: list[Path] = []

    @property
    def ca_bundle(self) -> Path:
        """The inspection's CA bundle: the object's private root and intermediate, and the
        test CA that issued the other lab certificates (the policy's ``tls.ca_bundle``)."""
        return self.directory / "ca-bundle.pem"

    def ip(self, server: str) -> str:
        """The address of a lab server, by name."""
        return self.block.ip(server_named(server).host)

    def log(self, server: str, name: str = "access.log") -> str:
        """A file the server wrote into its directory (nginx: ``access.log``), as text."""
        path = self.directory / server / name
        return path.read_text(errors="replace") if path.exists() else ""

    def flaws(self) -> tuple[Flaw, ...]:
        """The planted flaws of the servers this lab runs."""
        names = {s.name for s in self.servers}
        return tuple(f for f in FLAWS if f.server in names)

    # -- files a user writes --------------------------------------------------------------------

    def scope_text(
        self, *, contact_email: str = "noc@lab.test", extra_targets: Sequence[str] = ()
    ) -> str:
        """A scope announcing every running server's address, its names and the lab domain.

        ``extra_targets`` are more YAML target lines (e.g. ``"- host: nowhere.lab.test"``).
        """
        now = datetime.now(UTC)
        start = (now - timedelta(hours=1)).replace(tzinfo=None).isoformat(timespec="seconds")
        end = (now + timedelta(hours=3)).replace(tzinfo=None).isoformat(timespec="seconds")
        targets = [f"  - ip: {self.block.ip(s.host)}" for s in self.servers]
        for server in self.servers:
            targets += [f"  - host: {name}.{DOMAIN}" for name in server.names]
        if any(s.name == "dns" for s in self.servers):
            targets += [f"  - domain: {DOMAIN}", f"    nameservers: [{self.ip('dns')}]"]
        for server in self.servers:
            for zone in _ZONES.get(server.name, {}):
                targets += [f"  - domain: {zone}", f"    nameservers: [{self.ip(server.name)}]"]
        targets += [f"  {line}" for line in extra_targets]
        return (
            "# The field lab: real servers on loopback, standard ports, planted flaws.\n"
            "format: rio.scope/v1\n"
            "object: {id: field-lab, name: Field lab (loopback), services: [access, idc, domain]}\n"
            f"contact: {{name: Lab NOC, email: {contact_email}}}\n"
            "targets:\n" + "\n".join(targets) + "\n"
            f'windows: [{{start: "{start}", end: "{end}", timezone: UTC}}]\n'
            "sources: [127.0.0.1]\n"
        )

    def policy_text(self, *, http_paths: Sequence[str] = ("/",)) -> str:
        """A lab policy: standard ports, every probe including AXFR, a short lead time."""
        paths = ", ".join(f'"{p}"' for p in http_paths)
        return (
            textwrap.dedent("""\
            # Field lab policy: the standard ports of the services in the lab; never for real networks.
            format: rio.policy/v1
            name: field-lab
            description: Loopback field lab. Never use against real networks.
            timezone: UTC
            min_notice_lead: 2s
            windows: [{days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}]
            # per_ip 40: three zones share one name server (12 queries per dns probe); until a
            # budget refusal waits instead of dropping (#12 defect 2) they must fit one second.
            rates: {per_ip: 40, per_network: 200, per_notice: 200, global: 400}
            concurrency: 16
            probe_timeout: 30s
            max_disruption: intrusive
            probes:
              port:
                ports: [21, 22, 23, 25, 53, 80, 443, 445, 3306, 3389, 5432, 6379, 9200, 11211, 27017]
                retries: 0
                host_timeout: 20s
              http: {ports: [80], https_ports: [443], paths: [PATHS], method: GET, timeout: 5s}
              tls:
                ports: [443, 465]
                timeout: 5s
                check_legacy: true
                enumerate: true
                max_handshakes: 6
                inspect: true
                ca_bundle: BUNDLE
              dns: {recursion_check: true, timeout: 3s}
              dns-axfr: {timeout: 5s}
              http-content:
                ports: [80]
                https_ports: []
                paths: ["/", "/.git/HEAD", "/.env", "/backup/", "/backup.sql", "/nginx_status"]
                timeout: 5s
              ssh: {ports: [22], timeout: 10s, auth_methods: true}
              redis: {ports: [6379], timeout: 5s}
              memcached: {ports: [11211], timeout: 5s}
              ftp: {ports: [21], timeout: 5s, anonymous: true}
              smtp: {ports: [25], timeout: 5s}
            health: {consecutive_failures: 5, latency_factor: 50, cooldown: 2s}
            signoff: {officers: 2, technicians: 1}
            """)
            .replace("PATHS", paths)
            .replace("BUNDLE", str(self.ca_bundle))
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self.certs.directory.mkdir(parents=True, exist_ok=True)
            self.pki.bundle(self.ca_bundle, self.certs.ca_path)
            for server in self.servers:
                self._start(server)
            for running in self._running:
                self._wait_ready(running)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self, server: Server) -> None:
        ip = self.block.ip(server.host)
        directory = self.directory / server.name
        directory.mkdir(parents=True)
        self.certs.directory.mkdir(exist_ok=True)
        ctx = LabContext(
            directory=directory,
            block=self.block,
            certs=self.certs,
            root=os.geteuid() == 0,
            pki=self.pki,
            scratch=self._scratch,
        )
        argv = server.configure(ctx, ip)
        if server.interface_address:
            self._add_address(ip)
        log = directory / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=directory,
                start_new_session=True,  # its own process group: stop() kills workers too
            )
        self._running.append(_Running(server=server, ip=ip, process=process, log=log))

    def _add_address(self, ip: str) -> None:
        ip_cmd = _binary("ip")
        proc = subprocess.run(
            [ip_cmd, "addr", "add", f"{ip}/32", "dev", "lo"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if proc.returncode != 0 and "File exists" not in proc.stderr:
            raise LabError(f"could not add {ip}/32 to lo: {proc.stderr.strip()}")
        self._addresses.append(ip)

    def _wait_ready(self, running: _Running) -> None:
        deadline = time.monotonic() + _START_SECONDS
        pending = list(running.server.ports)
        while pending:
            if running.process.poll() is not None:
                raise LabError(self._failure(running, f"exited with {running.process.returncode}"))
            if time.monotonic() > deadline:
                raise LabError(self._failure(running, f"port {pending[0]} not open after 20 s"))
            try:
                with socket.create_connection((running.ip, pending[0]), timeout=1.0):
                    pending.pop(0)
            except OSError:
                time.sleep(_POLL_SECONDS)

    @staticmethod
    def _failure(running: _Running, why: str) -> str:
        tail = running.log.read_text(errors="replace")[-2000:] if running.log.exists() else ""
        return f"lab server {running.server.name} on {running.ip}: {why}\n{tail}"

    def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after 5 s) and remove added addresses."""
        for running in self._running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, signal.SIGTERM)
        for running in self._running:
            try:
                running.process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(running.process.pid, signal.SIGKILL)
                running.process.wait(timeout=_STOP_SECONDS)
            # Workers that outlived their master (nginx) are in the same group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(running.process.pid, signal.SIGKILL)
        self._running.clear()
        ip_cmd = _which("ip")
        for ip in self._addresses:
            if ip_cmd is not None:
                subprocess.run(
                    [ip_cmd, "addr", "del", f"{ip}/32", "dev", "lo"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
        self._addresses.clear()
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        self._scratch.clear()

    def running(self) -> Iterator[tuple[str, str]]:
        """(server name, address) of every running server."""
        for r in self._running:
            yield r.server.name, r.ip
