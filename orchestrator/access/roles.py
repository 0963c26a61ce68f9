"""Who may do what: the one place every interface asks (MPS Order 151, Art. 5 and 17).

Deny by default. :func:`authorize` raises :class:`~orchestrator.errors.AccessDeniedError` with a
sentence that names the person, their role, the action, the object and why; :func:`decide`
returns the same verdict without raising, for callers that must log refusals before raising.
:func:`visible_runs` and :func:`visible_notices` return the queries a person may list.

The matrix (``own`` = a run or notice whose notice entrusts the technician's vendor)::

    action            officer   technician   auditor        admin
    LAUNCH_RUN        no-vendor  own          -              -
    VIEW_RUN          all       own           all            -
    KILL_RUN          all       own           -              -
    SIGN_RECORD       all       own (co-sign) -              -
    CLOSE_RECORD      all       -             -              -
    READ_EVIDENCE     all       own (policy)  with a grant   -
    GRANT_EVIDENCE    all       -             -              -
    MANAGE_REGISTRY   -         -             -              yes
    READ_LEDGER       all       own           all            -
    PURGE             yes       -             -              -
    ANNOUNCE_NOTICE   yes       -             -              -

``own (policy)``: the notice's policy says when (``evidence.technician``: ``never``,
``while-open`` - until the run's record is closed, the default - or ``always``); every read,
allowed or refused, is in the access log.

``no-vendor``: an officer launches only runs of notices that entrust no vendor (as
:func:`orchestrator.run.runs.create_run` already requires). A revoked person may do nothing.

Officers act on and list the notices (and runs) of their own organ: the notice's ``organ``
(its announcing organ). Acting on a notice that names their organ as co-inspecting is allowed
too; listing such notices is not yet (the list filters on the announcing organ only).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import Session, aliased

from orchestrator.errors import AccessDeniedError, NotFoundError
from orchestrator.intake.registry import Person, Role
from orchestrator.store.models import (
    EvidenceGrant,
    NoticeRow,
    PersonRow,
    RecordRow,
    RunRow,
    VendorRow,
)

__all__ = [
    "Action",
    "Verdict",
    "authorize",
    "decide",
    "visible_notices",
    "visible_runs",
]


class Action(enum.StrEnum):
    """Everything rio guards; the value is what the access log stores."""

    LAUNCH_RUN = "launch_run"
    """start or schedule a run of a notice"""
    VIEW_RUN = "view_run"
    """list a run or see its status"""
    KILL_RUN = "kill_run"
    """pull a run's kill switch"""
    SIGN_RECORD = "sign_record"
    """sign (or co-sign) a run's remote inspection record"""
    CLOSE_RECORD = "close_record"
    """close a run's record (and order rectification)"""
    READ_EVIDENCE = "read_evidence"
    """decrypt a finding's evidence"""
    GRANT_EVIDENCE = "grant_evidence"
    """let an auditor read a run's evidence"""
    MANAGE_REGISTRY = "manage_registry"
    """add or revoke people, keys, vendors"""
    READ_LEDGER = "read_ledger"
    """read a run's probe log, record, verification results or access log"""
    PURGE = "purge"
    """crypto-shred the evidence of closed, archived runs"""
    ANNOUNCE_NOTICE = "announce_notice"
    """announce an inspection"""


# How each action reads in a sentence: "<person> (<role>) may not <verb> <object>: <why>".
_VERBS: dict[Action, str] = {
    Action.LAUNCH_RUN: "launch a run of",
    Action.VIEW_RUN: "view",
    Action.KILL_RUN: "kill",
    Action.SIGN_RECORD: "sign the record of",
    Action.CLOSE_RECORD: "close the record of",
    Action.READ_EVIDENCE: "read the evidence of",
    Action.GRANT_EVIDENCE: "grant access to the evidence of",
    Action.MANAGE_REGISTRY: "manage",
    Action.READ_LEDGER: "read the ledger of",
    Action.PURGE: "purge",
    Action.ANNOUNCE_NOTICE: "announce",
}

_RUN_ACTIONS = frozenset(
    {
        Action.VIEW_RUN,
        Action.KILL_RUN,
        Action.SIGN_RECORD,
        Action.CLOSE_RECORD,
        Action.READ_EVIDENCE,
        Action.GRANT_EVIDENCE,
    }
)

# Per action, the roles that may ever do it; run- and notice-bound checks come on top.
_ROLES: dict[Action, frozenset[Role]] = {
    Action.LAUNCH_RUN: frozenset({Role.OFFICER, Role.TECHNICIAN}),
    Action.VIEW_RUN: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.KILL_RUN: frozenset({Role.OFFICER, Role.TECHNICIAN}),
    Action.SIGN_RECORD: frozenset({Role.OFFICER, Role.TECHNICIAN}),
    Action.CLOSE_RECORD: frozenset({Role.OFFICER}),
    Action.READ_EVIDENCE: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.GRANT_EVIDENCE: frozenset({Role.OFFICER}),
    Action.MANAGE_REGISTRY: frozenset({Role.ADMIN}),
    Action.READ_LEDGER: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.PURGE: frozenset({Role.OFFICER}),
    Action.ANNOUNCE_NOTICE: frozenset({Role.OFFICER}),
}

