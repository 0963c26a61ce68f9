"""The remote inspection record as operations: view, what changed since the previous version,
print, submit a signature made elsewhere, close.

Each takes the acting person, authorises itself against :mod:`orchestrator.access.roles` and
returns frozen results; the record code (:mod:`orchestrator.record.signoff`) keeps the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.documents._render import Format
from orchestrator.errors import NotFoundError
from orchestrator.intake.registry import Person
from orchestrator.record import assemble as _assemble
from orchestrator.record import signoff as _signoff
from orchestrator.record.assemble import RecordVersion, current_record, ensure_record, get_record
from orchestrator.record.diff import RecordDiff, diff_documents
from orchestrator.record.dsse import PAYLOAD_TYPE, Signature, Signer
from orchestrator.record.signoff import SignatureInfo, SignoffResult

if TYPE_CHECKING:
    from orchestrator.record.archive import ArchiveSummary

__all__ = [
    "FindingEntry",
    "RecordView",
    "assemble",
    "close_record",
    "export_run_archive",
    "list_findings",
    "print_record",
    "record_diff",
    "sign_record",
    "submit_signature",
    "view_record",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordView:
    """The current record version, who signed it and what closure still needs."""

    run_id: str
    version: int
    payload: bytes
    payload_type: str
    document: dict[str, Any]
    closed_at: datetime | None
    signatures: tuple[SignatureInfo, ...]
    status: SignoffResult


def view_record(rio: Rio, person: Person, run_id: str, *, now: datetime) -> RecordView:
    """The run's current record, read only (for a sealed run with none stored yet, version 1
    as the first signature or order will store it: see
    :func:`~orchestrator.record.assemble.view_record`).

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        NotFoundError: No such run.
        StateError: The run is not sealed yet.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
    record = _assemble.view_record(rio.db, run_id, checkpoint_key=rio.verify_key)
    status = _signoff.signoff_status(rio.db, run_id, record=record)
    signed = _signoff.record_signatures(rio.db, run_id, record.version)
    return RecordView(
        run_id=run_id,
        version=record.version,
        payload=record.body,
        payload_type=PAYLOAD_TYPE,
        document=record.document(),
        closed_at=record.closed_at,
        signatures=tuple(signed),
        status=status,
    )


def submit_signature(
    rio: Rio,
    person: Person,
    run_id: str,
    signature: Signature,
    *,
    version: int,
    now: datetime,
) -> SignatureInfo:
    """Store a signature the person made elsewhere (their browser) over the current version.

    Raises:
        AccessDeniedError: The person may not sign, or the key is not theirs or not valid.
        StateError: The record is closed or has moved past ``version``.
        ConflictError: The key already signed this version.
        VerificationError: The signature does not verify over the current version's bytes.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.SIGN_RECORD, run_id=run_id, now=now)
    ensure_record(rio.db, run_id, checkpoint_key=rio.verify_key)
    return _signoff.add_record_signature(
        rio.db, run_id, name=person.name, signature=signature, version=version, now=now
    )


def close_record(rio: Rio, person: Person, run_id: str, *, now: datetime) -> SignoffResult:
    """Close the record on its current version (an officer), if the sign-off rule is met.

    Raises:
        AccessDeniedError: The person may not close the run's record.
        ClosureRefusedError: Signatures are missing; the message says whose.
        StateError: The record is already closed.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.CLOSE_RECORD, run_id=run_id, now=now)
    ensure_record(rio.db, run_id, checkpoint_key=rio.verify_key)
    return _signoff.close(rio.db, run_id, now=now)


