"""People, vendors and the evidence master key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.intake.registry import Person

__all__ = [
    "PersonEntry",
    "VendorEntry",
    "has_administrator",
    "list_people",
    "list_vendors",
    "rotate_master_key",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonEntry:
    """One registered person, as listed."""

    name: str
    role: str
    organisation: str
    vendor: str | None
    revoked_at: datetime | None
    keys: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "organisation": self.organisation,
            "vendor": self.vendor,
            "revoked_at": self.revoked_at,
            "keys": list(self.keys),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class VendorEntry:
    """One entrusted vendor, as listed."""

    name: str
    organisation: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "organisation": self.organisation}


def has_administrator(app: Rio) -> bool:
    """Whether an administrator is registered (until then registry commands are open: the
    bootstrap of a fresh home). Anyone may ask; it reveals no name."""
    from sqlalchemy import select

    from orchestrator.intake.registry import Role
    from orchestrator.store.models import PersonRow

    with app.db.session() as s:
        found = s.scalar(select(PersonRow.id).where(PersonRow.role == Role.ADMIN.value).limit(1))
    return found is not None


def list_people(app: Rio, actor: Person) -> tuple[PersonEntry, ...]:
    """Every registered person with their key ids (any registered, active person may list).

    Raises:
        AccessDeniedError: ``actor`` is not registered or is revoked.
    """
    from orchestrator.intake import registry

    with app.db.session() as s:
        authorize(s, actor, Action.VIEW_REGISTRY, now=app.clock.now())
        return tuple(
            PersonEntry(
                name=p.name,
                role=str(p.role),
                organisation=p.organisation,
                vendor=p.vendor,
                revoked_at=p.revoked_at,
                keys=tuple(k.key_id for k in registry.person_keys(s, p.name)),
            )
            for p in registry.list_people(s)
        )


def list_vendors(app: Rio, actor: Person) -> tuple[VendorEntry, ...]:
    """Every registered vendor.

    Raises:
        AccessDeniedError: ``actor`` is not registered or is revoked.
    """
    from sqlalchemy import select

    from orchestrator.store.models import VendorRow

    with app.db.session() as s:
        authorize(s, actor, Action.VIEW_REGISTRY, now=app.clock.now())
        rows = s.scalars(select(VendorRow).order_by(VendorRow.name))
        return tuple(VendorEntry(name=v.name, organisation=v.organisation) for v in rows)


def rotate_master_key(app: Rio, actor: Person, new_key_file: Path) -> int:
    """Re-wrap every run's data key under a new master key (an administrator); returns how many.

    One unit of work: the authorisation and every re-wrap are one transaction, so an
    administrator revoked meanwhile cannot rotate, and a failure re-wraps nothing.

    Raises:
        AccessDeniedError: ``actor`` is not an active administrator (no key file is written).
    """
    from orchestrator.store.evidence import rotate_master

    with app.db.session() as s:
        authorize(s, actor, Action.ROTATE_MASTER_KEY, now=app.clock.now())
        return rotate_master(app, new_key_file, session=s)
