"""The ssh probe: what an SSH server tells any client before anyone logs in.

Connection 1 (always): read the server's identification line (RFC 4253 §4.2), send ours, and
read the server's first binary packet, ``SSH_MSG_KEXINIT`` (§7.1), which is sent in clear and
lists the key exchange, host key, cipher, MAC and compression algorithms the server accepts. The
probe then closes: no key exchange, no authentication. This part is a minimal reader of
cleartext, written here (about forty lines) because no well-kept library exposes the *server's*
full lists: paramiko parses them privately and keeps only the negotiated choice.

Connection 2 (only when the policy sets ``auth_methods``): a full key exchange with paramiko and
one ``none`` authentication request (RFC 4252 §5.2). The server's refusal names the methods it
would accept (``password``, ``publickey``, ...). No credential is ever sent; the user name is a
fixed placeholder that names rio. Here a library is the right tool: the key exchange is
cryptography, and paramiko is a well-kept, widely used implementation of it.

The judgement of the algorithms follows OpenSSH's own: an algorithm is *legacy* when current
OpenSSH no longer enables it by default (SHA-1 key exchange and ``ssh-rsa`` signatures, CBC and
RC4 ciphers, MD5 and truncated MACs).
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import paramiko

from probes._wire import Conversation, Endpoint, Stop, Tally, endpoint
from probes.base import (
    Disruption,
    Observation,
    Permit,
    ProbeContext,
    ProbeResult,
    check_permit,
)
from probes.errors import ProbeCancelledError

__all__ = ["LEGACY_ALGORITHMS", "KexInit", "SshProbe", "legacy_algorithms", "parse_kexinit"]

#: our identification line; "rio" and the purpose, no version (RFC 4253 §4.2 allows comments)
CLIENT_IDENT = b"SSH-2.0-rio_inspection\r\n"
#: the user name of the ``none`` request: a placeholder that says who asks, never a real account
AUTH_PROBE_USER = "rio-inspection"
_SWITCHES: Mapping[str, bool] = {"auth_methods": False}
_MAX_PRE_BANNER_LINES = 20
_MAX_PACKET = 35000  # RFC 4253 §6.1: implementations must handle 35000-byte packets
_MSG_KEXINIT = 20
_IDENT = re.compile(r"^SSH-(?P<proto>[0-9.]+)-(?P<software>\S+)(?: (?P<comments>.*))?$")
_VERSION = re.compile(r"\d+\.\d+")

#: categories of algorithms that current OpenSSH no longer enables by default
LEGACY_ALGORITHMS: Mapping[str, frozenset[str]] = {
    "kex": frozenset(
        {
            "diffie-hellman-group1-sha1",
            "diffie-hellman-group14-sha1",
            "diffie-hellman-group-exchange-sha1",
            "rsa1024-sha1",
        }
    ),
    "host_key": frozenset({"ssh-rsa", "ssh-dss", "ssh-rsa-cert-v01@openssh.com"}),
    "cipher": frozenset(
        {
            "3des-cbc",
            "aes128-cbc",
            "aes192-cbc",
            "aes256-cbc",
            "rijndael-cbc@lysator.liu.se",
            "blowfish-cbc",
            "cast128-cbc",
            "arcfour",
            "arcfour128",
            "arcfour256",
            "none",
        }
    ),
    "mac": frozenset(
        {
            "hmac-md5",
            "hmac-md5-96",
            "hmac-md5-etm@openssh.com",
            "hmac-md5-96-etm@openssh.com",
            "hmac-sha1-96",
            "hmac-sha1-96-etm@openssh.com",
            "hmac-ripemd160",
            "hmac-ripemd160@openssh.com",
            "none",
        }
    ),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class KexInit:
    """The algorithm lists of one ``SSH_MSG_KEXINIT`` (both directions merged, order kept)."""

    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    cipher: tuple[str, ...]
    mac: tuple[str, ...]
    compression: tuple[str, ...]

    def to_json(self) -> dict[str, list[str]]:
        return {
            "kex": list(self.kex),
            "host_key": list(self.host_key),
            "cipher": list(self.cipher),
            "mac": list(self.mac),
            "compression": list(self.compression),
        }


def _name_lists(payload: bytes) -> list[tuple[str, ...]]:
    lists: list[tuple[str, ...]] = []
    at = 1 + 16  # message number, cookie
    for _ in range(10):
        if at + 4 > len(payload):
            raise ValueError("KEXINIT ends inside its name-lists")
        (size,) = struct.unpack_from(">I", payload, at)
        at += 4
        if at + size > len(payload):
            raise ValueError("a KEXINIT name-list runs past the packet")
        text = payload[at : at + size].decode("ascii")
        at += size
        lists.append(tuple(n for n in text.split(",") if n))
    return lists


def parse_kexinit(payload: bytes) -> KexInit:
    """Parse the payload of an ``SSH_MSG_KEXINIT`` packet (RFC 4253 §7.1).

    Raises:
        ValueError: the payload is not a well-formed KEXINIT.
    """
    if not payload or payload[0] != _MSG_KEXINIT:
        raise ValueError(f"first packet is message {payload[:1].hex() or 'none'}, not KEXINIT")
    lists = _name_lists(payload)

    def merged(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a + b))

    return KexInit(
        kex=lists[0],
        host_key=lists[1],
        cipher=merged(lists[2], lists[3]),
        mac=merged(lists[4], lists[5]),
        compression=merged(lists[6], lists[7]),
    )


def legacy_algorithms(kexinit: KexInit) -> dict[str, list[str]]:
    """The offered algorithms of each category that current OpenSSH does not enable by default."""
    offered = {
        "kex": kexinit.kex,
        "host_key": kexinit.host_key,
        "cipher": kexinit.cipher,
        "mac": kexinit.mac,
    }
    return {
        category: [name for name in names if name in LEGACY_ALGORITHMS[category]]
        for category, names in offered.items()
    }


async def _identification(conv: Conversation) -> str:
    # Servers may send other lines before the identification (RFC 4253 §4.2); read a few only.
    for _ in range(_MAX_PRE_BANNER_LINES):
        raw = await conv.line("identification", 256)
        if not raw:
            raise Stop("error", "identification: the server closed without an SSH banner")
        if raw.startswith(b"SSH-"):
            return raw.decode("ascii", errors="replace").rstrip("\r\n")
    raise Stop("error", f"identification: no SSH banner in the first {_MAX_PRE_BANNER_LINES} lines")


async def _first_packet(conv: Conversation) -> bytes:
    head = await conv.exactly("KEXINIT", 5)
    length, padding = struct.unpack(">IB", head)
    if not 5 <= length <= _MAX_PACKET or padding >= length:
        raise Stop("error", f"KEXINIT: implausible packet length {length}")
    body = await conv.exactly("KEXINIT", length - 1)
    return body[: length - 1 - padding]


def _banner_observation(line: str, port: int) -> Observation:
    match = _IDENT.match(line)
    if match is None:
        value: dict[str, object] = {"valid": False}
    else:
        software = match.group("software")
        comments = match.group("comments")
        value = {
            "valid": True,
            "protocol": match.group("proto"),
            "software": software,
            "comments": comments,
            "version": bool(_VERSION.search(software)),
            "os_detail": bool(comments),
        }
    return Observation(key="ssh.banner", value=value, port=port, evidence=line)


def _auth_methods(end: Endpoint, timeout: float) -> dict[str, object]:
    """Key exchange and one ``none`` request; the server's answer lists the allowed methods."""
    sock = socket.create_connection((end.ip, end.port), timeout=timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    transport.local_version = CLIENT_IDENT.decode().rstrip("\r\n")
    try:
        transport.start_client(timeout=timeout)
        try:
            transport.auth_none(AUTH_PROBE_USER)
        except paramiko.BadAuthenticationType as exc:
            methods = sorted(str(m) for m in exc.allowed_types)
            return {"none_accepted": False, "methods": methods, "password": "password" in methods}
        # The server let a client in without any credential.
        return {"none_accepted": True, "methods": ["none"], "password": False}
    finally:
        transport.close()
        sock.close()


class SshProbe:
    """Banner and KEXINIT lists without logging in; optionally the ``none`` method's answer."""

    name: ClassVar[str] = "ssh"
    disruption: ClassVar[Disruption] = Disruption.LIGHT

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Read ``permit.ip:permit.port``'s identification and algorithm lists.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired between steps.
        """
        check_permit(permit, self.name)
        end = endpoint(self.name, permit, _SWITCHES)
        tally = Tally(probe=self.name, ip=permit.ip)
        try:
            await self._run(permit, ctx, end, tally)
        except Stop as stop:
            return tally.result(stop.outcome, stop.error)
        except asyncio.CancelledError as exc:
            raise ProbeCancelledError("ssh probe: cancelled") from exc
        return tally.result()

    async def _run(self, permit: Permit, ctx: ProbeContext, end: Endpoint, tally: Tally) -> None:
        port = end.port
        async with Conversation(probe=self.name, end=end, permit=permit, ctx=ctx, tally=tally) as c:
            line = await _identification(c)
            tally.observations.append(_banner_observation(line, port))
            await c.send(CLIENT_IDENT)
            payload = await _first_packet(c)
        try:
            kexinit = parse_kexinit(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Stop("error", f"KEXINIT: {exc}") from exc
        tally.observations.append(
            Observation(key="ssh.algorithms", value=kexinit.to_json(), port=port)
        )
        for category, names in legacy_algorithms(kexinit).items():
            tally.observations.append(
                Observation(
                    key=f"ssh.legacy.{category}",
                    value={"legacy": bool(names), "algorithms": names},
                    port=port,
                )
            )
        if not end.switches["auth_methods"]:
            return
        if ctx.is_cancelled():
            raise ProbeCancelledError("ssh probe: cancelled before the auth-methods check")
        left = permit.seconds_left()
        if left <= 0:
            raise Stop("timeout", "auth methods: permit deadline reached")
        tally.connections += 1
        loop = asyncio.get_running_loop()
        try:
            auth = await loop.run_in_executor(None, _auth_methods, end, min(end.timeout, left))
        except TimeoutError as exc:
            raise Stop("timeout", f"auth methods: {exc}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # The server's lists were read; only the second look failed. Say so, keep the rest.
            tally.observations.append(
                Observation(
                    key="ssh.auth", value={"known": False, "error": str(exc)[:200]}, port=port
                )
            )
            return
        tally.observations.append(
            Observation(key="ssh.auth", value={"known": True, **auth}, port=port)
        )
