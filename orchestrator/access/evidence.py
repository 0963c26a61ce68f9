"""Reading confidential evidence: authorised, decrypted, and logged at every attempt.

Every attempt to read a finding's evidence leaves an :class:`~orchestrator.store.models.AccessEntry`
(who, what, when, why, allowed), refused attempts included: the entry is committed in its own
transaction *before* the refusal is raised, and before any plaintext is returned, so a failed
log write means no disclosure. The access log is append-only in the database itself.

Messages and log entries name the finding, the run and the person, never the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from orchestrator.access.roles import Action, authorize, decide
from orchestrator.errors import AccessDeniedError, InputError, NotFoundError
from orchestrator.intake.registry import Person, Role, get_person
from orchestrator.store.evidence import cipher_for
from orchestrator.store.models import AccessEntry, EvidenceGrant, FindingRow

if TYPE_CHECKING:
    from orchestrator.context import Rio

__all__ = [
    "EVIDENCE_COLUMN",
    "EVIDENCE_TABLE",
    "AccessRecord",
    "GrantInfo",
    "access_log",
    "grant_evidence",
    "log_access",
    "read_evidence",
    "refuse_logged",
    "revoke_evidence_grant",
]

EVIDENCE_TABLE = "findings"
EVIDENCE_COLUMN = "evidence"
_MAX_REASON = 1000  # a reason is a sentence; a longer one would only bloat the append-only log


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessRecord:
    """One line of the access log."""

    id: int
    at: datetime
    person: str
    action: str
    run_id: str | None
    subject: str
    reason: str
    allowed: bool

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (the time as ISO 8601)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "person": self.person,
            "action": self.action,
            "run": self.run_id,
            "subject": self.subject,
            "reason": self.reason,
            "allowed": self.allowed,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class GrantInfo:
    """An evidence grant: which auditor may read which run's evidence, granted by whom."""

    run_id: str
    auditor: str
    granted_by: str
    granted_at: datetime
    created: bool


def _clean_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise InputError("reason: say why the evidence is needed (--reason)")
    return text[:_MAX_REASON]


def log_access(
    rio: Rio,
    *,
    person: str,
    action: Action,
    run_id: str | None,
    subject: str,
    reason: str,
    allowed: bool,
    now: datetime | None = None,
) -> None:
    """Append one entry to the access log in its own transaction (committed on return)."""
    with rio.db.session() as s:
        s.add(
            AccessEntry(
                at=now or rio.clock.now(),
                person=person,
                action=action.value,
                run_id=run_id,
                subject=subject,
                reason=reason[: _MAX_REASON * 2],
                allowed=allowed,
            )
        )


def refuse_logged(
    rio: Rio,
    error: Exception,
    *,
    person: str,
    action: Action,
    run_id: str | None,
    subject: str,
    reason: str,
    now: datetime | None = None,
) -> NoReturn:
    """Log a refused attempt, then raise ``error``: the log never misses a refusal."""
    log_access(
        rio,
        person=person,
        action=action,
        run_id=run_id,
        subject=subject,
        reason=reason,
        allowed=False,
        now=now,
    )
    raise error


def read_evidence(rio: Rio, person: Person, finding_id: str, *, reason: str) -> bytes:
    """Decrypt one finding's evidence for ``person``, logging the attempt whatever its outcome.

    Args:
        rio: The opened home (its master key opens the run's data key).
        person: Who reads (from :func:`~orchestrator.access.identity.authenticate`).
        finding_id: The finding.
        reason: Why they need it; stored in the access log.

    Returns:
        The evidence bytes.

    Raises:
        InputError: no reason given.
        NotFoundError: the finding does not exist, or has no evidence (never recorded, or
            purged); the attempt is logged.
        AccessDeniedError: the role matrix forbids it; the attempt is logged first.
        DecryptionError: wrong master key, tampered or moved ciphertext (the message names the
            row, never the content).
    """
    why = _clean_reason(reason)
    subject = f"finding {finding_id}"
    now = rio.clock.now()
    with rio.db.session() as s:
        row = s.get(FindingRow, finding_id)
        run_id = row.run_id if row is not None else None
        verdict = (
            decide(s, person, Action.READ_EVIDENCE, run_id=run_id, now=now)
            if run_id is not None
            else None
        )
        blob = bytes(row.evidence) if row is not None and row.evidence is not None else None
    if verdict is None:
        refuse_logged(
            rio,
            NotFoundError(f"finding {finding_id!r} is not known"),
            person=person.name,
            action=Action.READ_EVIDENCE,
            run_id=None,
            subject=subject,
            reason=f"{why} [refused: no such finding]",
            now=now,
        )
    if not verdict:
        refuse_logged(
            rio,
            AccessDeniedError(f"{verdict.message} (finding {finding_id}; attempt logged)"),
            person=person.name,
            action=Action.READ_EVIDENCE,
            run_id=run_id,
            subject=subject,
            reason=f"{why} [refused: {verdict.why}]",
            now=now,
        )
    # Logged before decryption: if the entry cannot be written, nothing is disclosed.
    log_access(
        rio,
        person=person.name,
        action=Action.READ_EVIDENCE,
        run_id=run_id,
        subject=subject,
        reason=why,
        allowed=True,
        now=now,
    )
    if blob is None:
        raise NotFoundError(
            f"finding {finding_id} of run {run_id} has no evidence (none recorded, or purged)"
        )
    return cipher_for(rio).open(blob, table=EVIDENCE_TABLE, row=finding_id, column=EVIDENCE_COLUMN)


