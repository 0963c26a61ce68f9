"""People, vendors and inspected objects.

People are officers (of a public security organ), technicians (of an entrusted vendor), auditors
and administrators. Each holds one or more Ed25519 public keys; rio computes the key id (SHA-256 of
the DER SubjectPublicKeyInfo) itself and never stores a private key.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import ConflictError, InputError, NotFoundError
from orchestrator.intake.keys import key_id, load_public_key, public_pem
from orchestrator.intake.people import Person, Role
from orchestrator.store.models import InspectedObjectRow, KeyRow, PersonRow, VendorRow

__all__ = [
    "Person",
    "Role",
    "add_key",
    "add_person",
    "add_vendor",
    "get_person",
    "get_vendor",
    "list_people",
    "person_keys",
    "person_of_key",
    "revoke_key",
    "revoke_person",
]


def add_vendor(s: Session, name: str, organisation: str, *, now: datetime) -> VendorRow:
    if s.scalar(select(VendorRow).where(VendorRow.name == name)) is not None:
        raise ConflictError(f"vendor {name!r} already exists")
    row = VendorRow(name=name, organisation=organisation, created_at=now)
    s.add(row)
    s.flush()
    return row


def get_vendor(s: Session, name: str) -> VendorRow:
    row = s.scalar(select(VendorRow).where(VendorRow.name == name))
    if row is None:
        raise NotFoundError(f"vendor {name!r} is not registered (rio vendor add)")
    return row


def add_person(
    s: Session,
    name: str,
    role: Role,
    organisation: str,
    vendor: str | None = None,
    *,
    now: datetime,
) -> Person:
    """Register a person. Technicians must name their vendor; nobody else may."""
    if s.scalar(select(PersonRow).where(PersonRow.name == name)) is not None:
        raise ConflictError(f"person {name!r} already exists")
    vendor_id = None
    if role is Role.TECHNICIAN:
        if vendor is None:
            raise InputError(f"person {name!r}: a technician must name the vendor (--vendor)")
        vendor_row = get_vendor(s, vendor)
        vendor_id = vendor_row.id
        organisation = organisation or vendor_row.organisation
    elif vendor is not None:
        raise InputError(f"person {name!r}: only technicians belong to a vendor")
    row = PersonRow(
        name=name,
        role=role.value,
        organisation=organisation,
        vendor_id=vendor_id,
        created_at=now,
    )
    s.add(row)
    s.flush()
    return _person(s, row)


def _person(s: Session, row: PersonRow) -> Person:
    vendor = s.get(VendorRow, row.vendor_id).name if row.vendor_id is not None else None  # type: ignore[union-attr]
    return Person(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        organisation=row.organisation,
        vendor=vendor,
        revoked_at=row.revoked_at,
    )


def get_person(s: Session, name: str) -> Person:
    row = s.scalar(select(PersonRow).where(PersonRow.name == name))
    if row is None:
        raise NotFoundError(f"person {name!r} is not registered (rio person add)")
    return _person(s, row)


def person_by_id(s: Session, person_id: int) -> Person:
    row = s.get(PersonRow, person_id)
    if row is None:
        raise NotFoundError(f"person #{person_id} is not registered")
    return _person(s, row)


def list_people(s: Session) -> list[Person]:
    return [_person(s, r) for r in s.scalars(select(PersonRow).order_by(PersonRow.name))]


def revoke_person(s: Session, name: str, when: datetime) -> Person:
    row = s.scalar(select(PersonRow).where(PersonRow.name == name))
    if row is None:
        raise NotFoundError(f"person {name!r} is not registered")
    if row.revoked_at is None:
        row.revoked_at = when
    return _person(s, row)


def add_key(
    s: Session,
    person: str,
    public: Ed25519PublicKey | bytes,
    expires_at: datetime | None = None,
    *,
    now: datetime,
) -> str:
    """Register a public key for a person; returns its key id."""
    key = load_public_key(public) if isinstance(public, bytes) else public
    kid = key_id(key)
    if s.get(KeyRow, kid) is not None:
        raise ConflictError(f"key {kid[:16]}... is already registered")
    p = get_person(s, person)
    s.add(
        KeyRow(
            key_id=kid,
            person_id=p.id,
            public_pem=public_pem(key),
            created_at=now,
            expires_at=expires_at,
        )
    )
    s.flush()
    return kid


def revoke_key(s: Session, kid: str, when: datetime) -> None:
    row = s.get(KeyRow, kid)
    if row is None:
        raise NotFoundError(f"key {kid!r} is not registered")
    if row.revoked_at is None:
        row.revoked_at = when


def person_keys(s: Session, person: str) -> list[KeyRow]:
    p = get_person(s, person)
    return list(s.scalars(select(KeyRow).where(KeyRow.person_id == p.id).order_by(KeyRow.key_id)))


def person_of_key(s: Session, kid: str) -> tuple[Person, KeyRow]:
    row = s.get(KeyRow, kid)
    if row is None:
        raise NotFoundError(f"key {kid!r} is not registered")
    return person_by_id(s, row.person_id), row


def upsert_object(
    s: Session,
    object_id: str,
    name: str,
    services: list[str],
    key_supervision: bool,
    *,
    now: datetime,
) -> InspectedObjectRow:
    """Register the inspected object named by a scope (or refresh its name and services)."""
    row = s.get(InspectedObjectRow, object_id)
    if row is None:
        row = InspectedObjectRow(
            id=object_id,
            name=name,
            services=services,
            key_supervision=key_supervision,
            created_at=now,
        )
        s.add(row)
    else:
        row.name, row.services, row.key_supervision = name, services, key_supervision
    s.flush()
    return row
