"""Where scheduled work waits: APScheduler 3's job store in rio's own database.

Jobs live in tables ``apscheduler*`` (which the migrations leave alone), so they survive a
restart. Every job is a one-shot date job with its own id; a re-placement is a new job, so
removing a fired job can never remove its successor. A job's stored function reference only
names what kind of work it is (``orchestrator.run.scheduler:fire_run``); nothing here calls it.
:class:`~orchestrator.run.scheduler.RioScheduler` takes due jobs out of the store and does the
work itself, so no job needs a process-wide "current scheduler" to find its owner.

Job ids:

- ``run:<run id>:<when>`` - start or resume one run;
- ``series:<series id>:<period>:<when>`` - one period of a recurring check.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.errors import StoreError
from orchestrator.store.db import Database

__all__ = ["JOB_TABLE", "JobInfo", "JobStore", "StoredJob"]

JOB_TABLE = "apscheduler_jobs"
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, kw_only=True, slots=True)
class JobInfo:
    """A job in the job store, for ``rio run jobs``."""

    id: str
    kind: str
    subject: str
    next_run: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredJob:
    """A job taken out of the store to be done: its id, kind of work and plain arguments."""

    id: str
    func: str
    """the stored function reference, ``module:name``"""
    args: tuple[Any, ...]
    due: datetime


class _Store(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler's scheduler used as the store's front only: it is started paused and never
    resumed, so its own timer never fires anything (rio's scheduler does)."""

    def _process_jobs(self) -> float | None:
        # APScheduler 3's loop makes one last pass over the stores after shutdown (STOPPED is
        # not PAUSED); a store-only scheduler must not touch a job that is due then.
        return None


def stamp(when: datetime) -> str:
    """The time part of a job id."""
    return when.astimezone(UTC).strftime(_STAMP)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return value.astimezone(UTC)


def _owner(job_id: str) -> tuple[str, str]:
    """(kind, subject): a run job's run id, a series job's series id."""
    kind, _, rest = job_id.partition(":")
    return kind, rest.rsplit(":", 1)[0] if kind == "run" else rest.split(":", 1)[0]


class JobStore:
    """The jobs of one rio database: add, list, take out when due, remove."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._scheduler: Any = _Store(
            # The rio engine carries the SQLite pragmas (WAL, busy timeout) the other writers use.
            jobstores={"default": SQLAlchemyJobStore(engine=db.engine, tablename=JOB_TABLE)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    def open(self) -> None:
        """Open the store (creating its table if needed)."""
        if self._scheduler.state != STATE_STOPPED:
            return
        try:
            self._scheduler.start(paused=True)
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self._db.safe_url}: job store: {exc}") from exc

    def close(self) -> None:
        if self._scheduler.state != STATE_STOPPED:
            self._scheduler.shutdown(wait=False)

    def add(self, job_id: str, func: str, when: datetime, args: list[Any]) -> str:
        """Store a one-shot job (replacing one with the same id); returns its id."""
        self.open()
        try:
            self._scheduler.add_job(
                func,
                trigger="date",
                run_date=when.astimezone(UTC),
                id=job_id,
                name=job_id,
                args=args,
                replace_existing=True,
            )
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self._db.safe_url}: job {job_id}: {exc}") from exc
        return job_id

    def jobs(self) -> list[JobInfo]:
        """Every job in the store, soonest first."""
        self.open()
        out = []
        for job in self._scheduler.get_jobs():
            kind, subject = _owner(str(job.id))
            if kind == "series":
                subject = str(job.args[1])  # listed under its notice
            out.append(
                JobInfo(id=job.id, kind=kind, subject=subject, next_run=_aware(job.next_run_time))
            )
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(out, key=lambda j: (j.next_run or far, j.id))

    def next_due(self) -> datetime | None:
        """When the soonest job is due (``None``: no job)."""
        times = [j.next_run for j in self.jobs() if j.next_run is not None]
        return min(times) if times else None

    def take_due(self, now: datetime) -> StoredJob | None:
        """Remove the soonest job due by ``now`` from the store and return it.

        Removed before it is done, as APScheduler does: a job that fails is not retried forever.
        """
        self.open()
        due = [
            j
            for j in self._scheduler.get_jobs()
            if j.next_run_time is not None and j.next_run_time <= now
        ]
        if not due:
            return None
        job = min(due, key=lambda j: (j.next_run_time, j.id))
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job.id)
        return StoredJob(
            id=str(job.id), func=str(job.func_ref), args=tuple(job.args), due=job.next_run_time
        )

    def unschedule(self, subject: str) -> list[str]:
        """Remove the waiting jobs of a run (``R-...``) or of a recurring series (its id)."""
        self.open()
        removed = []
        for job in self._scheduler.get_jobs():
            if _owner(str(job.id))[1] == subject:
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(job.id)
                removed.append(str(job.id))
        return removed

    def series_notice(self, series: str) -> str | None:
        """The notice of a series that still has a waiting job, else ``None``."""
        self.open()
        for job in self._scheduler.get_jobs():
            if _owner(str(job.id)) == ("series", series):
                return str(job.args[1])
        return None
