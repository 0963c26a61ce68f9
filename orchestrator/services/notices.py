"""Notices as operations: the notices a person may see, one notice."""

from __future__ import annotations

from orchestrator.access.roles import visible_notices
from orchestrator.context import Rio
from orchestrator.errors import AccessDeniedError
from orchestrator.intake.notices import Notice, get_notice
from orchestrator.intake.registry import Person

__all__ = ["list_notices", "show_notice"]


def list_notices(rio: Rio, person: Person) -> list[Notice]:
    """The notices ``person`` may see (officers their organ's, technicians their vendor's)."""
    with rio.db.session() as s:
        return [get_notice(s, row.id) for row in s.scalars(visible_notices(s, person))]


def show_notice(rio: Rio, person: Person, notice_id: str) -> Notice:
    """One notice the person may see.

    Raises:
        NotFoundError: No such notice.
        AccessDeniedError: It is not one the person may see.
    """
    with rio.db.session() as s:
        notice = get_notice(s, notice_id)
        visible = {row.id for row in s.scalars(visible_notices(s, person))}
    if notice_id not in visible:
        raise AccessDeniedError(
            f"{person.name} ({person.role}) may not view notice {notice_id}: not one of theirs"
        )
    return notice
