"""The scheduler: runs start, resume and recur only inside a notice's openings.

Jobs live in rio's own database (APScheduler 3's ``SQLAlchemyJobStore``, tables ``apscheduler*``,
which the migrations leave alone), so they survive a restart. Every job is a one-shot date job
whose function is a module-level function of this module taking only plain ids; it runs on the
process's *active* :class:`RioScheduler` (the one serving), which holds the Rio, the clock and the
runner options. Each re-placement is a new job with its own id, so APScheduler removing a fired
job can never remove its successor.

Kinds of job:

- ``run:<run id>:<when>`` -> :func:`fire_run`: start or resume one run. At fire time the window
  rules are checked again with the clock: a job that fires after its opening passed (rio was
  down) does not start late; the run becomes WAITING with a job at the next opening, or MISSED
  when no opening is left. A run the runner pauses at a window's end gets a resume job at the
  next opening; so does a run whose runner crashed (found when serving starts and at every poll,
  see ``lease.py``).
- ``series:<series id>:<period>:<when>`` -> :func:`fire_series`: a recurring check (e.g. weekly
  for key-supervision objects). Period ``k`` is due at ``anchor + k * every`` and is placed at the
  next opening from then (never two periods in one opening); it creates a new run there.

Only one scheduler fires jobs at a time: with PostgreSQL it holds a session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated connection, with SQLite an exclusive lock on
``RIO_HOME/scheduler.lock``. Others wait and retry; anyone may add jobs.

``fire_due`` fires what is due by the injected clock, without APScheduler's timer thread (``rio
serve --once``, cron, tests); ``serve`` runs the timer thread until told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.clock import Clock, SystemClock
from orchestrator.context import Rio
from orchestrator.errors import InputError, RioError, StateError, StoreError
from orchestrator.intake.notices import Notice, get_notice
from orchestrator.ledger.log import ProbeLog
from orchestrator.run.lease import recover_crashed
from orchestrator.run.lifecycle import RunLifecycle
from orchestrator.run.locks import SchedulerLock, scheduler_lock
from orchestrator.run.runner import Runner
from orchestrator.run.runs import create_run, get_run
from orchestrator.run.state import FINAL, PauseReason, RunState
from orchestrator.run.windows import Opening, next_opening, opening_at

__all__ = [
    "JOB_TABLE",
    "JobInfo",
    "RioScheduler",
    "ScheduledRun",
    "SchedulerLock",
    "fire_run",
    "fire_series",
    "resume_run",
    "schedule_run",
    "scheduler_lock",
]

_LOG = logging.getLogger("orchestrator.run.scheduler")
JOB_TABLE = "apscheduler_jobs"
# A fixed 63-bit key: every rio scheduler on one PostgreSQL database contends for the same lock.
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduledRun:
    """What :meth:`RioScheduler.schedule_run` planned.

    Attributes:
        run_id: the run created (state ``scheduled``).
        start: its planned start, the notice's next opening (UTC).
        series: the recurring series id when ``every`` was given, else ``None``.
        next_period: the start of the series' next period, if any.
    """

    run_id: str
    start: datetime
    series: str | None = None
    next_period: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class JobInfo:
    """A job in the job store, for ``rio run jobs``."""

    id: str
    kind: str
    subject: str
    next_run: datetime | None


# -- the lock that makes one scheduler fire -----------------------------------------------------


# -- job functions (module level, plain ids: they are stored by reference) -------------------

_active: RioScheduler | None = None
_active_guard = threading.Lock()


def _current() -> RioScheduler:
    scheduler = _active
    if scheduler is None:
        raise StateError("no rio scheduler is serving in this process (rio serve)")
    return scheduler


def fire_run(run_id: str) -> None:
    """Job function: start or resume ``run_id`` if its notice is open now."""
    _current().fire_run(run_id)


def fire_series(
    series: str, notice_id: str, technician: str, anchor: str, every_seconds: int, period: int
) -> None:
    """Job function: period ``period`` of a recurring check of ``notice_id``."""
    _current().fire_series(series, notice_id, technician, anchor, every_seconds, period)


# -- the scheduler -----------------------------------------------------------------------------


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler's background scheduler, firing only while running.

    APScheduler 3's loop makes one last pass over the job stores after ``shutdown`` (state
    STOPPED is not PAUSED): it submits due jobs to the stopped executor (an error) and its
    thread then dies on removing them. A store-only scheduler (``rio run schedule``) must not
    touch a job that is due now.
    """

    def _process_jobs(self) -> float | None:
        if self.state != STATE_RUNNING:
            return None
        result: float | None = super()._process_jobs()
        return result


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_STAMP)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return value.astimezone(UTC)


