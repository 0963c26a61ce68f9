"""Unauthenticated services: one small, documented request each, on the pinned address only.

* ``redis``: one ``INFO server`` command (RESP array). A server that requires a password answers
  ``-NOAUTH``; one in protected mode answers ``-DENIED``; an open one answers with its INFO text.
* ``memcached``: one ``version`` command (ASCII protocol). A server with SASL (binary protocol
  only) or an ASCII auth file refuses it; an open one answers ``VERSION x.y.z``.
* ``ftp``: the greeting, and, only when the policy sets ``anonymous``, the public anonymous login
  of RFC 1635 (``USER anonymous``, ``PASS`` with a placeholder address naming rio), then
  ``QUIT``. No directory is listed and nothing is read or written.
* ``smtp``: the greeting, one ``EHLO`` naming rio (RFC 5321 §4.1.1.1), ``QUIT``. The greeting
  shows the software and version where the MTA announces them; the EHLO answer lists the
  extensions, ``STARTTLS`` (RFC 3207) among them or not. No ``MAIL``, no ``RCPT``: whether the
  server relays is not asked.

No probe sends a data command (no ``KEYS``, ``GET``, ``stats items``, ``LIST``): whether the
service answers without credentials is the finding; its data stays its own.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import ClassVar

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

__all__ = [
    "FTP_ANONYMOUS_ADDRESS",
    "SMTP_EHLO_NAME",
    "FtpProbe",
    "MemcachedProbe",
    "RedisProbe",
    "SmtpProbe",
    "ehlo_extensions",
]

#: what the anonymous login gives as password: by RFC 1635 custom an address; this one names rio
FTP_ANONYMOUS_ADDRESS = "rio-inspection@rio.invalid"
_REDIS_INFO = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
_REDIS_MAX_INFO = 16384
_EVIDENCE_LIMIT = 2000
_VERSION = re.compile(r"\d+\.\d+")
_MAX_REPLY_LINES = 20
#: the name rio gives in EHLO: a reserved name (RFC 2606), saying who is asking
SMTP_EHLO_NAME = "rio-inspection.invalid"


class _OneRequest:
    """The shared run() of the service probes: check, converse once, translate the stop."""

    name: ClassVar[str]
    disruption: ClassVar[Disruption] = Disruption.LIGHT
    switches: ClassVar[Mapping[str, bool]] = {}
    binds_source: ClassVar[bool] = True
    """its one connection leaves from ``ctx.source_address`` when set"""

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Converse once with ``permit.ip:permit.port``.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired between steps.
        """
        check_permit(permit, self.name)
        end = endpoint(self.name, permit, self.switches)
        tally = Tally(probe=self.name, ip=permit.ip)
        try:
            async with Conversation(
                probe=self.name, end=end, permit=permit, ctx=ctx, tally=tally
            ) as conv:
                await self.converse(conv, end, tally.observations)
        except Stop as stop:
            return tally.result(stop.outcome, stop.error)
        except asyncio.CancelledError as exc:
            raise ProbeCancelledError(f"{self.name} probe: cancelled") from exc
        return tally.result()

    async def converse(self, conv: Conversation, end: Endpoint, obs: list[Observation]) -> None:
        raise NotImplementedError


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class RedisProbe(_OneRequest):
    """Does Redis answer ``INFO server`` without a password?"""

    name: ClassVar[str] = "redis"

    async def converse(self, conv: Conversation, end: Endpoint, obs: list[Observation]) -> None:
        await conv.send(_REDIS_INFO)
        first = _text(await conv.line("INFO reply", 1024)).rstrip("\r\n")
        if not first:
            raise Stop("error", "INFO reply: the server closed without answering")
        if first.startswith("-"):
            code = first[1:].split(" ", 1)[0]
            obs.append(
                Observation(
                    key="redis.auth",
                    value={"open": False, "answer": code},
                    port=end.port,
                    evidence=first[:_EVIDENCE_LIMIT],
                )
            )
            return
        if not first.startswith("$") or not first[1:].isdigit():
            raise Stop("error", f"INFO reply: not a Redis answer ({first[:40]!r})")
        size = min(int(first[1:]), _REDIS_MAX_INFO)
        body = _text(await conv.upto("INFO body", size))
        fields = dict(
            line.split(":", 1) for line in body.splitlines() if ":" in line and line[:1] != "#"
        )
        version = fields.get("redis_version", "").strip() or None
        obs.append(
            Observation(
                key="redis.auth",
                value={"open": True, "answer": "INFO", "version": version},
                port=end.port,
                evidence=body[:_EVIDENCE_LIMIT],
            )
        )
        if version is not None:
            obs.append(
                Observation(
                    key="service.version",
                    value={"product": "redis", "version": version, "source": "INFO server"},
                    port=end.port,
                )
            )


