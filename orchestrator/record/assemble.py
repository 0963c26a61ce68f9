"""Assemble the remote inspection record of a sealed run (MPS Order 151, Art. 18).

The record is one canonical JSON document (RFC 8785, :mod:`orchestrator.record.canonical`)
in the form ``docs/archive-format.md`` describes: the notice and the hashes of the scope and
policy as announced, the inspected object, the vendor and technicians, the time span, probe
counts taken from the ledger's leaves, the final ledger checkpoint, the findings with their
digests, the conclusions, the rectification orders and the sign-off thresholds.

Every stored version is a :class:`~orchestrator.store.models.RecordRow`. Assembling again
when nothing changed returns the current version; any change is a new version, and since
signatures cover a version's bytes, it leaves every earlier signature behind. A closed record
is final: assembling it again raises :class:`~orchestrator.errors.StateError`.

Conclusions: the catalogue calls a finding a *risk* or a *violation*; whether a risk amounts to
a violation is the officers' judgement, which they express by ordering rectification (Art. 19).
So a finding of kind ``violation``, or one named by a rectification order, is listed under
``violations`` with the order ids; every other finding is a ``risk`` with its guidance.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.errors import NotFoundError, StateError, VerificationError
from orchestrator.intake.notices import get_notice
from orchestrator.ledger.bodies import IntentBody, OutcomeBody
from orchestrator.ledger.checkpoint import run_origin, verify_checkpoint
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME, read_checkpoints, read_leaves
from orchestrator.ledger.merkle import MerkleAccumulator, leaf_hash
from orchestrator.ledger.tally import RefusalTally
from orchestrator.record.canonical import canonical_bytes, loads_strict, ns_timestamp
from orchestrator.run.state import RunState
from orchestrator.store.db import Database
from orchestrator.store.models import (
    FindingRow,
    InspectedObjectRow,
    NoticeRow,
    PersonRow,
    RecordRow,
    RectificationRow,
    RunRow,
    VendorRow,
)

__all__ = [
    "MIN_OFFICERS",
    "RECORD_FORMAT",
    "RecordVersion",
    "assemble_record",
    "current_record",
    "ensure_record",
    "finding_location",
    "get_record",
    "require_open",
    "signoff_threshold",
    "view_record",
]

RECORD_FORMAT = "rio.record/v1"

MIN_OFFICERS = 2
"""Art. 18: two or more officers sign, whatever a policy says."""

# Fields that change with every version without being an edit of the content.
_BOOKKEEPING = ("version", "created_at")


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordVersion:
    """One stored version of a run's record.

    Attributes:
        run_id: The run.
        version: 1, 2, ...; each edit adds one.
        body: The canonical JSON bytes (what signatures cover).
        created_at: When this version was stored.
        closed_at: When the record was closed on this version, else None.
    """

    run_id: str
    version: int
    body: bytes
    created_at: datetime
    closed_at: datetime | None

    @property
    def closed(self) -> bool:
        """True once the record is closed (final)."""
        return self.closed_at is not None

    def document(self) -> dict[str, Any]:
        """Parse the body strictly (see :func:`~orchestrator.record.canonical.loads_strict`)."""
        doc = loads_strict(self.body, source=f"record {self.run_id} v{self.version}")
        if not isinstance(doc, dict):  # pragma: no cover - we only ever store objects
            raise VerificationError(f"record {self.run_id} v{self.version}: not a JSON object")
        return doc


def _version(row: RecordRow) -> RecordVersion:
    return RecordVersion(
        run_id=row.run_id,
        version=row.version,
        body=bytes(row.body),
        created_at=row.created_at,
        closed_at=row.closed_at,
    )


def _current_row(s: Session, run_id: str) -> RecordRow | None:
    return s.scalar(
        select(RecordRow).where(RecordRow.run_id == run_id).order_by(RecordRow.version.desc())
    )


def current_record(db: Database, run_id: str) -> RecordVersion:
    """Return the newest version of a run's record.

    Raises:
        NotFoundError: The run has no record stored yet (``rio record assemble`` or the first
            signature stores one; :func:`view_record` shows it before).
    """
    with db.session() as s:
        row = _current_row(s, run_id)
        if row is None:
            raise NotFoundError(f"run {run_id}: no record has been assembled yet")
        return _version(row)


def get_record(db: Database, run_id: str, version: int) -> RecordVersion:
    """Return one version of a run's record.

    Raises:
        NotFoundError: No such version.
    """
    with db.session() as s:
        row = s.get(RecordRow, (run_id, version))
        if row is None:
            raise NotFoundError(f"run {run_id}: record version {version} does not exist")
        return _version(row)


def require_open(s: Session, run_id: str, action: str) -> RecordRow | None:
    """Raise StateError if the run's record is closed; return its current row (or None).

    Args:
        s: An open session.
        run_id: The run.
        action: What was asked, for the message (``"sign"``, ``"order rectification"``).
    """
    row = _current_row(s, run_id)
    if row is not None and row.closed_at is not None:
        raise StateError(
            f"record of run {run_id} was closed at {row.closed_at.isoformat()} on version "
            f"{row.version}: cannot {action} (a closed record is final)"
        )
    return row


def signoff_threshold(s: Session, run: RunRow) -> tuple[int, int]:
    """Return (officers, technicians) required to close ``run``'s record.

    Officers: the policy's number, never fewer than :data:`MIN_OFFICERS`. Technicians: the
    policy's number where the notice entrusted a vendor, else 0.
    """
    notice = get_notice(s, run.notice_id)
    signoff = notice.policy.signoff
    officers = max(MIN_OFFICERS, signoff.officers)
    technicians = signoff.technicians if notice.vendor is not None else 0
    return officers, technicians


@dataclass(frozen=True, kw_only=True, slots=True)
class _LedgerFacts:
    size: int
    root: bytes
    first_at: str | None
    last_at: str | None
    counts: dict[str, Any]


def _ledger_facts(db: Database, run_id: str) -> _LedgerFacts:
    """Read every leaf once: counts by kind, outcome and probe, the span, and the root."""
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    probes: Counter[str] = Counter()
    tree = MerkleAccumulator()
    first_at: str | None = None
    last_at: str | None = None
    refusals = RefusalTally()
    for leaf in read_leaves(db, run_id):
        refusals.add(leaf)
        tree.append(leaf_hash(leaf.raw))
        kinds[leaf.kind] += 1
        first_at = first_at or leaf.at
        last_at = leaf.at
        if leaf.kind == "intent":
            probes[IntentBody.from_json(leaf.data).probe] += 1
        elif leaf.kind == "outcome":
            outcomes[OutcomeBody.from_json(leaf.data).outcome.value] += 1
    counts: dict[str, Any] = {
        "leaves": tree.size,
        "intents": kinds["intent"],
        "refusals": kinds["refusal"],
        "refused_by_reason": refusals.counts(),
        "outcomes": dict(sorted(outcomes.items())),
        "probes": dict(sorted(probes.items())),
        "health": kinds["health"],
        "kills": kinds["kill"],
    }
    return _LedgerFacts(
        size=tree.size, root=tree.root(), first_at=first_at, last_at=last_at, counts=counts
    )


def _ledger_section(
    db: Database, run_id: str, facts: _LedgerFacts, checkpoint_key: Ed25519PublicKey | None
) -> dict[str, Any]:
    checkpoints = read_checkpoints(db, run_id)
    if not checkpoints:
        raise StateError(f"run {run_id}: the ledger has no checkpoint (was the run sealed?)")
    final = checkpoints[-1]
    if final.size != facts.size:
        raise StateError(
            f"run {run_id}: the final checkpoint covers {final.size} leaves but the ledger "
            f"holds {facts.size}"
        )
    # The record vouches for the ledger, so the stored root must be the root of the leaves.
    if final.root != facts.root:
        raise VerificationError(
            f"run {run_id}: the final checkpoint's root does not match the stored leaves"
        )
    if checkpoint_key is not None:
        cp = verify_checkpoint(
            final.note, checkpoint_key, CHECKPOINT_KEY_NAME, origin=run_origin(run_id)
        )
        if cp.size != final.size or cp.root != final.root:
            raise VerificationError(
                f"run {run_id}: the final checkpoint note disagrees with its row"
            )
    return {
        "origin": run_origin(run_id),
        "size": final.size,
        "root": base64.b64encode(final.root).decode("ascii"),
        "checkpoint": final.note,
    }


def finding_location(f: FindingRow) -> dict[str, Any]:
    """Where a stored finding was first made (the record's and the archive's ``location``)."""
    return {
        "target": f.target,
        "ip": f.ip,
        "port": f.port,
        "transport": f.transport,
        "scheme": f.scheme,
        "server_name": f.server_name,
        "path": f.path,
    }


def _finding_entry(f: FindingRow) -> dict[str, Any]:
    return {
        "id": f.id,
        "key": f.key,
        "rule": f.rule,
        "severity": f.severity,
        "digest": f.digest,
        "location": finding_location(f),
        "sightings": [dict(x) for x in f.sightings],
    }


def _conclusions(
    findings: list[FindingRow], orders: list[RectificationRow]
) -> dict[str, list[dict[str, Any]]]:
    ordered: dict[str, list[int]] = {}
    for order in orders:
        for fid in order.findings:
            ordered.setdefault(fid, []).append(order.id)
    risks: list[dict[str, Any]] = []
    violations: list[dict[str, Any]] = []
    for f in findings:
        base = {
            "finding": f.id,
            "key": f.key,
            "rule": f.rule,
            "title": f.title,
            "severity": f.severity,
        }
        if f.kind == "violation" or f.id in ordered:
            violations.append({**base, "rectification": sorted(ordered.get(f.id, []))})
        else:
            risks.append({**base, "guidance": f.remediation})
    return {"risks": risks, "violations": violations}


def _document(
    s: Session, run: RunRow, facts: _LedgerFacts, ledger: dict[str, Any]
) -> dict[str, Any]:
    notice = get_notice(s, run.notice_id)
    obj = s.get(InspectedObjectRow, notice.object_id)
    if obj is None:
        raise NotFoundError(f"notice {notice.id}: inspected object {notice.object_id!r} is unknown")
    # The run names the vendor that worked on it; a runner that left it empty ran under the
    # notice's entrustment.
    vendor_id = run.vendor_id
    if vendor_id is None:
        notice_row = s.get(NoticeRow, run.notice_id)
        vendor_id = notice_row.vendor_id if notice_row is not None else None
    vendor_row = s.get(VendorRow, vendor_id) if vendor_id is not None else None
    technician = s.get(PersonRow, run.technician_id)
    if technician is None:
        raise NotFoundError(f"run {run.id}: technician #{run.technician_id} is not registered")
    findings = list(
        s.scalars(
            select(FindingRow)
            .where(FindingRow.run_id == run.id)
            .order_by(FindingRow.leaf_seq, FindingRow.id)
        )
    )
    orders = list(
        s.scalars(
            select(RectificationRow)
            .where(RectificationRow.run_id == run.id)
            .order_by(RectificationRow.id)
        )
    )
    start = facts.first_at or (ns_timestamp(run.started_at) if run.started_at else None)
    end = facts.last_at or (ns_timestamp(run.ended_at) if run.ended_at else None)
    officers, technicians = signoff_threshold(s, run)
    return {
        "format": RECORD_FORMAT,
        "run": run.id,
        "notice": {
            "id": notice.id,
            "announced_at": ns_timestamp(notice.announced_at),
            "scope_sha256": notice.scope_sha256,
            "policy_sha256": notice.policy_sha256,
        },
        "object": {
            "id": obj.id,
            "name": obj.name,
            "services": list(obj.services),
            "key_supervision": obj.key_supervision,
        },
        "vendor": (
            {"name": vendor_row.name, "organisation": vendor_row.organisation}
            if vendor_row is not None
            else None
        ),
        "technicians": [technician.name],
        "span": {"start": start, "end": end},
        "counts": facts.counts,
        "ledger": ledger,
        "findings": [_finding_entry(f) for f in findings],
        "conclusions": _conclusions(findings, orders),
        "rectifications": [
            {
                "id": o.id,
                "findings": list(o.findings),
                "ordered_at": ns_timestamp(o.ordered_at),
                "deadline": o.deadline.isoformat(),
                # Only when it is: records of authoritative deadlines keep their old bytes.
                **({"deadline_provisional": True} if o.provisional else {}),
            }
            for o in orders
        ],
        "signoff": {"officers": officers, "technicians": technicians},
    }


def _content(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _BOOKKEEPING}


def _require_sealed(db: Database, run_id: str) -> datetime:
    """The sealed run's end (UTC), the instant its record's content became final.

    Raises:
        NotFoundError: No such run.
        StateError: The run is not sealed.
    """
    with db.session() as s:
        run = s.get(RunRow, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} is not known")
        if RunState(run.state) is not RunState.SEALED:
            raise StateError(
                f"run {run_id} is {run.state}: a record can be assembled only for a sealed run"
            )
        end = run.ended_at or run.created_at
    return end if end.tzinfo is not None else end.replace(tzinfo=UTC)


def assemble_record(
    db: Database,
    run_id: str,
    *,
    now: datetime,
    checkpoint_key: Ed25519PublicKey | None = None,
) -> RecordVersion:
    """Assemble the record of a sealed run and store it as a new version if it changed.

    Args:
        db: The database.
        run_id: The run; it must be SEALED.
        now: The version's ``created_at``.
        checkpoint_key: When given (the orchestrator's public key), the final checkpoint's
            signature is verified before the record vouches for it.

    Returns:
        The new version, or the current one when the content is unchanged.

    Raises:
        NotFoundError: The run (or its notice, object, technician) is unknown.
        StateError: The run is not sealed, its ledger has no final checkpoint covering every
            leaf, or the record is already closed and the content changed.
        VerificationError: The final checkpoint does not match the stored leaves.
    """
    when = now
    _require_sealed(db, run_id)
    # The run is sealed, so its leaves no longer change: reading them outside the write
    # transaction below cannot miss anything.
    facts = _ledger_facts(db, run_id)
    ledger = _ledger_section(db, run_id, facts, checkpoint_key)
    with db.session() as s:
        run = s.get(RunRow, run_id)
        assert run is not None
        current = _current_row(s, run_id)
        content = _document(s, run, facts, ledger)
        if current is not None:
            previous = loads_strict(
                bytes(current.body), source=f"record {run_id} v{current.version}"
            )
            if _content(previous) == content:
                return _version(current)
            if current.closed_at is not None:
                require_open(s, run_id, "change the record")
        version = 1 if current is None else current.version + 1
        doc = {**content, "version": version, "created_at": ns_timestamp(when)}
        body = canonical_bytes(doc, source=f"record {run_id} v{version}")
        row = RecordRow(run_id=run_id, version=version, body=body, created_at=when, closed_at=None)
        s.add(row)
        s.flush()
        return _version(row)


def ensure_record(
    db: Database,
    run_id: str,
    *,
    now: datetime | None = None,
    checkpoint_key: Ed25519PublicKey | None = None,
) -> RecordVersion:
    """Return the current version, storing version 1 first if the run has no record yet.

    Version 1 stored here is exactly :func:`view_record`'s: created at the run's end (``now``
    dates it otherwise; the write paths leave it out), so a signature made over what a reader
    was shown verifies.
    """
    if _has_record(db, run_id):
        return current_record(db, run_id)
    when = now or _require_sealed(db, run_id)
    return assemble_record(db, run_id, now=when, checkpoint_key=checkpoint_key)


def view_record(
    db: Database, run_id: str, *, checkpoint_key: Ed25519PublicKey | None = None
) -> RecordVersion:
    """The current version, read only: for a sealed run with no record stored yet, version 1
    as the first write (a signature, closing, an order, ``rio record assemble``) will store
    it, byte for byte, without storing it.

    Raises:
        NotFoundError: No such run.
        StateError: The run is not sealed (and has no record).
        VerificationError: The final checkpoint does not match the stored leaves.
    """
    if _has_record(db, run_id):
        return current_record(db, run_id)
    when = _require_sealed(db, run_id)
    facts = _ledger_facts(db, run_id)
    ledger = _ledger_section(db, run_id, facts, checkpoint_key)
    with db.session() as s:
        run = s.get(RunRow, run_id)
        assert run is not None
        content = _document(s, run, facts, ledger)
    doc = {**content, "version": 1, "created_at": ns_timestamp(when)}
    body = canonical_bytes(doc, source=f"record {run_id} v1")
    return RecordVersion(run_id=run_id, version=1, body=body, created_at=when, closed_at=None)


def _has_record(db: Database, run_id: str) -> bool:
    with db.session() as s:
        count = s.scalar(
            select(func.count()).select_from(RecordRow).where(RecordRow.run_id == run_id)
        )
    return bool(count)
