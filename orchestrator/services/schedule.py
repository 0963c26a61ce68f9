"""The scheduler's jobs as operations: plan a paused run's resumption, list the jobs a person may
see, remove a run's or a series' jobs. (A new run, now or at the next opening, is
:func:`orchestrator.services.runs.start_run` / :func:`~orchestrator.services.runs.schedule_run`.)"""

from __future__ import annotations

from orchestrator.access.roles import Action, authorize, visible_notices, visible_runs
from orchestrator.context import Rio
from orchestrator.errors import NotFoundError, StateError
from orchestrator.intake.registry import Person
from orchestrator.run.runs import get_run
from orchestrator.run.scheduler import JobInfo, RioScheduler
from orchestrator.services.runs import LaunchedRun

__all__ = ["list_jobs", "schedule_resume", "unschedule"]


async def schedule_resume(app: Rio, actor: Person, run_id: str) -> LaunchedRun:
    """Plan a paused or waiting run to go on at its notice's next opening.

    Raises:
        NotFoundError: No such run.
        AccessDeniedError: ``actor`` may not launch runs of the run's notice.
        StateError: The run is not paused, waiting or scheduled, or no opening is left.
    """
    with app.db.session() as s:
        notice_id = get_run(s, run_id).notice_id
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=notice_id, now=app.clock.now())
    with RioScheduler(app, clock=app.clock) as scheduler:
        start = await scheduler.resume_run(run_id)
    return LaunchedRun(run_id=run_id, notice_id=notice_id, start=start)


def list_jobs(app: Rio, actor: Person) -> tuple[JobInfo, ...]:
    """The scheduled jobs of the runs and notices ``actor`` may see, soonest first."""
    from orchestrator.store.models import NoticeRow, RunRow

    with app.db.session() as s:
        now = app.clock.now()
        runs = set(s.scalars(visible_runs(s, actor, now=now).with_only_columns(RunRow.id)))
        notices = set(s.scalars(visible_notices(s, actor, now=now).with_only_columns(NoticeRow.id)))
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
