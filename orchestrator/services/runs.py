"""Runs as operations: start now or schedule, the start check, list, status and figures, kill
one run or all."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from orchestrator.access.roles import Action, authorize, visible_runs
from orchestrator.context import Rio
from orchestrator.errors import BudgetStoreError, StateError
from orchestrator.intake.registry import Person
from orchestrator.run.lease import RunLease, recover_crashed
from orchestrator.run.lifecycle import abort_idle
from orchestrator.run.runs import get_run, request_kill
from orchestrator.run.runs import list_runs as all_runs
from orchestrator.run.state import FINAL, PauseReason, RunState
from orchestrator.store.models import RunRow

if TYPE_CHECKING:
    from orchestrator.gate.resolve import Resolver
    from orchestrator.run.progress import Progress

__all__ = [
    "KillResult",
    "LaunchedRun",
    "RunFigures",
    "RunStatus",
    "kill_all",
    "kill_run",
    "list_runs",
    "preflight",
    "require_run",
    "run_figures",
    "run_status",
    "schedule_run",
    "start_run",
]


def require_run(app: Rio, run_id: str) -> None:
    """Raise unless ``run_id`` names a run. Anyone may ask, so a front end says an id is
    unknown before it asks for a key (as ``rio audit verify`` does).

    Raises:
        NotFoundError: No such run.
    """
    with app.db.session() as s:
        get_run(s, run_id)


def preflight(app: Rio, notice_id: str) -> None:
    """Refuse early, with the gate's own reason, when no probe of the notice could be allowed now.

    The lead-time and window checks are the gate's (:meth:`Gate.check_notice`,
    :meth:`Gate.check_window`), so ``run start`` says what the gate would say.

    Raises:
        StateError: the lead time is not met yet, or now lies outside the notice's or the
            policy's windows; the message is the gate's, with what to do instead.
    """
    from orchestrator.app import gate_for
    from orchestrator.intake.notices import get_notice

    with app.db.session() as s:
        notice = get_notice(s, notice_id)
    gate = gate_for(app, notice, None, launcher=lambda: None)
    now = app.clock.now()
    lead = gate.check_notice(now)
    if not lead:
        raise StateError(f"{lead.detail}; use `rio run schedule` to run it then")
    window = gate.check_window(now, now + notice.policy.probe_timeout)
    if not window:
        raise StateError(
            f"notice {notice.id}: {window.detail}; "
            "use `rio run schedule` to run it in the next window"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class LaunchedRun:
    """A run handed to the scheduler: when it starts and, for a recurring check, what follows."""

    run_id: str
    notice_id: str
    start: datetime
    series: str | None = None
    next_period: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "notice_id": self.notice_id,
            "start": self.start.isoformat(),
            "series": self.series,
            "next_period": self.next_period.isoformat() if self.next_period else None,
        }


def start_run(app: Rio, actor: Person, notice_id: str) -> LaunchedRun:
    """Start a run of the notice now, by the scheduler (``rio serve``) rather than in the
    caller's process: the run is created and given a job due now, which the serving scheduler
    fires at its next look (``--poll``, 5 s by default) under the run's lease.

    Raises:
        AccessDeniedError: ``actor`` may not launch runs of the notice.
        StateError: the gate would allow no probe now (lead time, windows); the message says
            what it would say.
        NotFoundError: no such notice.
    """
    from orchestrator.run.runs import create_run
    from orchestrator.run.scheduler import RioScheduler

    now = app.clock.now()
    with app.db.session() as s:
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=now)
    preflight(app, notice_id)
    with app.db.session() as s:
        run_id = create_run(s, notice_id, actor.name, scheduled_for=now, now=now).id
    with RioScheduler(app, clock=app.clock) as scheduler:
        scheduler.add_run_job(run_id, now)
    return LaunchedRun(run_id=run_id, notice_id=notice_id, start=now)


def schedule_run(
    app: Rio, actor: Person, notice_id: str, *, every: timedelta | None = None
) -> LaunchedRun:
    """Plan a run at the notice's next opening (a recurring check with ``every``).

    Raises:
        AccessDeniedError: ``actor`` may not launch runs of the notice.
        StateError: no opening is left in the notice's windows.
        InputError: ``every`` is shorter than a minute.
        NotFoundError: no such notice.
    """
    from orchestrator.run.scheduler import RioScheduler

    with app.db.session() as s:
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    with RioScheduler(app, clock=app.clock) as scheduler:
        planned = scheduler.schedule_run(notice_id, actor.name, every=every)
    return LaunchedRun(
        run_id=planned.run_id,
        notice_id=notice_id,
        start=planned.start,
        series=planned.series,
        next_period=planned.next_period,
    )


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


def list_runs(rio: Rio, person: Person, notice_id: str | None = None) -> list[RunStatus]:
    """The runs ``person`` may see (:func:`~orchestrator.access.roles.visible_runs`), oldest
    first; of one notice, if given."""
    with rio.db.session() as s:
        query = visible_runs(s, person, now=rio.clock.now())
        if notice_id is not None:
            query = query.where(RunRow.notice_id == notice_id)
        return [_status(r) for r in s.scalars(query)]


def run_status(rio: Rio, person: Person, run_id: str, *, now: datetime) -> RunStatus:
    """One run's status.

    Raises:
        AccessDeniedError: The person may not view the run.
        NotFoundError: No such run.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.VIEW_RUN, run_id=run_id, now=now)
        return _status(get_run(s, run_id))


