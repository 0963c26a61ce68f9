"""The permit's wire form: what the orchestrator hands to a worker in another process.

A :class:`~probes.base.Permit` object is sealed with a per-process key, so it cannot cross a
process boundary. The wire form carries the permit's fields, the budget grant instant (the
moment the gate admitted the send), the probe context a worker needs, and an HMAC-SHA256 tag over
the canonical JSON of all of them under the deployment's permit key (``RIO_PERMIT_KEY``, shared
by the orchestrator and its workers). A worker verifies the tag and the deadline before it
rebuilds a local permit; an altered document or a wrong key is refused with
:class:`PermitWireError`. Replays are caught by the worker's claim store (``workers/_claims``),
keyed by :func:`idempotency_key`: one permit, one send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from probes.base import Permit, ProbeContext, _seal_permit
from probes.errors import PermitError

__all__ = ["PermitWireError", "WirePermit", "idempotency_key", "open_permit", "wire_permit"]

_VERSION = "rio.permit/v1"


class PermitWireError(PermitError):
    """A permit on the wire that a worker must not act on (bad tag, expired, malformed)."""

    outcome = "error"


@dataclass(frozen=True, kw_only=True, slots=True)
class WirePermit:
    """A verified wire permit, rebuilt in the worker's process.

    Attributes:
        permit: the local permit (sealed for this process after the tag verified).
        granted_at: the budget grant instant the orchestrator admitted the send at.
        ctx: the probe context fields the orchestrator chose (User-Agent, From, DNS port, the
            source address to send from and the notice's announced sources).
        key: the idempotency key (run and intent sequence).
    """

    permit: Permit
    granted_at: datetime
    ctx: ProbeContext
    key: str


def idempotency_key(run_id: str, decision: int) -> str:
    """One key per permit: its run and the sequence number of its intent leaf."""
    return f"{run_id}:{decision}"


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _tag(key: bytes, body: dict[str, Any]) -> str:
    return base64.b64encode(hmac.new(key, _canonical(body), hashlib.sha256).digest()).decode()


def wire_permit(
    permit: Permit, *, granted_at: datetime, ctx: ProbeContext, key: bytes
) -> dict[str, Any]:
    """The JSON document a worker receives for ``permit``, tagged under ``key``."""
    body: dict[str, Any] = {
        "v": _VERSION,
        "permit": permit.to_json(),
        "granted_at": granted_at.astimezone(UTC).isoformat(),
        "ctx": {
            "user_agent": ctx.user_agent,
            "from_address": ctx.from_address,
            "dns_port": ctx.dns_port,
            # The egress the probe must leave from, and what the notice announced: a pinned
            # worker checks both before it sends.
            "source_address": ctx.source_address,
            "sources": list(ctx.sources),
        },
    }
    return {"body": body, "tag": _tag(key, body)}


def open_permit(doc: Any, *, key: bytes, now: datetime, nmap_path: str | None = None) -> WirePermit:
    """Verify a wire permit and rebuild it for this process.

    Args:
        doc: the document as received.
        key: the deployment's permit key.
        now: the worker's clock (the deadline is checked against it).
        nmap_path: the worker's own nmap binary.

    Raises:
        PermitWireError: the document is malformed, its tag does not verify (altered, or tagged
            under another key), or its deadline has passed.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("body"), dict):
        raise PermitWireError("permit refused: not a wire permit document")
    body, tag = doc["body"], doc.get("tag")
    if not isinstance(tag, str) or not hmac.compare_digest(tag, _tag(key, body)):
        raise PermitWireError("permit refused: its tag does not verify (altered or foreign key)")
    if body.get("v") != _VERSION:
        raise PermitWireError(f"permit refused: unknown wire version {body.get('v')!r}")
    try:
        p, c = body["permit"], body["ctx"]
        deadline = datetime.fromisoformat(p["deadline"])
        permit = _seal_permit(
            run_id=p["run"],
            notice_id=p["notice"],
            decision=int(p["decision"]),
            probe=p["probe"],
            target=p["target"],
            ip=p["ip"],
            port=p["port"],
            ports=tuple(int(x) for x in p["ports"]),
            server_name=p["server_name"],
            params=dict(p["params"]),
            deadline=deadline,
            max_rate=float(p["max_rate"]),
        )
        granted_at = datetime.fromisoformat(body["granted_at"])
        ctx = ProbeContext(
            user_agent=str(c["user_agent"]),
            from_address=c["from_address"],
            nmap_path=nmap_path,
            dns_port=int(c["dns_port"]),
            source_address=None if c.get("source_address") is None else str(c["source_address"]),
            sources=tuple(str(a) for a in c.get("sources", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermitWireError(f"permit refused: malformed field ({exc})") from exc
    if permit.seconds_left(now) <= 0:
        raise PermitWireError(f"permit refused: its deadline {p['deadline']} has passed")
    return WirePermit(
        permit=permit,
        granted_at=granted_at,
        ctx=ctx,
        key=idempotency_key(permit.run_id, permit.decision),
    )
