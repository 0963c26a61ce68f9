"""Runs in the database: create, look up, request a kill (their state moves in lifecycle.py)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import NotFoundError, StateError
from orchestrator.intake.notices import get_notice
from orchestrator.intake.registry import Person, Role, get_person, person_by_id
from orchestrator.run.bell import ring_after_commit
from orchestrator.run.state import FINAL, RunState
from orchestrator.store.models import RunRow

__all__ = [
    "create_run",
    "get_run",
    "list_runs",
    "request_kill",
    "run_launcher",
]


def _new_id(now: datetime) -> str:
    return f"R-{now:%Y%m%d}-{secrets.token_hex(3)}"


def create_run(
    s: Session,
    notice_id: str,
    launcher: str,
    *,
    scheduled_for: datetime | None = None,
    recheck_of: int | None = None,
    now: datetime,
) -> RunRow:
    """Create a run of a notice, launched by a technician of the entrusted vendor.

    Entrustment is checked here (a clear error early) and again by the gate at every probe.
    """
    notice = get_notice(s, notice_id)
    person = get_person(s, launcher)
    when = now
    if notice.vendor is not None:
        if person.role is not Role.TECHNICIAN or person.vendor != notice.vendor:
            raise StateError(
                f"{person.name} is not a technician of {notice.vendor}, the vendor entrusted by "
                f"notice {notice.id}"
            )
    elif person.role is not Role.OFFICER:
        raise StateError(f"notice {notice.id} entrusts no vendor: only an officer can run it")
    if not person.active_at(when):
        raise StateError(f"{person.name} was revoked at {person.revoked_at}")
    row = RunRow(
        id=_new_id(when),
        notice_id=notice.id,
        technician_id=person.id,
        vendor_id=None,
        state=RunState.SCHEDULED.value,
        recheck_of=recheck_of,
        created_at=when,
        scheduled_for=scheduled_for,
        planned=0,
        done=0,
        refused=0,
        failed=0,
        cursor=0,
    )
    if notice.vendor is not None:
        from orchestrator.intake.registry import get_vendor

        row.vendor_id = get_vendor(s, notice.vendor).id
    s.add(row)
    s.flush()
    return row


def get_run(s: Session, run_id: str) -> RunRow:
    row = s.get(RunRow, run_id)
    if row is None:
        raise NotFoundError(f"run {run_id!r} is not known (rio run list)")
    return row


def list_runs(s: Session, notice_id: str | None = None) -> list[RunRow]:
    q = select(RunRow).order_by(RunRow.created_at)
    if notice_id is not None:
        q = q.where(RunRow.notice_id == notice_id)
    return list(s.scalars(q))


def run_launcher(s: Session, row: RunRow) -> Person:
    return person_by_id(s, row.technician_id)


def request_kill(s: Session, run_id: str, by: str, reason: str, *, now: datetime) -> RunRow:
    """Ask a run to stop now. The runner (if one is running) logs the kill and cancels probes.

    The kill takes effect when the caller's transaction commits; that commit rings the run's
    bell (:mod:`orchestrator.run.bell`), so a runner on this host reads it at once.
    """
    row = get_run(s, run_id)
    if RunState(row.state) in FINAL:
        raise StateError(f"run {run_id} is {row.state}: nothing to kill")
    if row.kill_requested_at is None:
        row.kill_requested_at = now
        row.killed_by = by
        row.kill_reason = reason
    # Its runner reads the kill at once when this commits, not at its next poll.
    ring_after_commit(s, run_id)
    return row