def record_diff(
    rio: Rio, person: Person, run_id: str, *, version: int | None = None, now: datetime
) -> RecordDiff:
    """What version ``version`` (default: the current one) changed since the version before it.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        NotFoundError: No such run, or no such version.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
    if version is None:
        try:
            newer = current_record(rio.db, run_id)
        except NotFoundError:
            # Nothing stored yet: a reader is shown the version 1 to come, the first one.
            return RecordDiff(run_id=run_id, version=1, since=None, changes=())
    else:
        newer = get_record(rio.db, run_id, version)
    if newer.version == 1:
        return RecordDiff(run_id=run_id, version=1, since=None, changes=())
    older = get_record(rio.db, run_id, newer.version - 1)
    return RecordDiff(
        run_id=run_id,
        version=newer.version,
        since=older.version,
        changes=diff_documents(older.document(), newer.document()),
    )


def print_record(rio: Rio, person: Person, run_id: str, fmt: Format) -> bytes:
    """The record as a document to sign and file (Art. 18), HTML or PDF: its fields, findings,
    orders, who signed which version, and the digest the signatures cover.

    Raises:
        AccessDeniedError: The person may not read the run's record.
        NotFoundError: No such run, or no record yet.
        ToolError: PDF was asked for and cannot be laid out here.
    """
    from orchestrator.documents.record_print import print_record as _print

    return _print(rio, person, run_id, fmt)


@dataclass(frozen=True, kw_only=True, slots=True)
class FindingEntry:
    """One finding of a run as listed (never its evidence: only whether it has some)."""

    id: str
    severity: str
    kind: str
    rule: str
    target: str
    ip: str
    port: int | None
    title: str
    has_evidence: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "kind": self.kind,
            "rule": self.rule,
            "target": self.target,
            "ip": self.ip,
            "port": self.port,
            "title": self.title,
            "has_evidence": self.has_evidence,
        }


def list_findings(
    rio: Rio, person: Person, run_id: str, *, rule: str | None = None
) -> tuple[FindingEntry, ...]:
    """The run's findings (of one rule, if given), in the order the run made them.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
    """
    from sqlalchemy import select

    from orchestrator.store.models import FindingRow

    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=rio.clock.now())
        query = select(FindingRow).where(FindingRow.run_id == run_id)
        if rule is not None:
            query = query.where(FindingRow.rule == rule)
        return tuple(
            FindingEntry(
                id=f.id,
                severity=f.severity,
                kind=f.kind,
                rule=f.rule,
                target=f.target,
                ip=f.ip,
                port=f.port,
                title=f.title,
                has_evidence=f.evidence is not None,
            )
            for f in s.scalars(query.order_by(FindingRow.leaf_seq, FindingRow.id))
        )


def sign_record(
    rio: Rio,
    person: Person,
    run_id: str,
    signer: Signer,
    *,
    version: int | None = None,
    now: datetime,
) -> SignatureInfo:
    """Sign the current version here with the person's own key; only the signature is stored.

    Raises:
        AccessDeniedError: The person may not sign, or the key is not theirs or not valid.
        StateError: The record is closed or has moved past ``version``.
        ConflictError: The key already signed this version.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.SIGN_RECORD, run_id=run_id, now=now)
    ensure_record(rio.db, run_id, checkpoint_key=rio.verify_key)
    return _signoff.sign_record(
        rio.db, run_id, name=person.name, signer=signer, version=version, now=now
    )


def assemble(rio: Rio, person: Person, run_id: str, *, now: datetime) -> RecordVersion:
    """Assemble the record again (an officer); changed content becomes a new version, which
    voids the signatures of the one before.

    Raises:
        AccessDeniedError: The person may not close the run's record.
        StateError: The run is not sealed, or the record is closed and its content changed.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.CLOSE_RECORD, run_id=run_id, now=now)
    return _assemble.assemble_record(rio.db, run_id, checkpoint_key=rio.verify_key, now=now)


def export_run_archive(
    rio: Rio, person: Person, run_id: str, out: Path, *, now: datetime
) -> ArchiveSummary:
    """Write the closed run's archive (docs/archive-format.md) to ``out``, atomically.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        StateError: The record is not closed.
    """
    from orchestrator.record.archive import export_archive

    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
    return export_archive(rio.db, run_id, out, signing_key=rio.signing_key, now=now)