class MemcachedProbe(_OneRequest):
    """Does memcached answer ``version`` without authentication?"""

    name: ClassVar[str] = "memcached"

    async def converse(self, conv: Conversation, end: Endpoint, obs: list[Observation]) -> None:
        await conv.send(b"version\r\n")
        try:
            answer = _text(await conv.line("version reply", 256)).rstrip("\r\n")
        except Stop as stop:
            if stop.outcome != "error":
                raise
            answer = ""  # SASL-only servers close an ASCII connection: a refusal, not a fault
        opened = answer.startswith("VERSION ")
        version = answer.removeprefix("VERSION ").strip() if opened else None
        obs.append(
            Observation(
                key="memcached.auth",
                value={"open": opened, "answer": answer[:80] or None, "version": version},
                port=end.port,
                evidence=answer[:_EVIDENCE_LIMIT] or None,
            )
        )
        if version:
            obs.append(
                Observation(
                    key="service.version",
                    value={"product": "memcached", "version": version, "source": "version"},
                    port=end.port,
                )
            )


async def _reply(conv: Conversation, step: str, protocol: str) -> tuple[int, str]:
    """One FTP or SMTP reply (RFC 959 §4.2, RFC 5321 §4.2: ``123-`` lines, then ``123 ``)."""
    lines: list[str] = []
    for _ in range(_MAX_REPLY_LINES):
        raw = _text(await conv.line(step, 1024)).rstrip("\r\n")
        if not raw and not lines:
            raise Stop("error", f"{step}: the server closed without a reply")
        lines.append(raw)
        head = lines[0][:3]
        if not head.isdigit():
            raise Stop("error", f"{step}: not an {protocol} reply ({lines[0][:40]!r})")
        if raw[:3] == head and raw[3:4] in (" ", ""):  # "123 text" (or "123") ends the reply
            return int(head), "\n".join(lines)
    raise Stop("error", f"{step}: reply longer than {_MAX_REPLY_LINES} lines")


class FtpProbe(_OneRequest):
    """The FTP greeting; with ``anonymous``, whether the public anonymous login is accepted."""

    name: ClassVar[str] = "ftp"
    switches: ClassVar[Mapping[str, bool]] = {"anonymous": False}

    async def converse(self, conv: Conversation, end: Endpoint, obs: list[Observation]) -> None:
        code, greeting = await _reply(conv, "greeting", "FTP")
        banner = greeting.splitlines()[0][4:]
        obs.append(
            Observation(
                key="ftp.banner",
                value={"code": code, "version": bool(_VERSION.search(banner))},
                port=end.port,
                evidence=greeting[:_EVIDENCE_LIMIT],
            )
        )
        if code != 220 or not end.switches["anonymous"]:
            await conv.send(b"QUIT\r\n")
            return
        await conv.send(b"USER anonymous\r\n")
        code, text = await _reply(conv, "USER", "FTP")
        if code == 331:
            await conv.send(f"PASS {FTP_ANONYMOUS_ADDRESS}\r\n".encode())
            code, text = await _reply(conv, "PASS", "FTP")
        obs.append(
            Observation(
                key="ftp.anonymous",
                value={"accepted": code == 230, "code": code},
                port=end.port,
                evidence=text[:_EVIDENCE_LIMIT],
            )
        )
        await conv.send(b"QUIT\r\n")


def ehlo_extensions(reply: str) -> list[str]:
    """The extension keywords of a 250 EHLO reply (every line after the first), upper-cased."""
    out = []
    for line in reply.splitlines()[1:]:
        words = line[4:].split()
        if words:
            out.append(words[0].upper())
    return out


class SmtpProbe(_OneRequest):
    """The SMTP greeting and EHLO: the announced software, and whether STARTTLS is offered."""

    name: ClassVar[str] = "smtp"

    async def converse(self, conv: Conversation, end: Endpoint, obs: list[Observation]) -> None:
        code, greeting = await _reply(conv, "greeting", "SMTP")
        banner = greeting.splitlines()[0][4:]
        obs.append(
            Observation(
                key="smtp.banner",
                value={"code": code, "version": bool(_VERSION.search(banner))},
                port=end.port,
                evidence=greeting[:_EVIDENCE_LIMIT],
            )
        )
        if code != 220:  # 554: no service here for us; nothing more to ask
            await conv.send(b"QUIT\r\n")
            return
        await conv.send(f"EHLO {SMTP_EHLO_NAME}\r\n".encode())
        code, text = await _reply(conv, "EHLO", "SMTP")
        if code == 250:
            extensions = ehlo_extensions(text)
            obs.append(
                Observation(
                    key="smtp.starttls",
                    value={"offered": "STARTTLS" in extensions, "extensions": extensions},
                    port=end.port,
                    evidence=text[:_EVIDENCE_LIMIT],
                )
            )
        else:
            obs.append(
                Observation(
                    key="smtp.ehlo", value={"code": code}, port=end.port, evidence=text[:200]
                )
            )
        await conv.send(b"QUIT\r\n")
