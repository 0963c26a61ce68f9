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
    ORDER_RECTIFICATION all     -             -              -
    READ_EVIDENCE     all       own (policy)  with a grant   -
    GRANT_EVIDENCE    all       -             -              -
    MANAGE_REGISTRY   -         -             -              yes
    READ_LEDGER       all       own           all            -
    PURGE             yes       -             -              -
    ANNOUNCE_NOTICE   yes       -             -              -
    VIEW_NOTICE       all       own           all            -
    EXPLAIN_GATE      all       own           all            -
    VIEW_REGISTRY     yes       yes           yes            yes
    ROTATE_MASTER_KEY -         -             -              yes

:data:`COMMANDS` maps every ``rio`` command to the action it needs, or to :class:`Public`
with the reason it needs no identity; a test walks the command line and fails on any command
missing from it.

``own (policy)``: the notice's policy says when (``evidence.technician``: ``never``,
``while-open`` - until the run's record is closed, the default - or ``always``); every read,
allowed or refused, is in the access log.

``no-vendor``: an officer launches only runs of notices that entrust no vendor (as
:func:`orchestrator.run.runs.create_run` already requires). A revoked person may do nothing.

Officers act on and list the notices (and runs) of their own organ: the notice's ``organ``
(its announcing organ) or an organ the notice names as co-inspecting. What an officer may list
is exactly what they may view: :func:`visible_runs` and :func:`visible_notices` apply the rule
:func:`decide` applies to one notice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
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
    "COMMANDS",
    "Action",
    "Public",
    "Verdict",
    "authorize",
    "decide",
    "roles_for",
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
    """close a run's record"""
    ORDER_RECTIFICATION = "order_rectification"
    """order rectification of a run's findings, re-check it and feed the result back"""
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
    VIEW_NOTICE = "view_notice"
    """see a notice: its scope, policy, windows and letter"""
    EXPLAIN_GATE = "explain_gate"
    """ask the gate whether a probe of a notice would be allowed"""
    VIEW_REGISTRY = "view_registry"
    """list the registered people, their keys and the vendors"""
    ROTATE_MASTER_KEY = "rotate_master_key"
    """re-wrap every run's data key under a new evidence master key"""


# How each action reads in a sentence: "<person> (<role>) may not <verb> <object>: <why>".
_VERBS: dict[Action, str] = {
    Action.LAUNCH_RUN: "launch a run of",
    Action.VIEW_RUN: "view",
    Action.KILL_RUN: "kill",
    Action.SIGN_RECORD: "sign the record of",
    Action.CLOSE_RECORD: "close the record of",
    Action.ORDER_RECTIFICATION: "order rectification of",
    Action.READ_EVIDENCE: "read the evidence of",
    Action.GRANT_EVIDENCE: "grant access to the evidence of",
    Action.MANAGE_REGISTRY: "manage",
    Action.READ_LEDGER: "read the ledger of",
    Action.PURGE: "purge",
    Action.ANNOUNCE_NOTICE: "announce",
    Action.VIEW_NOTICE: "view",
    Action.EXPLAIN_GATE: "ask the gate about",
    Action.VIEW_REGISTRY: "list",
    Action.ROTATE_MASTER_KEY: "rotate",
}

_RUN_ACTIONS = frozenset(
    {
        Action.VIEW_RUN,
        Action.KILL_RUN,
        Action.SIGN_RECORD,
        Action.CLOSE_RECORD,
        Action.ORDER_RECTIFICATION,
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
    Action.ORDER_RECTIFICATION: frozenset({Role.OFFICER}),
    Action.READ_EVIDENCE: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.GRANT_EVIDENCE: frozenset({Role.OFFICER}),
    Action.MANAGE_REGISTRY: frozenset({Role.ADMIN}),
    Action.READ_LEDGER: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.PURGE: frozenset({Role.OFFICER}),
    Action.ANNOUNCE_NOTICE: frozenset({Role.OFFICER}),
    Action.VIEW_NOTICE: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.EXPLAIN_GATE: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR}),
    Action.VIEW_REGISTRY: frozenset({Role.OFFICER, Role.TECHNICIAN, Role.AUDITOR, Role.ADMIN}),
    Action.ROTATE_MASTER_KEY: frozenset({Role.ADMIN}),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Public:
    """A command that needs no identity, and why that is safe."""

    why: str