_WHY_NOT_ROLE: dict[Role, str] = {
    Role.OFFICER: "officers do not manage registries; an administrator does",
    Role.TECHNICIAN: "a technician acts only on the runs and notices of their own vendor",
    Role.AUDITOR: "auditors read ledgers, records and verification results, and evidence "
    "only with an officer's grant",
    Role.ADMIN: "administrators manage registries; they never sign, launch or read evidence",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The answer of :func:`decide`: allowed or not, and the sentence saying why not."""

    allowed: bool
    why: str
    message: str

    def __bool__(self) -> bool:
        return self.allowed


def _object(action: Action, run_id: str | None, notice_id: str | None) -> str:
    if run_id is not None:
        return f"run {run_id}"
    if notice_id is not None:
        return f"notice {notice_id}"
    return {
        Action.MANAGE_REGISTRY: "the registries",
        Action.PURGE: "evidence",
        Action.ANNOUNCE_NOTICE: "a notice",
        Action.LAUNCH_RUN: "an unnamed notice",
    }.get(action, "all runs")


def decide(
    s: Session,
    person: Person,
    action: Action,
    *,
    run_id: str | None = None,
    notice_id: str | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Decide whether ``person`` may do ``action`` (on a run or a notice), without raising.

    The person's role, vendor and revocation are re-read from the database, so a snapshot taken
    at login cannot outlive a revocation or a role change.

    Args:
        s: A database session.
        person: Who asks (from :func:`orchestrator.access.identity.authenticate`).
        action: What they ask to do.
        run_id: The run concerned, for run-bound actions.
        notice_id: The notice concerned, for :attr:`Action.LAUNCH_RUN`.
        now: The time of the decision (default: the current time).

    Returns:
        The verdict; its ``message`` reads ``<person> (<role>) may not <action> <object>: <why>``.

    Raises:
        NotFoundError: The run or notice does not exist.
    """
    when = now or datetime.now(UTC)
    row = s.get(PersonRow, person.id)
    role = Role(row.role) if row is not None else person.role
    obj = _object(action, run_id, notice_id)

    def no(why: str) -> Verdict:
        message = f"{person.name} ({role.value}) may not {_VERBS[action]} {obj}: {why}"
        return Verdict(allowed=False, why=why, message=message)

    if row is None or row.name != person.name:
        return no("this person is not registered")
    if row.revoked_at is not None and row.revoked_at <= when:
        return no(f"the person was revoked at {row.revoked_at.isoformat()}")
    if role not in _ROLES[action]:
        return no(_WHY_NOT_ROLE[role])
    if action in _RUN_ACTIONS and run_id is None:
        return no("no run was named")
    if action is Action.LAUNCH_RUN and notice_id is None:
        return no("no notice was named")

    notice_vendor: int | None = None
    notice: NoticeRow | None = None
    if run_id is not None:
        run = s.get(RunRow, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} is not known (rio run list)")
        notice = s.get(NoticeRow, run.notice_id)
        notice_vendor = notice.vendor_id if notice is not None else run.vendor_id
    elif notice_id is not None:
        notice = s.get(NoticeRow, notice_id)
        if notice is None:
            raise NotFoundError(f"notice {notice_id!r} is not known (rio notice list)")
        notice_vendor = notice.vendor_id
    if role is Role.OFFICER and notice is not None and not _same_organisation(s, notice, row):
        return no("it was announced by another organisation")

    if role is Role.TECHNICIAN:
        if run_id is None and notice_id is None:
            return no("a technician acts only on a named run or notice of their own vendor")
        if row.vendor_id is None or notice_vendor != row.vendor_id:
            own = s.get(VendorRow, row.vendor_id) if row.vendor_id is not None else None
            return no(f"it is not entrusted to their vendor {own.name if own else '(none)'}")
    if role is Role.TECHNICIAN and action is Action.READ_EVIDENCE and run_id is not None:
        refused = _technician_evidence_refused(s, run_id, notice)
        if refused is not None:
            return no(refused)
    if role is Role.OFFICER and action is Action.LAUNCH_RUN and notice_vendor is not None:
        return no("the notice entrusts a vendor; one of its technicians launches the run")
    if role is Role.AUDITOR and action is Action.READ_EVIDENCE:
        grant = s.scalar(
            select(EvidenceGrant.id)
            .where(EvidenceGrant.run_id == run_id, EvidenceGrant.auditor_id == row.id)
            .where(or_(EvidenceGrant.expires_at.is_(None), EvidenceGrant.expires_at > when))
            .where(or_(EvidenceGrant.revoked_at.is_(None), EvidenceGrant.revoked_at > when))
        )
        if grant is None:
            return no("no grant in force lets this auditor read the run's evidence")
    return Verdict(allowed=True, why="", message="")


def _technician_evidence_refused(s: Session, run_id: str, notice: NoticeRow | None) -> str | None:
    """Why the notice's policy (``evidence.technician``) keeps a technician from the evidence."""
    from orchestrator.intake.notices import get_notice
    from orchestrator.intake.policy import TechnicianEvidence

    if notice is None:
        return "the run's notice is not known"
    setting = get_notice(s, notice.id).policy.evidence.technician
    if setting is TechnicianEvidence.NEVER:
        return "the notice's policy lets no technician read evidence (evidence.technician: never)"
    if setting is TechnicianEvidence.WHILE_OPEN:
        closed = s.scalar(
            select(RecordRow.closed_at).where(
                RecordRow.run_id == run_id, RecordRow.closed_at.is_not(None)
            )
        )
        if closed is not None:
            return (
                f"the run's record was closed at {closed.isoformat()}; the notice's policy lets "
                "technicians read evidence only while the run is open (evidence.technician: "
                "while-open)"
            )
    return None


def authorize(
    s: Session,
    person: Person,
    action: Action,
    *,
    run_id: str | None = None,
    notice_id: str | None = None,
    now: datetime | None = None,
) -> None:
    """Raise unless ``person`` may do ``action``; see :func:`decide` for the arguments.

    Raises:
        AccessDeniedError: The matrix in this module's docstring forbids it.
        NotFoundError: The run or notice does not exist.
    """
    verdict = decide(s, person, action, run_id=run_id, notice_id=notice_id, now=now)
    if not verdict:
        raise AccessDeniedError(verdict.message)


def _active(s: Session, person: Person) -> PersonRow | None:
    row = s.get(PersonRow, person.id)
    if row is None or row.name != person.name:
        return None
    if row.revoked_at is not None and row.revoked_at <= datetime.now(UTC):
        return None
    return row


def _same_organisation(s: Session, notice: NoticeRow, officer: PersonRow) -> bool:
    """Officers act on the notices of their organ (announcing or named co-inspecting);
    a notice with neither an organ nor a known announcer is open to every officer."""
    if officer.organisation in (notice.co_organs or ()):
        return True
    if notice.organ is not None:
        return notice.organ == officer.organisation
    if notice.announced_by is None:
        return True
    announcer = s.get(PersonRow, notice.announced_by)
    return announcer is None or announcer.organisation == officer.organisation


def _officer_notices(officer: PersonRow) -> Any:
    """SQL condition: announced by this officer's organisation (or by nobody known)."""
    announcer = aliased(PersonRow)
    return or_(
        NoticeRow.organ == officer.organisation,
        and_(NoticeRow.organ.is_(None), NoticeRow.announced_by.is_(None)),
        and_(
            NoticeRow.organ.is_(None),
            NoticeRow.announced_by.in_(
                select(announcer.id).where(announcer.organisation == officer.organisation)
            ),
        ),
    )


def visible_runs(s: Session, person: Person) -> Select[tuple[RunRow]]:
    """The runs ``person`` may list: ``s.scalars(visible_runs(s, person))``.

    Auditors see every run, officers the runs of notices their organisation announced, a
    technician the runs of notices that entrust their vendor; administrators and revoked
    people see none.
    """
    row = _active(s, person)
    query = select(RunRow).order_by(RunRow.created_at, RunRow.id)
    if row is None:
        return query.where(false())
    role = Role(row.role)
    if role is Role.AUDITOR:
        return query
    if role is Role.OFFICER:
        return query.join(NoticeRow, NoticeRow.id == RunRow.notice_id).where(_officer_notices(row))
    if role is Role.TECHNICIAN and row.vendor_id is not None:
        return query.join(NoticeRow, NoticeRow.id == RunRow.notice_id).where(
            NoticeRow.vendor_id == row.vendor_id
        )
    return query.where(false())


def visible_notices(s: Session, person: Person) -> Select[tuple[NoticeRow]]:
    """The notices ``person`` may list: ``s.scalars(visible_notices(s, person))``.

    Same rule as :func:`visible_runs`: officers see the notices their organisation announced.
    """
    row = _active(s, person)
    query = select(NoticeRow).order_by(NoticeRow.announced_at, NoticeRow.id)
    if row is None:
        return query.where(false())
    role = Role(row.role)
    if role is Role.AUDITOR:
        return query
    if role is Role.OFFICER:
        return query.where(_officer_notices(row))
    if role is Role.TECHNICIAN and row.vendor_id is not None:
        return query.where(NoticeRow.vendor_id == row.vendor_id)
    return query.where(false())
