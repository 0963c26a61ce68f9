"""People, vendors and the evidence master key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.errors import AccessDeniedError
from orchestrator.intake.registry import Person, Role

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.orm import Session

__all__ = [
    "PersonEntry",
    "Registered",
    "VendorEntry",
    "add_person",
    "add_person_key",
    "add_vendor",
    "has_administrator",
    "list_people",
    "list_vendors",
    "revoke_person",
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
    with app.db.session() as s:
        return _has_administrator(s)


def _has_administrator(s: Session) -> bool:
    from sqlalchemy import select

    from orchestrator.store.models import PersonRow

    found = s.scalar(select(PersonRow.id).where(PersonRow.role == Role.ADMIN.value).limit(1))
    return found is not None


def _authorise_registry(app: Rio, s: Session, actor: Person | None) -> None:
    """An active administrator; or nobody (``None``) while the home has no administrator."""
    if actor is not None:
        authorize(s, actor, Action.MANAGE_REGISTRY, now=app.clock.now())
    elif _has_administrator(s):
        raise AccessDeniedError(
            "an administrator is registered: registry changes need an administrator's key "
            "(--key or RIO_KEY_FILE)"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Registered:
    """A person just registered (with the id of the key registered with them, if any)."""

    name: str
    role: Role
    key_id: str | None


def add_vendor(app: Rio, actor: Person | None, name: str, organisation: str) -> VendorEntry:
    """Register an entrusted vendor (an administrator; anyone while there is none).

    Raises:
        AccessDeniedError: ``actor`` is not an active administrator.
        ConflictError: the vendor is registered already.
    """
    from orchestrator.intake import registry

    with app.db.session() as s:
        _authorise_registry(app, s, actor)
        row = registry.add_vendor(s, name, organisation, now=app.clock.now())
        return VendorEntry(name=row.name, organisation=row.organisation)


def add_person(
    app: Rio,
    actor: Person | None,
    name: str,
    role: Role,
    organisation: str,
    vendor: str | None,
    public_key: Ed25519PublicKey | None = None,
) -> Registered:
    """Register a person, and their public key when given, in one transaction (an
    administrator; anyone while there is none).

    Raises:
        AccessDeniedError: ``actor`` is not an active administrator.
        ConflictError: the person or the key is registered already.
        InputError, NotFoundError: the role and vendor do not fit, or no such vendor.
    """
    from orchestrator.intake import registry

    with app.db.session() as s:
        _authorise_registry(app, s, actor)
        now = app.clock.now()
        person = registry.add_person(s, name, role, organisation, vendor, now=now)
        kid = registry.add_key(s, name, public_key, now=now) if public_key is not None else None
        return Registered(name=person.name, role=person.role, key_id=kid)


def add_person_key(app: Rio, actor: Person | None, name: str, public_key: Ed25519PublicKey) -> str:
    """Register another public key for a person; returns its key id.

    Raises:
        AccessDeniedError: ``actor`` is not an active administrator.
        ConflictError: the key is registered already.
        NotFoundError: no such person.
    """
    from orchestrator.intake import registry

    with app.db.session() as s:
        _authorise_registry(app, s, actor)
        return registry.add_key(s, name, public_key, now=app.clock.now())


def revoke_person(app: Rio, actor: Person | None, name: str) -> PersonEntry:
    """Revoke a person from now on (earlier signatures keep their time).

    Raises:
        AccessDeniedError: ``actor`` is not an active administrator.
        NotFoundError: no such person.
    """
    from orchestrator.intake import registry

    with app.db.session() as s:
        _authorise_registry(app, s, actor)
        p = registry.revoke_person(s, name, app.clock.now())
        return PersonEntry(
            name=p.name,
            role=str(p.role),
            organisation=p.organisation,
            vendor=p.vendor,
            revoked_at=p.revoked_at,
            keys=tuple(k.key_id for k in registry.person_keys(s, p.name)),
        )


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