# Every ``rio`` command (by its words): the action it authorises, or why it is public.
# A command that lists or shows maps to the action its rows are filtered by.
COMMANDS: dict[str, Action | Public] = {
    "version": Public(why="prints rio's version"),
    "init": Public(why="creates the home of whoever runs it, on their own disk"),
    "doctor": Public(why="checks this machine's setup; reads no case data"),
    "schema": Public(why="prints the JSON Schema of scope and policy files"),
    "scope check": Public(why="validates a file the caller holds; stores nothing"),
    "policy check": Public(why="validates a file the caller holds; stores nothing"),
    "keys generate": Public(why="writes a new key pair for the caller; touches no home"),
    "keys export-trust": Public(
        why="writes public keys only, which auditors need and anyone may hold"
    ),
    "keys rotate-master": Action.ROTATE_MASTER_KEY,
    "demo": Public(why="runs in a temporary home of its own against loopback services"),
    "serve": Public(
        why="the home's scheduler daemon: it starts only runs their technicians launched, "
        "as those technicians, and its operator is whoever runs the home"
    ),
    "worker": Public(
        why="a probe worker sends only probes on permits the orchestrator signed "
        "(RIO_PERMIT_KEY); it decides nothing and reads no case data"
    ),
    "calendar status": Public(
        why="which years of the working-day calendar are authoritative: reference data"
    ),
    "calendar add": Action.MANAGE_REGISTRY,
    "kill": Action.KILL_RUN,
    "purge": Action.PURGE,
    "person add": Action.MANAGE_REGISTRY,
    "person key": Action.MANAGE_REGISTRY,
    "person revoke": Action.MANAGE_REGISTRY,
    "person list": Action.VIEW_REGISTRY,
    "vendor add": Action.MANAGE_REGISTRY,
    "vendor list": Action.VIEW_REGISTRY,
    "notice announce": Action.ANNOUNCE_NOTICE,
    "notice show": Action.VIEW_NOTICE,
    "notice letter": Action.VIEW_NOTICE,
    "notice list": Action.VIEW_NOTICE,
    "run start": Action.LAUNCH_RUN,
    "run resume": Action.LAUNCH_RUN,
    "run schedule": Action.LAUNCH_RUN,
    "run unschedule": Action.KILL_RUN,
    "run status": Action.VIEW_RUN,
    "run list": Action.VIEW_RUN,
    "run jobs": Action.VIEW_RUN,
    "run kill": Action.KILL_RUN,
    "gate explain": Action.EXPLAIN_GATE,
    "record print": Action.READ_LEDGER,
    "record show": Action.READ_LEDGER,
    "record findings": Action.READ_LEDGER,
    "record status": Action.READ_LEDGER,
    "record assemble": Action.CLOSE_RECORD,
    "record sign": Action.SIGN_RECORD,
    "record close": Action.CLOSE_RECORD,
    "rectify order": Action.ORDER_RECTIFICATION,
    "rectify apply": Action.ORDER_RECTIFICATION,
    "rectify recheck": Action.ORDER_RECTIFICATION,
    "rectify schedule": Action.ORDER_RECTIFICATION,
    "rectify feedback": Action.ORDER_RECTIFICATION,
    "rectify plan": Action.READ_LEDGER,
    "rectify status": Action.READ_LEDGER,
    "archive export": Action.READ_LEDGER,
    "findings list": Action.READ_LEDGER,
    "findings diff": Action.READ_LEDGER,
    "findings export": Action.READ_LEDGER,
    "audit verify": Public(
        why="an archive file verifies offline from what it holds (a run id needs the key)"
    ),
    "audit log": Public(why="an archive file is read offline (a run id needs the key)"),
    "report transparency": Public(
        why="reads only the archive file the caller already holds, never the home"
    ),
    "report check": Public(
        why="the inspected object checks a report file offline, with a key it trusts"
    ),
    "access log": Action.READ_LEDGER,
    "evidence show": Action.READ_EVIDENCE,
    "evidence grant": Action.GRANT_EVIDENCE,
    "evidence revoke": Action.GRANT_EVIDENCE,
}


def roles_for(action: Action) -> frozenset[Role]:
    """The roles that may ever do ``action`` (run- and notice-bound checks come on top)."""
    return _ROLES[action]


_PLURAL: dict[Role, str] = {
    Role.OFFICER: "officers",
    Role.TECHNICIAN: "technicians",
    Role.AUDITOR: "auditors",
    Role.ADMIN: "administrators",
}


def _why_not_role(action: Action, role: Role) -> str:
    """The refusal for a role the action never allows: the roles it needs, and this one's."""
    needed = [_PLURAL[r] for r in Role if r in _ROLES[action]]
    who = needed[0] if len(needed) == 1 else ", ".join(needed[:-1]) + " and " + needed[-1]
    noun = _ROLE_NOUN[role]
    return f"only {who} may do this, not {'an' if noun[0] in 'aeiou' else 'a'} {noun}"


