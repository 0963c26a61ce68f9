"""Runs as operations: list the runs a person may see, a run's status, kill a run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from orchestrator.access.roles import Action, authorize, visible_runs
from orchestrator.context import Rio
from orchestrator.intake.registry import Person
from orchestrator.run.lease import RunLease
from orchestrator.run.lifecycle import abort_idle
from orchestrator.run.runs import get_run, request_kill
from orchestrator.run.state import FINAL, RunState
from orchestrator.store.models import RunRow

__all__ = ["RunStatus", "kill_run", "list_runs", "run_status"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStatus:
    """Where a run stands."""

    id: str
    notice_id: str
    state: str
    pause_reason: str | None
    planned: int
    done: int
    refused: int
    failed: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    killed_by: str | None
    kill_reason: str | None

    @property
    def finished(self) -> bool:
        """No more progress will come (the run is in a final state)."""
        return RunState(self.state) in FINAL


def _status(row: RunRow) -> RunStatus:
    return RunStatus(
        id=row.id,
        notice_id=row.notice_id,
        state=row.state,
        pause_reason=row.pause_reason,
        planned=row.planned,
        done=row.done,
        refused=row.refused,
        failed=row.failed,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        killed_by=row.killed_by,
        kill_reason=row.kill_reason,
    )


def list_runs(rio: Rio, person: Person) -> list[RunStatus]:
    """The runs ``person`` may see (:func:`~orchestrator.access.roles.visible_runs`)."""
    with rio.db.session() as s:
        return [_status(r) for r in s.scalars(visible_runs(s, person))]


def run_status(rio: Rio, person: Person, run_id: str, *, now: datetime) -> RunStatus:
    """One run's status.

    Raises:
        AccessDeniedError: The person may not view the run.
        NotFoundError: No such run.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.VIEW_RUN, run_id=run_id, now=now)
        return _status(get_run(s, run_id))


def kill_run(rio: Rio, person: Person, run_id: str, *, reason: str, now: datetime) -> RunStatus:
    """Pull a run's kill switch: a running run's runner stops at once; an idle run is logged
    as killed and sealed here.

    Raises:
        AccessDeniedError: The person may not kill the run.
        StateError: The run is already final.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.KILL_RUN, run_id=run_id, now=now)
        state = RunState(request_kill(s, run_id, person.name, reason).state)
    if state is not RunState.RUNNING:
        _finalise_idle_kill(rio, run_id, now)
    with rio.db.session() as s:
        return _status(get_run(s, run_id))


def _finalise_idle_kill(rio: Rio, run_id: str, now: datetime) -> None:
    # As `rio run kill` does for a run no process is running: the lifecycle logs the kill and
    # seals the run while this process holds the run's lease.
    lease = RunLease(rio, run_id)
    if not lease.try_acquire():
        return  # a runner took it up meanwhile: it sees the kill request and stops
    try:
        asyncio.run(abort_idle(rio, run_id, now))
    finally:
        lease.release()
    from orchestrator.run.scheduler import RioScheduler

    with RioScheduler(rio) as scheduler:
        scheduler.unschedule(run_id)
