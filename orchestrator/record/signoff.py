"""Signatures on the record and the closure rule (MPS Order 151, Art. 18).

A signature is a DSSE signature (:mod:`orchestrator.record.dsse`, payload type
:data:`~orchestrator.record.dsse.PAYLOAD_TYPE`) over the canonical bytes of one record version.
Signing happens where the private key is (``rio record sign --key FILE``); only the signature
enters the database, as a :class:`~orchestrator.store.models.SignatureRow` for (run, version).

The closure rule follows python-tuf's order of checks: rebuild the canonical bytes from the
stored current version; loop over the *authorised* keys (the registry), not over the submitted
signatures; verify each key's signature; check that the key and its person were valid when it
signed; then count distinct *people* per role. The record can be closed when

* at least ``max(2, policy.signoff.officers)`` distinct officers *of the announcing organ* (or of
  a co-inspecting organ the notice names) signed, and
* where the notice entrusted a vendor, at least ``policy.signoff.technicians`` distinct
  technicians *of that vendor* signed.

One person counts once however many keys they hold; a technician never counts as an officer;
an administrator or auditor never counts. A signature list that repeats a key id is rejected
as a whole. Signatures on an earlier version do not count: they cover other bytes.

:func:`signoff_status` returns a :class:`SignoffResult` (falsy when the rule is not met, with
``why``); :func:`close` raises :class:`~orchestrator.errors.ClosureRefusedError` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import (
    AccessDeniedError,
    ClosureRefusedError,
    ConflictError,
    NotFoundError,
    StateError,
    VerificationError,
)
from orchestrator.intake.keys import load_public_key
from orchestrator.intake.notices import get_notice
from orchestrator.intake.registry import Person, Role, get_person, person_of_key
from orchestrator.record.assemble import RecordVersion, require_open, signoff_threshold
from orchestrator.record.canonical import canonical_bytes, loads_strict
from orchestrator.record.closure_rule import (
    SIGNING_ROLES,
    AuthorisedKey,
    SignoffResult,
    Threshold,
    TimedSignature,
    evaluate_signoff,
)
from orchestrator.record.dsse import (
    PAYLOAD_TYPE,
    Envelope,
    Signature,
    Signer,
    sign_payload,
    verify_signature,
)
from orchestrator.store.db import Database
from orchestrator.store.models import KeyRow, RecordRow, RunRow, SignatureRow

__all__ = [
    "AuthorisedKey",
    "SignatureInfo",
    "SignoffResult",
    "Threshold",
    "TimedSignature",
    "add_record_signature",
    "close",
    "evaluate_signoff",
    "record_envelope",
    "record_signatures",
    "sign_record",
    "signoff_status",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class SignatureInfo:
    """A stored signature with its signer."""

    run_id: str
    version: int
    key_id: str
    person: str
    role: str
    signed_at: datetime
    sig: bytes


def _authorised_keys(s: Session) -> list[AuthorisedKey]:
    keys: list[AuthorisedKey] = []
    for kid in s.scalars(select(KeyRow.key_id).order_by(KeyRow.key_id)):
        person, row = person_of_key(s, kid)
        keys.append(
            AuthorisedKey(
                key_id=row.key_id,
                public_key=load_public_key(row.public_pem.encode("ascii")),
                person=person,
                created_at=row.created_at,
                expires_at=row.expires_at,
                revoked_at=row.revoked_at,
            )
        )
    return keys


def _run(s: Session, run_id: str) -> RunRow:
    run = s.get(RunRow, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id!r} is not known")
    return run


def _threshold(s: Session, run: RunRow) -> Threshold:
    officers, technicians = signoff_threshold(s, run)
    notice = get_notice(s, run.notice_id)
    return Threshold(
        officers=officers, technicians=technicians, vendor=notice.vendor, organs=notice.organs
    )


def _current(s: Session, run_id: str) -> RecordRow:
    row = s.scalar(
        select(RecordRow).where(RecordRow.run_id == run_id).order_by(RecordRow.version.desc())
    )
    if row is None:
        raise NotFoundError(
            f"run {run_id}: no record has been assembled yet "
            "(rio record assemble stores it; so does the first signature)"
        )
    return row


def _stored_signatures(s: Session, run_id: str, version: int) -> list[TimedSignature]:
    rows = s.scalars(
        select(SignatureRow)
        .where(SignatureRow.run_id == run_id, SignatureRow.version == version)
        .order_by(SignatureRow.id)
    )
    return [
        TimedSignature(signature=Signature(keyid=r.key_id, sig=bytes(r.sig)), signed_at=r.signed_at)
        for r in rows
    ]


def _status(
    s: Session,
    run_id: str,
    signatures: Sequence[TimedSignature] | None,
    record: RecordVersion | None = None,
) -> SignoffResult:
    run = _run(s, run_id)
    row: RecordRow | RecordVersion = _current(s, run_id) if record is None else record
    threshold = _threshold(s, run)
    body = bytes(row.body)
    # Rebuild the canonical bytes from what is stored: a body that is not its own canonical
    # form was altered outside rio, and no signature over it may count.
    rebuilt = canonical_bytes(
        loads_strict(body, source=f"record {run_id} v{row.version}"),
        source=f"record {run_id} v{row.version}",
    )
    if rebuilt != body:
        why = f"record of run {run_id} v{row.version}: stored bytes are not canonical"
        return SignoffResult(
            run_id=run_id,
            version=row.version,
            threshold=threshold,
            officers_signed=(),
            technicians_signed=(),
            missing=("an intact record",),
            ignored=(),
            why=why,
        )
    submitted = (
        _stored_signatures(s, run_id, row.version) if signatures is None else list(signatures)
    )
    result = evaluate_signoff(
        run_id=run_id,
        version=row.version,
        version_created_at=row.created_at,
        payload=rebuilt,
        signatures=submitted,
        keys=_authorised_keys(s),
        threshold=threshold,
    )
    if signatures is None:
        stale = s.scalars(
            select(SignatureRow.key_id).where(
                SignatureRow.run_id == run_id, SignatureRow.version < row.version
            )
        ).all()
        if stale:
            note = (
                f"{len(stale)} signature(s) on earlier versions are void "
                f"(they cover other bytes than v{row.version})"
            )
            return SignoffResult(
                run_id=result.run_id,
                version=result.version,
                threshold=result.threshold,
                officers_signed=result.officers_signed,
                technicians_signed=result.technicians_signed,
                missing=result.missing,
                ignored=(*result.ignored, note),
                why=result.why,
            )
    return result


def signoff_status(
    db: Database,
    run_id: str,
    *,
    signatures: Sequence[TimedSignature] | None = None,
    record: RecordVersion | None = None,
) -> SignoffResult:
    """Check the closure rule against the current record version.

    Args:
        db: The database.
        run_id: The run.
        signatures: Signatures to judge instead of the stored ones (e.g. from an envelope
            brought in from elsewhere); default: those stored for the current version.
        record: The version to judge instead of the stored current one (the version 1 that
            :func:`~orchestrator.record.assemble.view_record` shows before it is stored).

    Returns:
        The result; falsy (with ``why`` and ``missing``) unless the record may be closed.

    Raises:
        NotFoundError: The run or its record does not exist.
    """
    with db.session() as s:
        return _status(s, run_id, signatures, record)


def close(db: Database, run_id: str, *, now: datetime) -> SignoffResult:
    """Close the record on its current version, if the closure rule is met.

    Args:
        db: The database.
        run_id: The run.
        now: The closing time.

    Returns:
        The (truthy) sign-off result the closure rests on.

    Raises:
        StateError: The record is already closed.
        ClosureRefusedError: The rule is not met; the message says what is missing.
        NotFoundError: The run or its record does not exist.
    """
    when = now
    with db.session() as s:
        _run(s, run_id)
        _current(s, run_id)
        row = require_open(s, run_id, "close it again")
        assert row is not None
        result = _status(s, run_id, None)
        if not result:
            raise ClosureRefusedError(f"cannot close: {result.why}")
        row.closed_at = when
        return result


def _check_signer(s: Session, run: RunRow, person: Person, kid: str, when: datetime) -> KeyRow:
    if person.role not in SIGNING_ROLES:
        raise AccessDeniedError(
            f"{person.name} is a {person.role}: only officers and technicians sign records"
        )
    if not person.active_at(when):
        raise AccessDeniedError(f"{person.name} was revoked at {person.revoked_at}")
    key = s.get(KeyRow, kid)
    if key is None or key.person_id != person.id:
        raise AccessDeniedError(f"key {kid[:16]}... is not registered to {person.name}")
    if key.revoked_at is not None and when >= key.revoked_at:
        raise AccessDeniedError(
            f"key {kid[:16]}... of {person.name} was revoked at {key.revoked_at}"
        )
    if key.expires_at is not None and when >= key.expires_at:
        raise AccessDeniedError(f"key {kid[:16]}... of {person.name} expired at {key.expires_at}")
    notice = get_notice(s, run.notice_id)
    if person.role is Role.TECHNICIAN and (notice.vendor is None or person.vendor != notice.vendor):
        raise AccessDeniedError(
            f"{person.name} is a technician of {person.vendor}, not of the vendor the "
            f"notice of run {run.id} entrusted ({notice.vendor or 'none'})"
        )
    if person.role is Role.OFFICER and person.organisation not in notice.organs:
        named = ", ".join(sorted(notice.organs)) or "none"
        raise AccessDeniedError(
            f"{person.name} is an officer of {person.organisation or '(no organisation)'}, not "
            f"of an organ notice {notice.id} names (announcing or co-inspecting: {named})"
        )
    return key


def add_record_signature(
    db: Database,
    run_id: str,
    *,
    name: str,
    signature: Signature,
    version: int | None = None,
    now: datetime,
) -> SignatureInfo:
    """Store a signature made elsewhere over the current record version.

    Args:
        db: The database.
        run_id: The run.
        name: Who signed; the signature's key must be registered to them.
        signature: The DSSE signature over the current version's bytes.
        version: The version the signer reviewed; refused if the record has moved on.
        now: The signing time stored with it.

    Returns:
        The stored signature.

    Raises:
        StateError: The record is closed, or ``version`` is not the current version.
        AccessDeniedError: The person may not sign, or the key is not theirs or not valid.
        ConflictError: This key already signed this version.
        VerificationError: The signature does not verify over the current version.
    """
    when = now
    with db.session() as s:
        run = _run(s, run_id)
        row = _current(s, run_id)
        require_open(s, run_id, "sign it")
        if version is not None and version != row.version:
            raise StateError(
                f"record of run {run_id} is now version {row.version}, not {version}: "
                "review the current version before signing"
            )
        person = get_person(s, name)
        key = _check_signer(s, run, person, signature.keyid, when)
        public = load_public_key(key.public_pem.encode("ascii"))
        if not verify_signature(PAYLOAD_TYPE, bytes(row.body), signature, public):
            raise VerificationError(
                f"signature by {name} (key {signature.keyid[:16]}...) does not verify over the "
                f"record of run {run_id} v{row.version}"
            )
        exists = s.scalar(
            select(SignatureRow).where(
                SignatureRow.run_id == run_id,
                SignatureRow.version == row.version,
                SignatureRow.key_id == signature.keyid,
            )
        )
        if exists is not None:
            raise ConflictError(
                f"key {signature.keyid[:16]}... already signed the record of run {run_id} "
                f"v{row.version}"
            )
        s.add(
            SignatureRow(
                run_id=run_id,
                version=row.version,
                key_id=signature.keyid,
                sig=signature.sig,
                signed_at=when,
            )
        )
        return SignatureInfo(
            run_id=run_id,
            version=row.version,
            key_id=signature.keyid,
            person=person.name,
            role=str(person.role),
            signed_at=when,
            sig=signature.sig,
        )


def sign_record(
    db: Database,
    run_id: str,
    *,
    name: str,
    signer: Signer,
    version: int | None = None,
    now: datetime,
) -> SignatureInfo:
    """Sign the current record version locally and store the signature.

    The private key stays with ``signer``; only the signature is stored.

    Args:
        db: The database.
        run_id: The run.
        name: Who signs; ``signer``'s key must be registered to them.
        signer: The signer (e.g. :class:`~orchestrator.record.dsse.Ed25519Signer`).
        version: The version the signer reviewed, if they want that checked.
        now: The signing time.

    Returns:
        The stored signature.

    Raises:
        StateError, AccessDeniedError, ConflictError: As :func:`add_record_signature`.
    """
    with db.session() as s:
        row = _current(s, run_id)
        body, current = bytes(row.body), row.version
    signature = sign_payload(PAYLOAD_TYPE, body, signer)
    return add_record_signature(
        db,
        run_id,
        name=name,
        signature=signature,
        version=current if version is None else version,
        now=now,
    )


def record_signatures(db: Database, run_id: str, version: int) -> list[SignatureInfo]:
    """Return the stored signatures on one record version, ordered by key id."""
    with db.session() as s:
        rows = s.scalars(
            select(SignatureRow)
            .where(SignatureRow.run_id == run_id, SignatureRow.version == version)
            .order_by(SignatureRow.key_id)
        ).all()
        out: list[SignatureInfo] = []
        for r in rows:
            try:
                person, _ = person_of_key(s, r.key_id)
                who, role = person.name, str(person.role)
            except NotFoundError:
                who, role = "(unknown key)", "unknown"
            out.append(
                SignatureInfo(
                    run_id=run_id,
                    version=version,
                    key_id=r.key_id,
                    person=who,
                    role=role,
                    signed_at=r.signed_at,
                    sig=bytes(r.sig),
                )
            )
        return out


def record_envelope(db: Database, record: RecordVersion) -> Envelope:
    """Return the DSSE envelope of a record version with its stored signatures."""
    signatures = tuple(
        Signature(keyid=info.key_id, sig=info.sig)
        for info in record_signatures(db, record.run_id, record.version)
    )
    return Envelope(payload_type=PAYLOAD_TYPE, payload=record.body, signatures=signatures)