_ROLE_NOUN: dict[Role, str] = {
    Role.OFFICER: "officer",
    Role.TECHNICIAN: "technician",
    Role.AUDITOR: "auditor",
    Role.ADMIN: "administrator",
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
        Action.EXPLAIN_GATE: "an unnamed notice",
        Action.VIEW_REGISTRY: "the registries",
        Action.ROTATE_MASTER_KEY: "the evidence master key",
    }.get(action, "all runs")


def decide(
    s: Session,
    person: Person,
    action: Action,
    *,
    run_id: str | None = None,
    notice_id: str | None = None,
    now: datetime,
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
        now: The time of the decision (the acting app's clock).

    Returns:
        The verdict; its ``message`` reads ``<person> (<role>) may not <action> <object>: <why>``.

    Raises:
        NotFoundError: The run or notice does not exist.
    """
    when = now
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
        return no(_why_not_role(action, role))
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

    if role is Role.TECHNICIAN and action is not Action.VIEW_REGISTRY:
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
    now: datetime,
) -> None:
    """Raise unless ``person`` may do ``action``; see :func:`decide` for the arguments.

    Raises:
        AccessDeniedError: The matrix in this module's docstring forbids it.
        NotFoundError: The run or notice does not exist.
    """
    verdict = decide(s, person, action, run_id=run_id, notice_id=notice_id, now=now)
    if not verdict:
        raise AccessDeniedError(verdict.message)


def _active(s: Session, person: Person, now: datetime) -> PersonRow | None:
    row = s.get(PersonRow, person.id)
    if row is None or row.name != person.name:
        return None
    if row.revoked_at is not None and row.revoked_at <= now:
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


def _co_inspected(s: Session, organisation: str) -> list[str]:
    """The notices that name ``organisation`` as a co-inspecting organ.

    Read in Python: the organs are a JSON list, and JSON containment is spelt differently by
    SQLite and PostgreSQL. A home holds notices by the hundred, not the million.
    """
    rows = s.execute(
        select(NoticeRow.id, NoticeRow.co_organs).where(NoticeRow.co_organs.is_not(None))
    )
    return [notice_id for notice_id, organs in rows if organisation in (organs or ())]


def _officer_notices(s: Session, officer: PersonRow) -> Any:
    """SQL condition: announced by this officer's organisation (or by nobody known), or naming
    it as co-inspecting; the same rule as :func:`_same_organisation`."""
    announcer = aliased(PersonRow)
    return or_(
        NoticeRow.id.in_(_co_inspected(s, officer.organisation)),
        NoticeRow.organ == officer.organisation,
        and_(NoticeRow.organ.is_(None), NoticeRow.announced_by.is_(None)),
        and_(
            NoticeRow.organ.is_(None),
            NoticeRow.announced_by.in_(
                select(announcer.id).where(announcer.organisation == officer.organisation)
            ),
        ),
    )


def visible_runs(s: Session, person: Person, *, now: datetime) -> Select[tuple[RunRow]]:
    """The runs ``person`` may list at ``now``: ``s.scalars(visible_runs(s, person, now=now))``.

    Auditors see every run, officers the runs of notices their organisation announced or
    co-inspects, a technician the runs of notices that entrust their vendor; administrators
    and revoked people see none.
    """
    row = _active(s, person, now)
    query = select(RunRow).order_by(RunRow.created_at, RunRow.id)
    if row is None:
        return query.where(false())
    role = Role(row.role)
    if role is Role.AUDITOR:
        return query
    if role is Role.OFFICER:
        return query.join(NoticeRow, NoticeRow.id == RunRow.notice_id).where(
            _officer_notices(s, row)
        )
    if role is Role.TECHNICIAN and row.vendor_id is not None:
        return query.join(NoticeRow, NoticeRow.id == RunRow.notice_id).where(
            NoticeRow.vendor_id == row.vendor_id
        )
    return query.where(false())


def visible_notices(s: Session, person: Person, *, now: datetime) -> Select[tuple[NoticeRow]]:
    """The notices ``person`` may list at ``now``: ``s.scalars(visible_notices(s, person,
    now=now))``.

    Same rule as :func:`visible_runs`: officers see the notices their organisation announced
    or co-inspects.
    """
    row = _active(s, person, now)
    query = select(NoticeRow).order_by(NoticeRow.announced_at, NoticeRow.id)
    if row is None:
        return query.where(false())
    role = Role(row.role)
    if role is Role.AUDITOR:
        return query
    if role is Role.OFFICER:
        return query.where(_officer_notices(s, row))
    if role is Role.TECHNICIAN and row.vendor_id is not None:
        return query.where(NoticeRow.vendor_id == row.vendor_id)
    return query.where(false())
