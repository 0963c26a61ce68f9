"""Notices: the announcement of an inspection (Art. 16), stored once and never changed.

A notice binds one inspected object, the scope and policy documents exactly as announced (bytes
and SHA-256), the announced windows, the entrusted vendor (if any), the scanner source addresses,
the announcing public security organ (and any co-inspecting organs it names) and the
announcement time. Only officers of those organs count towards closing the record (Art. 18).
A new scope or policy is a new notice, with a new lead time.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import InputError, NotFoundError
from orchestrator.intake.policy import Policy, parse_policy
from orchestrator.intake.registry import get_vendor, upsert_object
from orchestrator.intake.scope import Scope, parse_scope
from orchestrator.store.models import NoticeRow, PersonRow, VendorRow

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
    organ: str | None = None
    """The announcing organ (``None`` only for a notice announced without a known officer)."""
    co_inspecting: tuple[str, ...] = ()
    """Other organs the notice names as inspecting with the announcing one."""

    @property
    def organs(self) -> frozenset[str]:
        """Every organ whose officers may sign the record: the announcing and co-inspecting."""
        return frozenset(o for o in (self.organ, *self.co_inspecting) if o)

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
            "organ": self.organ,
            "co_inspecting": list(self.co_inspecting),
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
    organ: str | None = None,
    co_inspecting: Sequence[str] = (),
    now: datetime,
) -> Notice:
    """Store a notice. Both documents are parsed first: nothing is written for a bad file.

    Args:
        announced_by: The announcing officer's person id.
        organ: The announcing organ; default: the announcing officer's organisation.
        co_inspecting: Other organs inspecting with it, whose officers may sign too.

    Raises:
        ScopeFileError, PolicyFileError: a document is malformed.
        NotFoundError: the vendor or the announcing officer is not registered.
        InputError: ``organ`` differs from the announcing officer's organisation, or an organ
            name is empty.
    """
    scope = parse_scope(scope_bytes, scope_name)
    parse_policy(policy_bytes, policy_name)
    when = now
    vendor_id = get_vendor(s, vendor).id if vendor is not None else None
    organ = _announcing_organ(s, announced_by, organ, scope_name)
    others = tuple(dict.fromkeys(o.strip() for o in co_inspecting))
    if any(not o for o in others):
        raise InputError(f"{scope_name}: a co-inspecting organ must have a name")
    others = tuple(o for o in others if o != organ)
    last_end = max(w.end_utc for w in scope.windows)
    if last_end <= when:
        raise InputError(f"{scope_name}: windows: every announced window has already ended")
    upsert_object(
        s,
        scope.object.id,
        scope.object.name,
        [str(x) for x in scope.object.services],
        scope.object.key_supervision,
        now=when,
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
        organ=organ,
        co_organs=list(others),
    )
    s.add(row)
    s.flush()
    return _notice(s, row)


def _announcing_organ(
    s: Session, announced_by: int | None, organ: str | None, source: str
) -> str | None:
    if organ is not None and not organ.strip():
        raise InputError(f"{source}: the announcing organ must have a name")
    if announced_by is None:
        return organ
    officer = s.get(PersonRow, announced_by)
    if officer is None:
        raise NotFoundError(f"announcing officer #{announced_by} is not registered")
    if organ is not None and organ != officer.organisation:
        raise InputError(
            f"{source}: {officer.name} is an officer of {officer.organisation!r}, so cannot "
            f"announce for {organ!r} (name it as co-inspecting instead)"
        )
    return officer.organisation or None


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
        organ=row.organ,
        co_inspecting=tuple(row.co_organs or ()),
    )


def get_notice(s: Session, notice_id: str) -> Notice:
    row = s.get(NoticeRow, notice_id)
    if row is None:
        raise NotFoundError(f"notice {notice_id!r} is not known (rio notice list)")
    return _notice(s, row)


def list_notices(s: Session) -> list[Notice]:
    rows = s.scalars(select(NoticeRow).order_by(NoticeRow.announced_at))
    return [_notice(s, r) for r in rows]