def _valid_grant(run_id: str, auditor_id: int, when: datetime) -> Any:
    """SQL: a grant for this run and auditor in force at ``when`` (not expired, not revoked)."""
    return (
        select(EvidenceGrant)
        .where(EvidenceGrant.run_id == run_id, EvidenceGrant.auditor_id == auditor_id)
        .where(or_(EvidenceGrant.expires_at.is_(None), EvidenceGrant.expires_at > when))
        .where(or_(EvidenceGrant.revoked_at.is_(None), EvidenceGrant.revoked_at > when))
    )


def grant_evidence(
    rio: Rio,
    officer: Person,
    auditor: Person | str,
    run_id: str,
    *,
    now: datetime | None = None,
    expires_at: datetime | None = None,
) -> GrantInfo:
    """Let an auditor read a run's evidence; the grant (or its refusal) is logged.

    Args:
        rio: The opened home.
        officer: The granting officer.
        auditor: The auditor (a person or a registered name).
        run_id: The run whose evidence is opened to the auditor.
        now: The time of the grant (default: the app's clock).
        expires_at: When the grant ends (default: until revoked).

    Returns:
        The grant; ``created`` is False when the auditor already held one in force.

    Raises:
        AccessDeniedError: ``officer`` may not grant (logged first).
        InputError: the grantee is not an active auditor.
        NotFoundError: unknown run or auditor.
    """
    when = now or rio.clock.now()
    with rio.db.session() as s:
        target = get_person(s, auditor) if isinstance(auditor, str) else auditor
        verdict = decide(s, officer, Action.GRANT_EVIDENCE, run_id=run_id, now=when)
    subject = f"evidence of run {run_id} to {target.name}"
    if not verdict:
        refuse_logged(
            rio,
            AccessDeniedError(verdict.message),
            person=officer.name,
            action=Action.GRANT_EVIDENCE,
            run_id=run_id,
            subject=subject,
            reason=f"[refused: {verdict.why}]",
            now=when,
        )
    if target.role is not Role.AUDITOR:
        raise InputError(
            f"auditor: {target.name} is a {target.role.value}; evidence grants are for auditors"
        )
    if not target.active_at(when):
        raise InputError(f"auditor: {target.name} was revoked at {target.revoked_at}")
    with rio.db.session() as s:
        existing = s.scalar(_valid_grant(run_id, target.id, when))
        if existing is not None:
            return GrantInfo(
                run_id=run_id,
                auditor=target.name,
                granted_by=officer.name,
                granted_at=existing.granted_at,
                created=False,
            )
        # Re-checked inside the writing transaction, so a revocation in between still wins.
        authorize(s, officer, Action.GRANT_EVIDENCE, run_id=run_id, now=when)
        s.add(
            EvidenceGrant(
                run_id=run_id,
                auditor_id=target.id,
                granted_by=officer.id,
                granted_at=when,
                expires_at=expires_at,
            )
        )
        s.add(
            AccessEntry(
                at=when,
                person=officer.name,
                action=Action.GRANT_EVIDENCE.value,
                run_id=run_id,
                subject=subject,
                reason="evidence grant",
                allowed=True,
            )
        )
    return GrantInfo(
        run_id=run_id, auditor=target.name, granted_by=officer.name, granted_at=when, created=True
    )


def access_log(
    s: Session, person: str | None = None, run_id: str | None = None
) -> list[AccessRecord]:
    """The access log, oldest first, optionally for one person (by name) and/or one run.

    This is a plain query: interfaces authorise the reader (:attr:`Action.READ_LEDGER`) first.
    """
    query = select(AccessEntry).order_by(AccessEntry.at, AccessEntry.id)
    if person is not None:
        query = query.where(AccessEntry.person == person)
    if run_id is not None:
        query = query.where(AccessEntry.run_id == run_id)
    return [
        AccessRecord(
            id=e.id,
            at=e.at,
            person=e.person,
            action=e.action,
            run_id=e.run_id,
            subject=e.subject,
            reason=e.reason,
            allowed=e.allowed,
        )
        for e in s.scalars(query)
    ]


def revoke_evidence_grant(
    rio: Rio, officer: Person, auditor: str, run_id: str, *, now: datetime | None = None
) -> int:
    """End an auditor's grants for a run from now on; returns how many were in force (logged)."""
    when = now or rio.clock.now()
    with rio.db.session() as s:
        authorize(s, officer, Action.GRANT_EVIDENCE, run_id=run_id, now=when)
        target = get_person(s, auditor)
        grants = list(s.scalars(_valid_grant(run_id, target.id, when)))
        for grant in grants:
            grant.revoked_at = when
        s.add(
            AccessEntry(
                at=when,
                person=officer.name,
                action=Action.GRANT_EVIDENCE.value,
                run_id=run_id,
                subject=f"evidence of run {run_id} from {target.name}",
                reason="evidence grant revoked",
                allowed=True,
            )
        )
    return len(grants)
