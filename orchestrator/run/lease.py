"""Who runs a run right now: a per-run lease that dies with its process, and crash recovery.

A runner holds its run's lease for as long as it executes the run: with PostgreSQL a session
advisory lock (key derived from the run id) on a connection of its own, otherwise an exclusive
``flock`` on ``RIO_HOME/runs/<run>.lock``. The kernel (or PostgreSQL, when the connection drops)
releases it when the process dies, however it dies - SIGKILL and power loss included - so no
heartbeat has to lapse and no clock has to be trusted:

- two processes cannot run the same run at once: the second one is refused
  (:class:`~orchestrator.errors.StateError`) before it logs anything;
- a run whose state is ``running`` while nobody holds its lease has crashed.
  :func:`recover_crashed` marks it ``paused (crash)``: every intent that never got an outcome
  gets an ``unknown`` outcome (it was maybe sent; it is never sent again), a ``state`` leaf
  ``paused``/``crash`` follows and a checkpoint covers them. From there it resumes like any
  paused run: the runner skips every plan item its log already decided. A runner that died
  after logging the run's ``sealed`` state, before the database said so, left a finished run:
  the log decides, and the run becomes ``completed``/``aborted`` and ``sealed``.

Who looks: ``rio run resume`` and ``rio run start`` (for the notice's runs), ``rio run kill`` and
``rio run status`` (for theirs), ``rio serve`` (every run, when it starts serving and at every
poll), and the runner itself (it holds the lease, so a ``running`` state it finds is a crash).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType

from sqlalchemy import select

from orchestrator.clock import Clock
from orchestrator.context import Rio
from orchestrator.errors import StateError
from orchestrator.ledger.bodies import OutcomeBody, StateBody, unknown_outcome
from orchestrator.ledger.log import ProbeLog, read_leaves
from orchestrator.run.lifecycle import RunLifecycle, adopt_logged_end
from orchestrator.run.locks import SchedulerLock, _AdvisoryLock, _FileLock
from orchestrator.run.runs import get_run
from orchestrator.run.state import PauseReason, RunState
from orchestrator.store.models import RunRow

__all__ = ["RunLease", "open_intents", "recover_crashed", "runner_alive", "settle_crash"]

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _advisory_key(run_id: str) -> int:
    # 63 bits of a domain-separated hash: never the scheduler's key, nor another run's in practice.
    return int.from_bytes(hashlib.sha256(b"rio run lease\0" + run_id.encode()).digest()[:8]) >> 1


class RunLease:
    """The right to execute one run, held by at most one process at a time.

    Use as a context manager (acquires or raises), or :meth:`try_acquire` / :meth:`release`.
    """

    def __init__(self, rio: Rio, run_id: str) -> None:
        self.run_id = run_id
        self._lock: SchedulerLock
        if rio.db.dialect == "postgresql":
            self._lock = _AdvisoryLock(rio, _advisory_key(run_id))
        else:
            name = run_id if _SAFE_ID.fullmatch(run_id) else _advisory_key(run_id)
            self._lock = _FileLock(rio.settings.home / "runs" / f"{name}.lock")

    @property
    def held(self) -> bool:
        return self._lock.held

    def try_acquire(self) -> bool:
        """Take the lease without waiting; False when another process holds it."""
        return self._lock.acquire()

    def acquire(self) -> RunLease:
        """Take the lease or raise StateError: someone else is running this run."""
        if not self._lock.acquire():
            raise StateError(
                f"run {self.run_id} is being run by another process right now "
                "(two processes never run one run; `rio run kill` stops it)"
            )
        return self

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def runner_alive(rio: Rio, run_id: str) -> bool:
    """Whether some process holds ``run_id``'s lease now (it is being executed)."""
    lease = RunLease(rio, run_id)
    if lease.try_acquire():
        lease.release()
        return False
    return True


def open_intents(rio: Rio, run_id: str) -> list[int]:
    """Sequence numbers of the run's intents that have no outcome yet, in log order."""
    waiting: dict[int, None] = {}
    for leaf in read_leaves(rio.db, run_id):
        if leaf.kind == "intent":
            waiting[leaf.seq] = None
        elif leaf.kind == "outcome":
            waiting.pop(OutcomeBody.from_json(leaf.data).intent, None)
    return list(waiting)


async def settle_crash(
    rio: Rio, run_id: str, log: ProbeLog, orphans: Iterable[int], now: datetime
) -> bool:
    """With the lease held: if the run was left ``running``, mark it ``paused (crash)``.

    Every intent in ``orphans`` gets an ``unknown`` outcome first (whatever the state: an intent
    without an outcome is never sent again). Returns whether the run had crashed.
    """
    for seq in orphans:
        await log.append("outcome", unknown_outcome(seq), now)
    with rio.db.session() as s:
        if RunState(get_run(s, run_id).state) is not RunState.RUNNING:
            return False
    ended = _logged_end(rio, run_id)
    if ended is not None:
        # It died after logging its end but before the database said so: the log decides.
        with rio.db.session() as s:
            adopt_logged_end(s, get_run(s, run_id), ended, now)
        return False
    await RunLifecycle(rio.db, log).pause(PauseReason.CRASH, why=PauseReason.CRASH.value, at=now)
    return True


def _logged_end(rio: Rio, run_id: str) -> RunState | None:
    """COMPLETED or ABORTED when the log already holds the run's ``sealed`` state leaf."""
    end: RunState | None = None
    sealed = False
    for leaf in read_leaves(rio.db, run_id):
        if leaf.kind == "state":
            state = StateBody.from_json(leaf.data).state
            if state in (RunState.COMPLETED.value, RunState.ABORTED.value):
                end = RunState(state)
            sealed = state == RunState.SEALED.value
    return end if sealed else None


async def recover_crashed(
    rio: Rio, run_ids: Iterable[str] | None = None, *, clock: Clock | None = None
) -> list[str]:
    """Mark every crashed run ``paused (crash)``; returns their ids.

    Async, like the probe log it writes to: the caller's event loop does the work (a sync
    entry point runs it with ``asyncio.run``).

    Args:
        rio: the opened rio home.
        run_ids: the runs to look at (default: every run in state ``running``). Runs in another
            state, and runs whose lease a live process holds, are left alone.
        clock: the time of the ``unknown`` outcomes and the state leaf.
    """
    when = clock or rio.clock
    with rio.db.session() as s:
        q = select(RunRow.id).where(RunRow.state == RunState.RUNNING.value)
        if run_ids is not None:
            q = q.where(RunRow.id.in_(list(run_ids)))
        candidates = list(s.scalars(q.order_by(RunRow.created_at)))
    crashed = []
    for run_id in candidates:
        lease = RunLease(rio, run_id)
        if not lease.try_acquire():
            continue
        try:
            if await _recover_one(rio, run_id, when):
                crashed.append(run_id)
        finally:
            lease.release()
    return crashed


async def _recover_one(rio: Rio, run_id: str, clock: Clock) -> bool:
    log = ProbeLog(rio.db, run_id, rio.signing_key, clock=clock)
    try:
        orphans = await asyncio.to_thread(open_intents, rio, run_id)
        return await settle_crash(rio, run_id, log, orphans, clock.now())
    finally:
        await log.close()