class RioScheduler:
    """APScheduler over rio's database, with rio's window rules at every firing.

    Use as a context manager: entering opens the job store (jobs can be added and listed),
    leaving shuts it down. Nothing fires until :meth:`fire_due` or :meth:`serve` is called.
    """

    def __init__(
        self,
        rio: Rio,
        *,
        clock: Clock | None = None,
        runner_options: Mapping[str, Any] | None = None,
        lock: SchedulerLock | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        """Prepare a scheduler.

        Args:
            rio: the opened rio home (its database holds the jobs).
            clock: decides whether a job fires inside its window (default: the system clock).
            runner_options: extra keyword arguments for :class:`Runner` (resolver, dns_port).
            lock: the single-firer lock (default: :func:`scheduler_lock`).
            on_event: called with a one-line message for every job fired or re-placed.
        """
        self.rio = rio
        self.clock: Clock = clock or SystemClock()
        self.runner_options = dict(runner_options or {})
        self.lock = lock or scheduler_lock(rio)
        self._on_event = on_event
        self._scheduler: Any = _Scheduler(
            # The rio engine carries the SQLite pragmas (WAL, busy timeout) the other writers use.
            jobstores={"default": SQLAlchemyJobStore(engine=rio.db.engine, tablename=JOB_TABLE)},
            executors={"default": {"type": "threadpool", "max_workers": 4}},
            job_defaults={
                # A job that fires late still runs: fire_run itself refuses to start outside
                # the window and re-places it. APScheduler's default grace would drop it.
                "misfire_grace_time": None,
                "coalesce": True,
                "max_instances": 1,
            },
            timezone=UTC,
        )

    # -- lifetime ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open the job store (creating its table if needed); nothing fires yet."""
        if self._scheduler.state != STATE_STOPPED:
            return
        try:
            self._scheduler.start(paused=True)
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.rio.db.safe_url}: job store: {exc}") from exc

    def close(self, *, wait: bool = True) -> None:
        """Stop firing, wait for running jobs (``wait``), close the job store."""
        if self._scheduler.state != STATE_STOPPED:
            self._scheduler.shutdown(wait=wait)

    def __enter__(self) -> RioScheduler:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        global _active
        with _active_guard:
            if _active is not None and _active is not self:
                raise StateError("another rio scheduler is already serving in this process")
            _active = self
        try:
            yield
        finally:
            with _active_guard:
                if _active is self:
                    _active = None

    def _say(self, message: str) -> None:
        _LOG.info("%s", message)
        if self._on_event is not None:
            self._on_event(message)

    # -- adding jobs -------------------------------------------------------------------------

    def _add(self, job_id: str, func: Callable[..., None], when: datetime, args: list[Any]) -> str:
        self.open()
        try:
            self._scheduler.add_job(
                f"{__name__}:{func.__name__}",
                trigger="date",
                run_date=when.astimezone(UTC),
                id=job_id,
                name=job_id,
                args=args,
                replace_existing=True,
            )
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.rio.db.safe_url}: job {job_id}: {exc}") from exc
        return job_id

    def add_run_job(self, run_id: str, when: datetime) -> str:
        """A job that starts or resumes ``run_id`` at ``when``; returns the job id."""
        return self._add(f"run:{run_id}:{_stamp(when)}", fire_run, when, [run_id])

    def _add_series_job(
        self,
        series: str,
        notice_id: str,
        technician: str,
        anchor: datetime,
        every: timedelta,
        period: int,
        when: datetime,
    ) -> str:
        return self._add(
            f"series:{series}:{period}:{_stamp(when)}",
            fire_series,
            when,
            [series, notice_id, technician, anchor.isoformat(), int(every.total_seconds()), period],
        )

    def _notice(self, notice_id: str) -> Notice:
        with self.rio.db.session() as s:
            return get_notice(s, notice_id)

    def _next(self, notice: Notice, after: datetime) -> Opening | None:
        # An opening shorter than one probe's deadline could permit no probe at all.
        return next_opening(notice, after, min_length=notice.policy.probe_timeout)

    def schedule_run(
        self, notice_id: str, technician: str, *, every: timedelta | None = None
    ) -> ScheduledRun:
        """Create a run at the notice's next opening, and a job that starts it then.

        Args:
            notice_id: the notice to run.
            technician: who launches it (a technician of the entrusted vendor).
            every: make it a recurring check: a new run each period, at the first opening
                from the period's start.

        Returns:
            The run and its planned start.

        Raises:
            StateError: no opening is left in the notice's announced windows, or the
                technician may not run this notice.
            InputError: ``every`` is shorter than a minute.
        """
        if every is not None and every < timedelta(minutes=1):
            raise InputError(f"every: {every} is too short (at least 1 minute)")
        notice = self._notice(notice_id)
        now = self.clock.now()
        opening = self._next(notice, now)
        if opening is None:
            raise StateError(
                f"notice {notice_id}: no opening left in its announced windows after "
                f"{now.isoformat()} (every window has passed or none fits the policy)"
            )
        with self.rio.db.session() as s:
            run_id = create_run(s, notice_id, technician, scheduled_for=opening.start, now=now).id
        self.add_run_job(run_id, opening.start)
        self._say(f"run {run_id}: scheduled at {opening.start.isoformat()}")
        if every is None:
            return ScheduledRun(run_id=run_id, start=opening.start)
        series = secrets.token_hex(4)
        following = self._next(notice, max(opening.start + every, opening.end))
        if following is not None:
            self._add_series_job(
                series, notice_id, technician, opening.start, every, 1, following.start
            )
        return ScheduledRun(
            run_id=run_id,
            start=opening.start,
            series=series,
            next_period=following.start if following else None,
        )

    def resume_run(self, run_id: str) -> datetime:
        """Give a paused or waiting run a job at its notice's next opening; returns that start.

        A run left ``running`` by a runner that died is marked ``paused (crash)`` first.

        Raises:
            StateError: the run is not paused, waiting or scheduled, or no opening is left.
        """
        recover_crashed(self.rio, [run_id], clock=self.clock)
        with self.rio.db.session() as s:
            row = get_run(s, run_id)
            state = RunState(row.state)
            notice_id = row.notice_id
        if state not in (RunState.PAUSED, RunState.WAITING, RunState.SCHEDULED):
            raise StateError(f"run {run_id} is {state.value}: only a paused or waiting run resumes")
        notice = self._notice(notice_id)
        opening = self._next(notice, self.clock.now())
        if opening is None:
            raise StateError(f"run {run_id}: notice {notice_id} has no opening left")
        with self.rio.db.session() as s:
            get_run(s, run_id).scheduled_for = opening.start
        self.add_run_job(run_id, opening.start)
        return opening.start

    def recover_crashes(self) -> list[str]:
        """Mark runs whose runner died ``paused (crash)`` and place each at its next opening.

        Returns:
            The crashed runs found.
        """
        found = recover_crashed(self.rio, clock=self.clock)
        for run_id in found:
            try:
                start = self.resume_run(run_id)
            except StateError as exc:
                self._say(f"run {run_id}: its runner had crashed; paused (crash); {exc}")
                continue
            self._say(f"run {run_id}: its runner had crashed; resumes at {start.isoformat()}")
        return found

    def jobs(self) -> list[JobInfo]:
        """Every job in the store, soonest first."""
        self.open()
        out = []
        for job in self._scheduler.get_jobs():
            kind, _, rest = str(job.id).partition(":")
            subject = rest.rsplit(":", 1)[0] if kind == "run" else str(job.args[1])
            out.append(
                JobInfo(id=job.id, kind=kind, subject=subject, next_run=_aware(job.next_run_time))
            )
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(out, key=lambda j: (j.next_run or far, j.id))

    def unschedule(self, subject: str) -> list[str]:
        """Remove the waiting jobs of a run (``R-...``) or of a recurring series (its id).

        A run keeps its state (it can be scheduled again); a series simply has no next period.

        Returns:
            The ids of the jobs removed (empty when there were none).
        """
        self.open()
        removed = []
        for job in self._scheduler.get_jobs():
            kind, _, rest = str(job.id).partition(":")
            owner = rest.rsplit(":", 1)[0] if kind == "run" else rest.split(":", 1)[0]
            if owner == subject:
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(job.id)
                removed.append(str(job.id))
        return removed

    def series_notice(self, series: str) -> str | None:
        """The notice of a series that still has a waiting job, else ``None``."""
        self.open()
        for job in self._scheduler.get_jobs():
            kind, _, rest = str(job.id).partition(":")
            if kind == "series" and rest.split(":", 1)[0] == series:
                return str(job.args[1])
        return None

    # -- firing ------------------------------------------------------------------------------

    def fire_run(self, run_id: str) -> RunState:
        """Start or resume a run now, if its notice is open now; else re-place or miss it.

        Returns:
            The run's state afterwards.
        """
        with self.rio.db.session() as s:
            row = get_run(s, run_id)
            state = RunState(row.state)
            notice = get_notice(s, row.notice_id)
        if state is RunState.RUNNING and recover_crashed(self.rio, [run_id], clock=self.clock):
            self._say(f"run {run_id}: its runner had crashed; paused (crash)")
            state = RunState.PAUSED
        if state in FINAL or state is RunState.RUNNING:
            # Sealed, killed or running elsewhere (rio run start): nothing for the scheduler.
            self._say(f"run {run_id}: {state.value}, not started by the scheduler")
            return state
        now = self.clock.now()
        opening = opening_at(notice, now)
        if opening is None or opening.length < notice.policy.probe_timeout:
            why = f"outside its openings at {now.isoformat()}"
            return self._defer(run_id, notice, now, why=why)
        self._say(f"run {run_id}: starting (opening until {opening.end.isoformat()})")
        runner = Runner(self.rio, run_id, clock=self.clock, **self.runner_options)
        final = asyncio.run(runner.execute())
        self._say(f"run {run_id}: {final.value}")
        if final is RunState.PAUSED:
            with self.rio.db.session() as s:
                reason = get_run(s, run_id).pause_reason
            if reason == PauseReason.WINDOW.value:
                # Still inside this opening (the gate stops a probe_timeout before its end):
                # resume only at a later one.
                after = max(self.clock.now(), opening.end)
                return self._defer(run_id, notice, after, why="paused at the window's end")
        return final

    def _defer(self, run_id: str, notice: Notice, after: datetime, *, why: str) -> RunState:
        """Re-place a run at the next opening (WAITING unless PAUSED), or mark it MISSED."""
        nxt = self._next(notice, after)
        now = self.clock.now()
        with self.rio.db.session() as s:
            row = get_run(s, run_id)
            state = RunState(row.state)
            if nxt is not None and state in (RunState.PAUSED, RunState.WAITING):
                row.scheduled_for = nxt.start  # no move (paused says why): only its start moves
        if nxt is not None:
            target = RunState.PAUSED if state is RunState.PAUSED else RunState.WAITING
            detail = f"{why}; next opening {nxt.start.isoformat()}"
        else:
            target = RunState.MISSED
            detail = f"{why}; no opening left in notice {notice.id}'s windows"
        if target is not state:
            asyncio.run(self._log_state(run_id, target, detail, now, nxt))
        if nxt is not None:
            self.add_run_job(run_id, nxt.start)
            self._say(f"run {run_id}: {target.value}: {detail}")
        else:
            self._say(f"run {run_id}: missed: {detail}")
        return target

    async def _log_state(
        self, run_id: str, state: RunState, why: str, now: datetime, nxt: Opening | None
    ) -> None:
        """Move the run to WAITING or MISSED: its row and state leaf (and a checkpoint) at once."""
        log = ProbeLog(self.rio.db, run_id, self.rio.signing_key, clock=self.rio.clock)
        try:
            life = RunLifecycle(self.rio.db, log)
            if nxt is not None:
                await life.wait(why=why, at=now, next_start=nxt.start)
            else:
                await life.miss(why=why, at=now)
        finally:
            await log.close()

    def fire_series(
        self,
        series: str,
        notice_id: str,
        technician: str,
        anchor: str,
        every_seconds: int,
        period: int,
    ) -> str | None:
        """Create the run of one period of a recurring check and place the next period.

        Returns:
            The run created, or ``None`` when the period's opening had passed (it is re-placed).
        """
        notice = self._notice(notice_id)
        start = datetime.fromisoformat(anchor)
        every = timedelta(seconds=every_seconds)
        now = self.clock.now()
        opening = opening_at(notice, now)
        if opening is None or opening.length < notice.policy.probe_timeout:
            nxt = self._next(notice, now)
            if nxt is None:
                self._say(f"series {series} of notice {notice_id}: no opening left; it ends")
            else:
                when = nxt.start.isoformat()
                self._say(f"series {series}: period {period} late; placed at {when}")
                self._add_series_job(series, notice_id, technician, start, every, period, nxt.start)
            return None
        try:
            with self.rio.db.session() as s:
                run_id = create_run(s, notice_id, technician, scheduled_for=now, now=now).id
        except RioError as exc:
            self._say(f"series {series} of notice {notice_id}: period {period}: {exc}; it ends")
            return None
        self._say(f"series {series}: period {period}: run {run_id}")
        self.add_run_job(run_id, now)
        following = self._next(notice, max(start + every * (period + 1), opening.end))
        if following is not None:
            self._add_series_job(
                series, notice_id, technician, start, every, period + 1, following.start
            )
        return run_id

    def fire_due(self, *, limit: int = 100) -> list[str]:
        """Fire every job due by the clock, soonest first, then return (``rio serve --once``).

        Jobs a firing adds that are already due (a recurring period's run) fire too.
        Nothing fires unless this process holds the scheduler lock.

        Args:
            limit: at most this many jobs fire (a bound, not a batch size).

        Returns:
            The ids of the jobs fired.

        Raises:
            StateError: another scheduler holds the lock.
        """
        self.open()
        owned = not self.lock.held
        if not self.lock.acquire():
            raise StateError("another rio scheduler holds the scheduler lock; nothing fired")
        fired: list[str] = []
        try:
            with self._serving():
                self.recover_crashes()
                for _ in range(limit):
                    now = self.clock.now()
                    due = [
                        j
                        for j in self._scheduler.get_jobs()
                        if j.next_run_time is not None and j.next_run_time <= now
                    ]
                    if not due:
                        break
                    job = min(due, key=lambda j: (j.next_run_time, j.id))
                    # Removed first, as APScheduler does: a job that fails is not retried forever.
                    with contextlib.suppress(JobLookupError):
                        self._scheduler.remove_job(job.id)
                    fired.append(job.id)
                    try:
                        job.func(*job.args)
                    except RioError as exc:
                        self._say(f"job {job.id}: {exc}")
        finally:
            if owned:
                self.lock.release()
        return fired

    def serve(
        self, stop: threading.Event, *, poll_seconds: float = 5.0, retry_seconds: float = 10.0
    ) -> None:
        """Fire jobs on time until ``stop`` is set (``rio serve``).

        Waits (retrying every ``retry_seconds``) while another scheduler holds the lock. Jobs
        added by other processes are seen within ``poll_seconds``. When ``stop`` is set, no new
        job starts and running ones are waited for.
        """
        self.open()
        while not self.lock.acquire():
            self._say(f"another scheduler holds the lock; retrying in {retry_seconds:g} s")
            if stop.wait(retry_seconds):
                return
        try:
            with self._serving():
                self._say("scheduler serving")
                self.recover_crashes()
                self._scheduler.resume()
                self._scheduler.wakeup()
                while not stop.wait(poll_seconds):
                    # A runner elsewhere may have died; `rio run schedule` writes to the store
                    # from another process: look again.
                    self.recover_crashes()
                    self._scheduler.wakeup()
                self._say("scheduler stopping: waiting for running jobs")
                self._scheduler.shutdown(wait=True)
        finally:
            self.lock.release()


def schedule_run(
    rio: Rio,
    notice_id: str,
    technician: str,
    *,
    every: timedelta | None = None,
    clock: Clock | None = None,
) -> str:
    """Create a run of ``notice_id`` at its next opening and a job to start it; returns its id.

    Args:
        rio: the opened rio home.
        notice_id: the notice.
        technician: who launches it.
        every: make it a recurring check with this period (each run at an opening).
        clock: what "now" is (default: the system clock).

    Raises:
        StateError: no opening is left, or the technician may not run this notice.
    """
    with RioScheduler(rio, clock=clock) as scheduler:
        return scheduler.schedule_run(notice_id, technician, every=every).run_id


def resume_run(rio: Rio, run_id: str, *, clock: Clock | None = None) -> datetime:
    """Give a paused or waiting run a job at its next opening; returns that start."""
    with RioScheduler(rio, clock=clock) as scheduler:
        return scheduler.resume_run(run_id)