async def kill_run(
    rio: Rio, person: Person, run_id: str, *, reason: str, now: datetime
) -> RunStatus:
    """Pull a run's kill switch: a running run's runner stops at once; an idle run is logged
    as killed and sealed here.

    Raises:
        AccessDeniedError: The person may not kill the run.
        StateError: The run is already final.
    """
    await kill_runs(rio, person, [run_id], reason=reason, now=now)
    with rio.db.session() as s:
        return _status(get_run(s, run_id))


@dataclass(frozen=True, kw_only=True, slots=True)
class RunFigures:
    """A run's figures, as ``rio run status`` shows them. ``to_json()`` is the ``--json`` output."""

    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


async def run_figures(app: Rio, actor: Person, run_id: str) -> RunFigures:
    """The run's state, counts, refusals by reason, outcomes, findings and last checkpoint.

    A ``running`` run whose runner died is recorded as crashed first (what status shows is
    then true). Otherwise this only reads.

    Raises:
        AccessDeniedError: ``actor`` may not view the run.
        NotFoundError: no such run.
    """
    from sqlalchemy import func, select

    from orchestrator.audit.logview import outcome_sends, peak_per_second
    from orchestrator.intake.registry import person_by_id
    from orchestrator.ledger.bodies import IntentBody, OutcomeBody, StateBody
    from orchestrator.ledger.log import read_checkpoints, read_leaves
    from orchestrator.ledger.tally import RefusalTally
    from orchestrator.record.canonical import parse_ns_timestamp
    from orchestrator.store.models import FindingRow

    with app.db.session() as s:
        authorize(s, actor, Action.VIEW_RUN, run_id=run_id, now=app.clock.now())
    await recover_crashed(app, [run_id])
    with app.db.session() as s:
        row = get_run(s, run_id)
        # A Result has .keys(), so dict(result) would treat it as a mapping: build it by hand.
        severities: dict[str, int] = {
            severity: count
            for severity, count in s.execute(
                select(FindingRow.severity, func.count())
                .where(FindingRow.run_id == run_id)
                .group_by(FindingRow.severity)
            ).tuples()
        }
        data: dict[str, Any] = {
            "id": row.id,
            "notice": row.notice_id,
            "state": row.state,
            "pause_reason": row.pause_reason,
            "technician": person_by_id(s, row.technician_id).name,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "planned": row.planned,
            "decided": row.done,
            "refused": row.refused,
            "kill_requested_at": row.kill_requested_at,
            "killed_by": row.killed_by,
            "kill_reason": row.kill_reason,
            "findings": severities,
        }
        planned, done = row.planned or 0, row.done or 0
    outcomes: Counter[str] = Counter()
    # Connections as the target received them: each probe's sends on the wire (sent_at, or
    # the traced sends of an nmap batch), counted in sliding one-second windows as the audit
    # replays them, not in calendar-second bins.
    sends: list[tuple[int, int]] = []
    costs: dict[int, tuple[int, int]] = {}
    last_state: StateBody | None = None
    refusals = RefusalTally()
    for leaf in read_leaves(app.db, run_id):
        refusals.add(leaf)
        if leaf.kind == "outcome":
            outcome = OutcomeBody.from_json(leaf.data)
            outcomes[outcome.outcome.value] += 1
            at, cost = costs.pop(outcome.intent, (parse_ns_timestamp(leaf.at), 1))
            sends.extend(outcome_sends(leaf, at, cost))
        elif leaf.kind == "intent":
            costs[leaf.seq] = (parse_ns_timestamp(leaf.at), IntentBody.from_json(leaf.data).cost)
        elif leaf.kind == "state":
            last_state = StateBody.from_json(leaf.data)
    # Gate refusals and probes' own refusals, by reason (the runner's count has only the gate's).
    data["refused_by_reason"] = refusals.counts()
    data["refused"] = sum(data["refused_by_reason"].values())
    data["outcomes"] = dict(outcomes)
    # What was not done, and why (a run is sealed only when every planned probe has an outcome).
    data["not_done"] = {
        "count": max(0, planned - done),
        "why": last_state.reason if last_state and last_state.state == "paused" else None,
    }
    # Intents without an outcome (in flight, or a crash) count at their intent, as in the audit.
    sends.extend(costs.values())
    data["peak_connections_per_second"] = peak_per_second(sends)
    cps = read_checkpoints(app.db, run_id)
    data["checkpoint"] = {"size": cps[-1].size, "note": cps[-1].note} if cps else None
    return RunFigures(data=data)


