"""Notices as operations: announce, list the notices a person may see, show one, its letter."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from orchestrator.access.roles import Action, authorize, visible_notices
from orchestrator.context import Rio
from orchestrator.documents import letter as _letter
from orchestrator.documents._render import Format
from orchestrator.errors import AccessDeniedError
from orchestrator.intake.notices import Notice, announce, get_notice
from orchestrator.intake.policy import parse_policy
from orchestrator.intake.registry import Person
from orchestrator.intake.scope import parse_scope

__all__ = ["announce_notice", "list_notices", "notice_letter", "require_notice", "show_notice"]


def list_notices(rio: Rio, person: Person) -> list[Notice]:
    """The notices ``person`` may see (officers their organ's, technicians their vendor's)."""
    with rio.db.session() as s:
        now = rio.clock.now()
        return [get_notice(s, row.id) for row in s.scalars(visible_notices(s, person, now=now))]


def require_notice(rio: Rio, notice_id: str) -> None:
    """Raise unless ``notice_id`` names a notice. Anyone may ask (that a notice exists is
    public: :mod:`orchestrator.services.public`), so a front end says an id is unknown before
    it asks for a key.

    Raises:
        NotFoundError: No such notice.
    """
    with rio.db.session() as s:
        get_notice(s, notice_id)


def show_notice(rio: Rio, person: Person, notice_id: str) -> Notice:
    """One notice the person may see.

    Raises:
        NotFoundError: No such notice.
        AccessDeniedError: It is not one the person may see.
    """
    with rio.db.session() as s:
        notice = get_notice(s, notice_id)
        visible = {row.id for row in s.scalars(visible_notices(s, person, now=rio.clock.now()))}
    if notice_id not in visible:
        raise AccessDeniedError(
            f"notice {notice_id} is not one you may see ({person.name}, {person.role}: "
            "not one of theirs)"
        )
    return notice


def announce_notice(
    rio: Rio,
    person: Person,
    *,
    scope_bytes: bytes,
    scope_name: str,
    policy_bytes: bytes,
    policy_name: str,
    vendor: str | None,
    co_inspecting: Sequence[str],
    now: datetime,
) -> Notice:
    """Announce an inspection (an officer): the scope and policy are stored as given.

    Raises:
        AccessDeniedError: The person is not an officer.
        ScopeFileError, PolicyFileError: A document is malformed (the error names the field).
        NotFoundError: The vendor is not registered.
    """
    parse_scope(scope_bytes, scope_name)
    parse_policy(policy_bytes, policy_name)
    with rio.db.session() as s:
        authorize(s, person, Action.ANNOUNCE_NOTICE, now=now)
        return announce(
            s,
            scope_bytes=scope_bytes,
            scope_name=scope_name,
            policy_bytes=policy_bytes,
            policy_name=policy_name,
            vendor=vendor,
            announced_by=person.id,
            co_inspecting=co_inspecting,
            now=now,
        )


def notice_letter(rio: Rio, person: Person, notice_id: str, fmt: Format) -> bytes:
    """The Art. 16 notice letter (HTML or PDF) of a notice the person may see."""
    return _letter.notice_letter(rio, person, notice_id, fmt)
