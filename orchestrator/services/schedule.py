"""Scheduling as operations: plan a run at a notice's next opening (once or recurring), plan a
paused run's resumption, list the jobs a person may see, remove a run's or a series' jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.access.roles import Action, authorize, visible_notices, visible_runs
from orchestrator.context import Rio
from orchestrator.errors import NotFoundError, StateError
from orchestrator.intake.notices import get_notice
from orchestrator.intake.registry import Person
from orchestrator.run.runs import get_run
from orchestrator.run.scheduler import JobInfo, RioScheduler

__all__ = ["Planned", "list_jobs", "schedule_notice", "schedule_resume", "unschedule"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Planned:
    """A run planned at an opening of its notice.

    Attributes:
        run_id: The run (created ``scheduled``, or the paused run that resumes).
        start: When it starts (UTC).
        tz: The notice's policy's timezone, to show the start in.
        series: The recurring series id when one was asked for.
        next_period: The start of the series' next period, if any.
    """

    run_id: str
    start: datetime
    tz: ZoneInfo
    series: str | None = None
    next_period: datetime | None = None


def _notice_tz(app: Rio, notice_id: str) -> ZoneInfo:
    with app.db.session() as s:
        return get_notice(s, notice_id).policy.tz


def schedule_notice(
    app: Rio, actor: Person, notice_id: str, *, every: timedelta | None = None
) -> Planned:
    """Plan a run of the notice at its next opening, launched by ``actor`` (recurring with
    ``every``: a new run each period).

    Raises:
        AccessDeniedError: ``actor`` may not launch runs of the notice.
        StateError: No opening is left in the notice's announced windows.
        InputError: ``every`` is shorter than a minute.
    """
    with app.db.session() as s:
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    with RioScheduler(app) as scheduler:
        planned = scheduler.schedule_run(notice_id, actor.name, every=every)
    return Planned(
        run_id=planned.run_id,
        start=planned.start,
        tz=_notice_tz(app, notice_id),
        series=planned.series,
        next_period=planned.next_period,
    )


def schedule_resume(app: Rio, actor: Person, run_id: str) -> Planned:
    """Plan a paused or waiting run to go on at its notice's next opening.

    Raises:
        NotFoundError: No such run.
        AccessDeniedError: ``actor`` may not launch runs of the run's notice.
        StateError: The run is not paused, waiting or scheduled, or no opening is left.
    """
    with app.db.session() as s:
        notice_id = get_run(s, run_id).notice_id
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    with RioScheduler(app) as scheduler:
        start = scheduler.resume_run(run_id)
    return Planned(run_id=run_id, start=start, tz=_notice_tz(app, notice_id))


def list_jobs(app: Rio, actor: Person) -> tuple[JobInfo, ...]:
    """The scheduled jobs of the runs and notices ``actor`` may see, soonest first."""
    from orchestrator.store.models import NoticeRow, RunRow

    with app.db.session() as s:
        runs = set(s.scalars(visible_runs(s, actor).with_only_columns(RunRow.id)))
        notices = set(s.scalars(visible_notices(s, actor).with_only_columns(NoticeRow.id)))
    with RioScheduler(app) as scheduler:
        jobs = scheduler.jobs()
    return tuple(j for j in jobs if j.subject in runs or j.subject in notices)


def unschedule(app: Rio, actor: Person, subject: str) -> tuple[str, ...]:
    """Remove a run's waiting job (``R-...``; the run stays) or a recurring series' jobs.

    Returns:
        The ids of the jobs removed.

    Raises:
        NotFoundError: A series with no waiting job.
        AccessDeniedError: ``actor`` may not stop the run (or launch the series' notice).
        StateError: Nothing is scheduled for the run.
    """
    with RioScheduler(app) as scheduler:
        if subject.startswith("R-"):
            with app.db.session() as s:
                authorize(s, actor, Action.KILL_RUN, run_id=subject, now=app.clock.now())
        else:
            notice_id = scheduler.series_notice(subject)
            if notice_id is None:
                raise NotFoundError(f"series {subject}: no waiting job (rio run jobs)")
            with app.db.session() as s:
                authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
        removed = scheduler.unschedule(subject)
    if not removed:
        raise StateError(f"{subject}: nothing is scheduled (rio run jobs)")
    return tuple(removed)
