"""Notices: the announcement of an inspection (Art. 16), stored once and never changed.

A notice binds one inspected object, the scope and policy documents exactly as announced (bytes
and SHA-256), the announced windows, the entrusted vendor (if any), the scanner source addresses
and the announcement time. A new scope or policy is a new notice, with a new lead time.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import InputError, NotFoundError
from orchestrator.intake.policy import Policy, parse_policy
from orchestrator.intake.registry import get_vendor, upsert_object
from orchestrator.intake.scope import Scope, parse_scope
from orchestrator.store.models import NoticeRow, VendorRow

__all__ = ["Notice", "announce", "get_notice", "list_notices"]


@dataclass(frozen=True, kw_only=True)
class Notice:
    """A stored notice with its announced documents parsed."""

    id: str
    object_id: str
    vendor: str | None
    scope_name: str
    scope_bytes: bytes
    scope_sha256: str
    policy_name: str
    policy_bytes: bytes
    policy_sha256: str
    announced_at: datetime
    sources: tuple[str, ...]

    @cached_property
    def scope(self) -> Scope:
        return parse_scope(self.scope_bytes, f"notice {self.id}: {self.scope_name}")

    @cached_property
    def policy(self) -> Policy:
        return parse_policy(self.policy_bytes, f"notice {self.id}: {self.policy_name}")

    def lead_time_met_at(self) -> datetime:
        """The first instant at which probing may start (announcement + policy lead)."""
        return self.announced_at + self.policy.min_notice_lead

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": self.object_id,
            "vendor": self.vendor,
            "scope": {"name": self.scope_name, "sha256": self.scope_sha256},
            "policy": {"name": self.policy_name, "sha256": self.policy_sha256},
            "announced_at": self.announced_at.isoformat(),
            "sources": list(self.sources),
            "windows": [
                {"start": w.start_utc.isoformat(), "end": w.end_utc.isoformat()}
                for w in self.scope.windows
            ],
        }


def _new_id(now: datetime) -> str:
    return f"N-{now:%Y%m%d}-{secrets.token_hex(3)}"


def announce(
    s: Session,
    *,
    scope_bytes: bytes,
    scope_name: str,
    policy_bytes: bytes,
    policy_name: str,
    vendor: str | None,
    announced_by: int | None = None,
    now: datetime | None = None,
) -> Notice:
    """Store a notice. Both documents are parsed first: nothing is written for a bad file.

    Raises:
        ScopeFileError, PolicyFileError: a document is malformed.
        NotFoundError: the vendor is not registered.
    """
    scope = parse_scope(scope_bytes, scope_name)
    parse_policy(policy_bytes, policy_name)
    when = now or datetime.now(UTC)
    vendor_id = get_vendor(s, vendor).id if vendor is not None else None
    last_end = max(w.end_utc for w in scope.windows)
    if last_end <= when:
        raise InputError(f"{scope_name}: windows: every announced window has already ended")
    upsert_object(
        s,
        scope.object.id,
        scope.object.name,
        [str(x) for x in scope.object.services],
        scope.object.key_supervision,
    )
    row = NoticeRow(
        id=_new_id(when),
        object_id=scope.object.id,
        vendor_id=vendor_id,
        scope_name=scope_name,
        scope_bytes=scope_bytes,
        scope_sha256=hashlib.sha256(scope_bytes).hexdigest(),
        policy_name=policy_name,
        policy_bytes=policy_bytes,
        policy_sha256=hashlib.sha256(policy_bytes).hexdigest(),
        announced_at=when,
        window_start=min(w.start_utc for w in scope.windows),
        window_end=last_end,
        sources=list(scope.sources),
        announced_by=announced_by,
    )
    s.add(row)
    s.flush()
    return _notice(s, row)


def _notice(s: Session, row: NoticeRow) -> Notice:
    vendor = s.get(VendorRow, row.vendor_id) if row.vendor_id is not None else None
    return Notice(
        id=row.id,
        object_id=row.object_id,
        vendor=vendor.name if vendor else None,
        scope_name=row.scope_name,
        scope_bytes=row.scope_bytes,
        scope_sha256=row.scope_sha256,
        policy_name=row.policy_name,
        policy_bytes=row.policy_bytes,
        policy_sha256=row.policy_sha256,
        announced_at=row.announced_at,
        sources=tuple(row.sources),
    )


def get_notice(s: Session, notice_id: str) -> Notice:
    row = s.get(NoticeRow, notice_id)
    if row is None:
        raise NotFoundError(f"notice {notice_id!r} is not known (rio notice list)")
    return _notice(s, row)


def list_notices(s: Session) -> list[Notice]:
    rows = s.scalars(select(NoticeRow).order_by(NoticeRow.announced_at))
    return [_notice(s, r) for r in rows]
