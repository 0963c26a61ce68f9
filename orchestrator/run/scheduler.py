"""The scheduler: runs start, resume and recur only inside a notice's openings.

Jobs wait in rio's own database (:mod:`orchestrator.run.jobstore`). A :class:`RioScheduler`
takes the due ones out and does them itself, with the window rules checked again by its clock:

- a run job starts or resumes one run. A job that fires after its opening passed (rio was
  down) does not start late; the run becomes WAITING with a job at the next opening, or MISSED
  when no opening is left. A run the runner pauses at a window's end gets a resume job at the
  next opening; so does a run whose runner crashed (found when serving starts and at every
  poll, see ``lease.py``).
- a series job is one period of a recurring check (e.g. weekly for key-supervision objects).
  Period ``k`` is due at ``anchor + k * every`` and is placed at the next opening from then
  (never two periods in one opening); it creates a new run there.

The scheduler belongs to whoever made it: the jobs name only the kind of work and plain ids, and
nothing in this module is global. Firing is async; the entry point owns the event loop
(``rio serve`` runs :meth:`RioScheduler.serve` or, with ``--once``, :meth:`RioScheduler.fire_due`
under ``asyncio.run``). Only one scheduler fires at a time (:mod:`orchestrator.run.locks`);
anyone may add jobs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from orchestrator.clock import Clock
from orchestrator.context import Rio
from orchestrator.errors import InputError, RioError, StateError
from orchestrator.intake.notices import Notice, get_notice
from orchestrator.ledger.log import ProbeLog
from orchestrator.run.jobstore import JOB_TABLE, JobInfo, JobStore, StoredJob, stamp
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
    "schedule_run",
    "scheduler_lock",
]

_LOG = logging.getLogger("orchestrator.run.scheduler")


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


# -- the kinds of work a job names ---------------------------------------------------------------
# Stored jobs reference these by name (``orchestrator.run.scheduler:fire_run``), so the names
# stay; the scheduler that takes a job out of the store does the work, never these functions.


def fire_run(run_id: str) -> None:
    """The kind of a run job (start or resume ``run_id``); done by :meth:`RioScheduler.fire_run`."""
    raise StateError(f"run {run_id}: a job is done by the rio scheduler that takes it (rio serve)")


def fire_series(
    series: str, notice_id: str, technician: str, anchor: str, every_seconds: int, period: int
) -> None:
    """The kind of a series job; done by :meth:`RioScheduler.fire_series`."""
    raise StateError(f"series {series}: a job is done by the rio scheduler that takes it")


_RUN_JOB = f"{__name__}:{fire_run.__name__}"
_SERIES_JOB = f"{__name__}:{fire_series.__name__}"


class RioScheduler:
    """rio's window rules over the job store: plan, place and fire runs.

    Use as a context manager: entering opens the job store (jobs can be added and listed),
    leaving closes it. Nothing fires until :meth:`fire_due` or :meth:`serve` is awaited.
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
            clock: decides whether a job fires inside its window (default: the app's clock).
            runner_options: extra keyword arguments for :class:`Runner` (resolver, dns_port).
            lock: the single-firer lock (default: :func:`scheduler_lock`).
            on_event: called with a one-line message for every job fired or re-placed.
        """
        self.rio = rio
        self.clock: Clock = clock or rio.clock
        self.runner_options = dict(runner_options or {})
        self.lock = lock or scheduler_lock(rio)
        self._on_event = on_event
        self._store = JobStore(rio.db)

    # -- lifetime ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open the job store (creating its table if needed); nothing fires yet."""
        self._store.open()

    def close(self) -> None:
        """Close the job store."""
        self._store.close()

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

    def _say(self, message: str) -> None:
        _LOG.info("%s", message)
        if self._on_event is not None:
            self._on_event(message)

    # -- adding jobs -------------------------------------------------------------------------

    def add_run_job(self, run_id: str, when: datetime) -> str:
        """A job that starts or resumes ``run_id`` at ``when``; returns the job id."""
        return self._store.add(f"run:{run_id}:{stamp(when)}", _RUN_JOB, when, [run_id])

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
        return self._store.add(
            f"series:{series}:{period}:{stamp(when)}",
            _SERIES_JOB,
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

    async def resume_run(self, run_id: str) -> datetime:
        """Give a paused or waiting run a job at its notice's next opening; returns that start.

        A run left ``running`` by a runner that died is marked ``paused (crash)`` first.

        Raises:
            StateError: the run is not paused, waiting or scheduled, or no opening is left.
        """
        await recover_crashed(self.rio, [run_id], clock=self.clock)
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

    async def recover_crashes(self) -> list[str]:
        """Mark runs whose runner died ``paused (crash)`` and place each at its next opening.

        Returns:
            The crashed runs found.
        """
        found = await recover_crashed(self.rio, clock=self.clock)
        for run_id in found:
            try:
                start = await self.resume_run(run_id)
            except StateError as exc:
                self._say(f"run {run_id}: its runner had crashed; paused (crash); {exc}")
                continue
            self._say(f"run {run_id}: its runner had crashed; resumes at {start.isoformat()}")
        return found

    def jobs(self) -> list[JobInfo]:
        """Every job in the store, soonest first."""
        return self._store.jobs()

    def unschedule(self, subject: str) -> list[str]:
        """Remove the waiting jobs of a run (``R-...``) or of a recurring series (its id).

        A run keeps its state (it can be scheduled again); a series simply has no next period.

        Returns:
            The ids of the jobs removed (empty when there were none).
        """
        return self._store.unschedule(subject)

    def series_notice(self, series: str) -> str | None:
        """The notice of a series that still has a waiting job, else ``None``."""
        return self._store.series_notice(series)

    # -- firing ------------------------------------------------------------------------------

    async def fire_run(self, run_id: str) -> RunState:
        """Start or resume a run now, if its notice is open now; else re-place or miss it.

        Returns:
            The run's state afterwards.
        """
        with self.rio.db.session() as s:
            row = get_run(s, run_id)
            state = RunState(row.state)
            notice = get_notice(s, row.notice_id)
        if state is RunState.RUNNING and await recover_crashed(
            self.rio, [run_id], clock=self.clock
        ):
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
            return await self._defer(run_id, notice, now, why=why)
        self._say(f"run {run_id}: starting (opening until {opening.end.isoformat()})")
        runner = Runner(self.rio, run_id, clock=self.clock, **self.runner_options)
        final = await runner.execute()
        self._say(f"run {run_id}: {final.value}")
        if final is RunState.PAUSED:
            with self.rio.db.session() as s:
                reason = get_run(s, run_id).pause_reason
            if reason == PauseReason.WINDOW.value:
                # Still inside this opening (the gate stops a probe_timeout before its end):
                # resume only at a later one.
                after = max(self.clock.now(), opening.end)
                return await self._defer(run_id, notice, after, why="paused at the window's end")
        return final

    async def _defer(self, run_id: str, notice: Notice, after: datetime, *, why: str) -> RunState:
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
            await self._log_state(run_id, detail, now, nxt)
        if nxt is not None:
            self.add_run_job(run_id, nxt.start)
            self._say(f"run {run_id}: {target.value}: {detail}")
        else:
            self._say(f"run {run_id}: missed: {detail}")
        return target

    async def _log_state(self, run_id: str, why: str, now: datetime, nxt: Opening | None) -> None:
        """Move the run to WAITING or MISSED: its row and state leaf (and a checkpoint) at once."""
        log = ProbeLog(self.rio.db, run_id, self.rio.signing_key, clock=self.clock)
        try:
            life = RunLifecycle(self.rio.db, log)
            if nxt is not None:
                await life.wait(why=why, at=now, next_start=nxt.start)
            else:
                await life.miss(why=why, at=now)
        finally:
            await log.close()

    async def fire_series(
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

    async def _do(self, job: StoredJob) -> None:
        """Do one job taken out of the store; a rio error is said, not raised."""
        try:
            if job.func == _RUN_JOB:
                await self.fire_run(*job.args)
            elif job.func == _SERIES_JOB:
                await self.fire_series(*job.args)
            else:
                raise StateError(f"job {job.id}: unknown kind of work {job.func!r}")
        except RioError as exc:
            self._say(f"job {job.id}: {exc}")

    async def fire_due(self, *, limit: int = 100) -> list[str]:
        """Fire every job due by the clock, soonest first, one after the other, then return
        (``rio serve --once``).

        Jobs a firing adds that are already due (a recurring period's run) fire too.
        Nothing fires unless this scheduler holds the scheduler lock.

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
            await self.recover_crashes()
            for _ in range(limit):
                job = self._store.take_due(self.clock.now())
                if job is None:
                    break
                fired.append(job.id)
                await self._do(job)
        finally:
            if owned:
                self.lock.release()
        return fired

    async def serve(
        self,
        stop: threading.Event,
        *,
        poll_seconds: float = 5.0,
        retry_seconds: float = 10.0,
        max_running: int = 4,
    ) -> None:
        """Fire jobs on time until ``stop`` is set (``rio serve``).

        Waits (retrying every ``retry_seconds``) while another scheduler holds the lock. Due
        jobs run side by side (at most ``max_running`` at once); jobs added by other processes
        are seen within ``poll_seconds``, and so are runners elsewhere that died. When ``stop``
        is set, no new job starts and running ones are waited for.
        """
        self.open()
        while not self.lock.acquire():
            self._say(f"another scheduler holds the lock; retrying in {retry_seconds:g} s")
            if await asyncio.to_thread(stop.wait, retry_seconds):
                return
        running: set[asyncio.Task[None]] = set()
        try:
            self._say("scheduler serving")
            await self.recover_crashes()
            while not stop.is_set():
                while len(running) < max_running:
                    job = self._store.take_due(self.clock.now())
                    if job is None:
                        break
                    task = asyncio.create_task(self._do(job), name=f"rio-job-{job.id}")
                    running.add(task)
                    task.add_done_callback(running.discard)
                if await asyncio.to_thread(stop.wait, self._pause(poll_seconds)):
                    break
                # A runner elsewhere may have died; `rio run schedule` writes to the store
                # from another process: look again.
                await self.recover_crashes()
            self._say("scheduler stopping: waiting for running jobs")
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        finally:
            self.lock.release()

    def _pause(self, poll_seconds: float) -> float:
        """How long to wait before looking again: until the next job is due, at most a poll."""
        due = self._store.next_due()
        if due is None:
            return poll_seconds
        # At least a tenth of a second: a due job waiting for a free slot is not a busy loop.
        return min(poll_seconds, max(0.1, (due - self.clock.now()).total_seconds()))


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
        clock: what "now" is (default: the app's clock).

    Raises:
        StateError: no opening is left, or the technician may not run this notice.
    """
    with RioScheduler(rio, clock=clock) as scheduler:
        return scheduler.schedule_run(notice_id, technician, every=every).run_id