@dataclass(frozen=True, kw_only=True, slots=True)
class KillResult:
    """What a kill did: the runs asked to stop, and the scheduled jobs removed."""

    runs: tuple[str, ...]
    removed_jobs: tuple[str, ...]
    at: datetime


async def kill_runs(
    app: Rio, actor: Person, run_ids: list[str], *, reason: str, now: datetime | None = None
) -> KillResult:
    """Pull the kill switch of the named runs; all or nothing.

    A crashed run is recorded as crashed first (it is killed here, not by its dead runner); a
    run no process is running is sealed here (its kill and state leaves logged) and its
    scheduled job removed.

    Raises:
        AccessDeniedError: one of the runs is not ``actor``'s to kill (then none is stopped).
        StateError: a run is already final.
    """
    when = now or app.clock.now()
    with app.db.session() as s:
        for run_id in run_ids:
            authorize(s, actor, Action.KILL_RUN, run_id=run_id, now=when)
    await recover_crashed(app, run_ids)
    with app.db.session() as s:
        states = [
            (r, RunState(request_kill(s, r, actor.name, reason, now=when).state)) for r in run_ids
        ]
    removed: list[str] = []
    for run_id, state in states:
        if state is not RunState.RUNNING:
            removed.extend(await _finalise_idle_kill(app, run_id))
    return KillResult(runs=tuple(run_ids), removed_jobs=tuple(removed), at=when)


async def kill_all(app: Rio, actor: Person, reason: str) -> KillResult:
    """Pull the kill switch of every unfinished run; all or nothing.

    Raises:
        AccessDeniedError: one of the unfinished runs is not ``actor``'s to kill (then no run
            is stopped).
    """
    with app.db.session() as s:
        running = [r.id for r in all_runs(s) if r.state == RunState.RUNNING.value]
    await recover_crashed(app, running)  # a run whose runner died is not left unkilled as "running"
    with app.db.session() as s:
        targets = [r.id for r in all_runs(s) if RunState(r.state) not in FINAL]
    return await kill_runs(app, actor, targets, reason=reason)


async def _finalise_idle_kill(app: Rio, run_id: str) -> tuple[str, ...]:
    """A run that no process is running: log the kill and seal it here (holding its lease);
    returns the scheduled jobs removed."""
    lease = RunLease(app, run_id)
    if not lease.try_acquire():
        return ()  # a runner took it up meanwhile: it sees the kill request and stops
    try:
        await abort_idle(app, run_id, app.clock.now())
    finally:
        lease.release()
    # A killed run never starts: its waiting job goes too (the scheduler would only skip it).
    from orchestrator.run.scheduler import RioScheduler

    with RioScheduler(app) as scheduler:
        return tuple(scheduler.unschedule(run_id))


async def check_start(app: Rio, actor: Person, notice_id: str, *, new: bool = False) -> str | None:
    """Whether ``actor`` may run the notice now; returns the run of the notice a crash left
    ``paused (crash)`` (the newest), to offer instead of a new run, unless ``new``.

    Raises:
        AccessDeniedError: ``actor`` may not launch runs of the notice.
        StateError: no probe of the notice could be allowed now (:func:`preflight`).
    """
    with app.db.session() as s:
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    preflight(app, notice_id)
    if new:
        return None
    with app.db.session() as s:
        running = [r.id for r in all_runs(s, notice_id) if r.state == RunState.RUNNING.value]
    await recover_crashed(app, running)
    with app.db.session() as s:
        left = [
            r.id
            for r in all_runs(s, notice_id)
            if r.state == RunState.PAUSED.value and r.pause_reason == PauseReason.CRASH.value
        ]
    return left[-1] if left else None


def new_run(app: Rio, actor: Person, notice_id: str) -> str:
    """Create a run of the notice launched by ``actor``; returns its id.

    Raises:
        AccessDeniedError: ``actor`` may not launch runs of the notice.
    """
    from orchestrator.run.runs import create_run

    with app.db.session() as s:
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
        return create_run(s, notice_id, actor.name, now=app.clock.now()).id


