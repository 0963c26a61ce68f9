"""The run lifecycle: the only code that changes a run's state.

Every move is checked against the transition table (:data:`orchestrator.run.state.ALLOWED`; a
move it does not hold raises :class:`~orchestrator.errors.TransitionError` and changes
nothing) and is written as one transaction: the ``state`` leaf (or leaves) in the run's probe
log and the run row it describes commit together, through
:meth:`~orchestrator.ledger.log.ProbeLog.append_with`. A run that ends is sealed in the same
transaction, with its final checkpoint, so no process death leaves a finished log beside a
``running`` row or a sealed row without its checkpoint.

Operations: :meth:`RunLifecycle.start` (``running``), :meth:`~RunLifecycle.pause`,
:meth:`~RunLifecycle.wait` (``waiting`` for a later window), :meth:`~RunLifecycle.miss`,
:meth:`~RunLifecycle.complete` and :meth:`~RunLifecycle.abort` (each then ``sealed``),
:meth:`~RunLifecycle.seal`. :func:`adopt_logged_end` is the one move without a leaf: the log
already holds it (a runner died after logging its end, before the row said so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.context import Rio
from orchestrator.ledger.bodies import KillBody, StateBody
from orchestrator.ledger.log import ProbeLog
from orchestrator.run.runs import get_run
from orchestrator.run.state import FINAL, PauseReason, RunState, check_transition
from orchestrator.store.db import Database
from orchestrator.store.models import RunRow

__all__ = ["KILLED", "RowChange", "RunLifecycle", "abort_idle", "adopt_logged_end", "move"]

KILLED = "killed"
"""the reason of an ``aborted`` state leaf"""

RowChange = Callable[[RunRow], None]
"""more of the run row to change in a transition's transaction (counts, next start)"""


def move(
    row: RunRow, target: RunState, *, reason: PauseReason | None = None, now: datetime
) -> None:
    """Move a run row to ``target`` (TransitionError if the table forbids it).

    Only this module calls it; everything else asks :class:`RunLifecycle`.
    """
    check_transition(row.id, RunState(row.state), target)
    row.state = target.value
    row.pause_reason = (
        reason.value
        if reason is not None and target in (RunState.PAUSED, RunState.WAITING)
        else None
    )
    if target is RunState.RUNNING and row.started_at is None:
        row.started_at = now
    if target in FINAL and row.ended_at is None:
        row.ended_at = now


def adopt_logged_end(s: Session, row: RunRow, ended: RunState, now: datetime) -> None:
    """The log already holds the run's ``ended`` and ``sealed`` leaves: the row follows it."""
    move(row, ended, now=now)
    move(row, RunState.SEALED, now=now)


class RunLifecycle:
    """Moves one run through its states, each move one transaction with its state leaf.

    Args:
        db: the database holding the run.
        log: the run's open probe log (the caller holds the run's lease).
    """

    def __init__(self, db: Database, log: ProbeLog) -> None:
        self.db = db
        self.log = log
        self.run_id = log.run_id

    async def start(self, *, reason: str, at: datetime, also: RowChange | None = None) -> None:
        """``running``; ``reason`` says started, resumed or resumed after crash."""
        await self._go([(RunState.RUNNING, reason)], at, also=also)

    async def pause(
        self,
        reason: PauseReason,
        *,
        why: str,
        at: datetime,
        also: RowChange | None = None,
    ) -> None:
        """``paused`` for ``reason`` (the row's); the leaf says ``why`` in words."""
        await self._go([(RunState.PAUSED, why)], at, row_reason=reason, also=also, checkpoint=True)

    async def wait(self, *, why: str, at: datetime, next_start: datetime) -> None:
        """``waiting`` for the window that opens at ``next_start``."""

        def also(row: RunRow) -> None:
            row.scheduled_for = next_start

        await self._go(
            [(RunState.WAITING, why)],
            at,
            row_reason=PauseReason.WINDOW,
            also=also,
            checkpoint=True,
        )

    async def miss(self, *, why: str, at: datetime) -> None:
        """``missed``: every window passed before the run could start."""
        await self._go([(RunState.MISSED, why)], at, checkpoint=True)

    async def complete(self, *, at: datetime, also: RowChange | None = None) -> None:
        """``completed`` and ``sealed``, with the final checkpoint."""
        await self._go(
            [(RunState.COMPLETED, None), (RunState.SEALED, None)], at, also=also, checkpoint=True
        )

    async def abort(
        self, *, at: datetime, kill: KillBody | None = None, also: RowChange | None = None
    ) -> None:
        """``aborted`` (killed) and ``sealed``, with the final checkpoint.

        Args:
            kill: the kill leaf to log first, in the same transaction (an idle run's kill;
                a runner logs its kill when it sees it).
        """
        await self._go(
            [(RunState.ABORTED, KILLED), (RunState.SEALED, None)],
            at,
            also=also,
            checkpoint=True,
            first=[("kill", kill.to_json())] if kill is not None else [],
        )

    async def seal(self, *, at: datetime, also: RowChange | None = None) -> None:
        """``sealed``, with the final checkpoint (the run already ended)."""
        await self._go([(RunState.SEALED, None)], at, also=also, checkpoint=True)

    async def _go(
        self,
        steps: list[tuple[RunState, str | None]],
        at: datetime,
        *,
        row_reason: PauseReason | None = None,
        also: RowChange | None = None,
        checkpoint: bool = False,
        first: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        # Refuse before anything is queued: an illegal move changes nothing.
        current = await asyncio.to_thread(self._state)
        for target, _ in steps:
            check_transition(self.run_id, current, target)
            current = target

        def change(s: Session) -> None:
            row = get_run(s, self.run_id)
            for target, _ in steps:
                move(row, target, reason=row_reason, now=at)
            if also is not None:
                also(row)

        leaves = list(first or [])
        leaves += [("state", StateBody(state=t.value, reason=why).to_json()) for t, why in steps]
        await self.log.append_with(leaves, at, change, checkpoint=checkpoint)

    def _state(self) -> RunState:
        with self.db.session() as s:
            return RunState(get_run(s, self.run_id).state)


async def abort_idle(rio: Rio, run_id: str, now: datetime) -> None:
    """Kill a run no process is running (the caller holds its lease): log the kill request
    (by whom, why, from the row), ``aborted`` and ``sealed``, and seal the row, at once."""
    with rio.db.session() as s:
        row = get_run(s, run_id)
        kill = KillBody(by=row.killed_by or "", reason=row.kill_reason or "")
    log = ProbeLog(rio.db, run_id, rio.signing_key, clock=rio.clock)
    try:
        await RunLifecycle(rio.db, log).abort(at=now, kill=kill)
    finally:
        await log.close()