async def check_resume(app: Rio, actor: Person, run_id: str) -> RunStatus:
    """Whether ``actor`` may resume the run now, in the foreground; returns where it stands
    (a run whose runner died is recorded as crashed first).

    Raises:
        NotFoundError: no such run.
        AccessDeniedError: ``actor`` may not launch runs of the run's notice.
        StateError: another process is running it, it is not paused or waiting, or no probe
            of its notice could be allowed now.
    """
    with app.db.session() as s:
        notice_id = get_run(s, run_id).notice_id
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    await recover_crashed(app, [run_id])
    with app.db.session() as s:
        status = _status(get_run(s, run_id))
    current = RunState(status.state)
    if current is RunState.RUNNING:
        raise StateError(f"run {run_id} is being run by another process right now")
    if current not in (RunState.PAUSED, RunState.WAITING, RunState.SCHEDULED):
        raise StateError(f"run {run_id} is {current.value}: only a paused or waiting run resumes")
    preflight(app, notice_id)
    return status


async def execute_run(
    app: Rio,
    actor: Person,
    run_id: str,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    resolver: Resolver | None = None,
    dns_port: int | None = None,
) -> RunState:
    """Run the run here, until it is sealed, paused or killed; returns the state it ends in.

    ``on_progress`` is called as the run goes, and once more at its end.

    Raises:
        AccessDeniedError: ``actor`` may not launch runs of the run's notice.
        BudgetStoreError: the rate-budget store failed; the run is paused (resumable).
    """
    from orchestrator.run.runner import Runner

    with app.db.session() as s:
        notice_id = get_run(s, run_id).notice_id
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    runner = Runner(app, run_id, on_progress=on_progress, resolver=resolver, dns_port=dns_port)
    state = await runner.execute()
    if on_progress is not None:
        on_progress(runner.progress)
    if runner.failure is not None:
        with app.db.session() as s:
            row = get_run(s, run_id)
            done, planned = row.done, row.planned
        raise BudgetStoreError(
            f"run {run_id} paused ({done}/{planned} decided): {runner.failure}; "
            f"`rio run resume {run_id}` goes on when the store is back (`rio doctor` checks it)"
        )
    return state


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSummary:
    """How a run ended, as ``rio run start`` and ``rio demo`` sum it up.

    Attributes:
        refused_by_reason: gate refusals and probes' own refusals, by reason.
        checkpoint_note: the last signed checkpoint note, if any.
        pause_why: what the last ``paused`` state leaf gives as the reason ("the window
            closed" for a window or notice pause, and when there is none).
    """

    run_id: str
    state: str
    done: int
    planned: int
    failed: int
    refused_by_reason: Mapping[str, int]
    checkpoint_note: str | None
    pause_why: str
    kill_requested_at: datetime | None
    killed_by: str | None
    kill_reason: str | None

    @property
    def refused(self) -> int:
        return sum(self.refused_by_reason.values())


def run_summary(app: Rio, actor: Person, run_id: str) -> RunSummary:
    """The run's end figures (only reads).

    Raises:
        AccessDeniedError: ``actor`` may not view the run.
        NotFoundError: no such run.
    """
    from orchestrator.ledger.bodies import StateBody
    from orchestrator.ledger.log import read_checkpoints, read_leaves
    from orchestrator.ledger.tally import refusal_reasons

    with app.db.session() as s:
        authorize(s, actor, Action.VIEW_RUN, run_id=run_id, now=app.clock.now())
    reasons = refusal_reasons(read_leaves(app.db, run_id))
    with app.db.session() as s:
        row = get_run(s, run_id)
        summary = RunSummary(
            run_id=run_id,
            state=row.state,
            done=row.done,
            planned=row.planned,
            failed=row.failed,
            refused_by_reason=MappingProxyType(dict(reasons)),
            checkpoint_note=None,
            pause_why="the window closed",
            kill_requested_at=row.kill_requested_at,
            killed_by=row.killed_by,
            kill_reason=row.kill_reason,
        )
    cps = read_checkpoints(app.db, run_id)
    why = "the window closed"
    for leaf in read_leaves(app.db, run_id):
        if leaf.kind == "state":
            body = StateBody.from_json(leaf.data)
            if body.state == RunState.PAUSED.value:
                reason = body.reason
                why = "the window closed" if reason in ("window", "notice") else str(reason)
    return dataclasses.replace(
        summary, checkpoint_note=cps[-1].note if cps else None, pause_why=why
    )
