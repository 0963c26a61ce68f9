"""Audit as operations: verify a run (its archive, or its probe log while the record is open),
verify an uploaded archive, browse and filter a run's leaves."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from orchestrator.access.roles import Action, authorize
from orchestrator.audit import AuditReport
from orchestrator.audit.logview import LogEntry, LogFilter, TargetSummary
from orchestrator.audit.verify import verify_archive
from orchestrator.context import Rio
from orchestrator.errors import NotFoundError, StateError
from orchestrator.intake.registry import Person
from orchestrator.ledger.leaves import Leaf
from orchestrator.ledger.verify import LogVerdict
from orchestrator.record.archive import export_archive
from orchestrator.run.state import FINAL, RunState
from orchestrator.store.models import RecordRow, RunRow

__all__ = [
    "LeafPage",
    "LogCheck",
    "is_known_run",
    "review_leaves",
    "run_leaves",
    "verify_run",
    "verify_run_archive",
    "verify_uploaded_archive",
]

MAX_UPLOAD = 256 * 1024 * 1024
"""The largest archive the API verifies (bytes)."""


def verify_run_archive(rio: Rio, person: Person, run_id: str, *, now: datetime) -> AuditReport:
    """Export the closed run's archive and verify it offline, pinned to this home's key.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        StateError: The run's record is not closed (no archive exists yet).
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
        closed = s.scalar(
            select(RecordRow.closed_at).where(
                RecordRow.run_id == run_id, RecordRow.closed_at.is_not(None)
            )
        )
    if closed is None:
        raise StateError(f"run {run_id}: the record is not closed, so there is no archive yet")
    return _verify_exported(rio, run_id, now)


def _verify_exported(rio: Rio, run_id: str, now: datetime) -> AuditReport:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{run_id}.tar"
        export_archive(rio.db, run_id, out, signing_key=rio.signing_key, now=now)
        return verify_archive(out, trusted_key_id=rio.signing_key_id, now=now)


@dataclass(frozen=True, kw_only=True, slots=True)
class LogCheck:
    """A run whose record is not closed: its probe log verified so far.

    Attributes:
        run_id: The run.
        state: Its state now.
        shown: The state as a reader should see it (``crashed (...)`` for a running run whose
            runner is gone, the pause reason beside ``paused``).
        finished: The run is in a final state (no more leaves will come).
        verdict: The log's verdict; for an unfinished run, of the leaves there so far.
    """

    run_id: str
    state: RunState
    shown: str
    finished: bool
    verdict: LogVerdict

    def __bool__(self) -> bool:
        return bool(self.verdict)


def run_leaves(rio: Rio, person: Person, run_id: str) -> Iterator[Leaf]:
    """The run's probe log, leaf by leaf (the reader is authorised before the first is read).

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
    """
    from orchestrator.ledger.log import read_leaves

    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=rio.clock.now())
    return read_leaves(rio.db, run_id)


def is_known_run(rio: Rio, run_id: str) -> bool:
    """Whether ``run_id`` names a run here. Anyone may ask (the front end asks before it asks
    for a key, so a mistyped archive name is called that, not a missing key)."""
    with rio.db.session() as s:
        return s.get(RunRow, run_id) is not None


def verify_run(rio: Rio, person: Person, run_id: str) -> AuditReport | LogCheck:
    """Verify a run: through a temporary archive (pinned to this home's key) when its record
    is closed, else its probe log alone (so far, for a run still open).

    Raises:
        NotFoundError: No such run.
        AccessDeniedError: The person may not read the run's ledger.
    """
    from orchestrator.ledger.verify import verify_run as verify_log
    from orchestrator.run.lease import runner_alive

    with rio.db.session() as s:
        run = s.get(RunRow, run_id)
        if run is None:
            raise NotFoundError(f"{run_id}: neither an archive file nor a known run")
        state, pause_reason = RunState(run.state), run.pause_reason
        closed = s.scalar(
            select(RecordRow.closed_at).where(
                RecordRow.run_id == run_id, RecordRow.closed_at.is_not(None)
            )
        )
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=rio.clock.now())
    if closed is not None:
        return _verify_exported(rio, run_id, rio.clock.now())
    open_run = state not in FINAL
    if open_run and state is RunState.RUNNING and not runner_alive(rio, run_id):
        shown = "crashed (its runner is gone; `rio run resume` goes on)"
    else:
        shown = f"{state.value} ({pause_reason})" if pause_reason else state.value
    verdict = verify_log(rio, run_id, unfinished=open_run)
    return LogCheck(run_id=run_id, state=state, shown=shown, finished=not open_run, verdict=verdict)


def verify_uploaded_archive(rio: Rio, person: Person, data: bytes, *, now: datetime) -> AuditReport:
    """Verify an archive someone brings, pinned to this home's orchestrator key.

    Raises:
        AccessDeniedError: The person may not read ledgers (auditors and officers may).
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, now=now)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "uploaded.tar"
        path.write_bytes(data)
        return verify_archive(path, trusted_key_id=rio.signing_key_id, now=now)


@dataclass(frozen=True, kw_only=True, slots=True)
class LeafPage:
    """One page of a run's leaves that pass a filter, and the per-target summary of them all.

    Attributes:
        entries: The leaves listed, readably, in log order (at most the page's limit).
        targets: Per target: probes, refusals, pauses, peak rate (of every matching leaf).
        matched: How many leaves matched the filter in all.
        next_after: The ``after`` that lists the next page; ``None`` on the last.
    """

    entries: tuple[LogEntry, ...]
    targets: tuple[TargetSummary, ...]
    matched: int
    next_after: int | None


def review_leaves(
    rio: Rio,
    person: Person,
    run_id: str,
    flt: LogFilter,
    *,
    after: int = -1,
    limit: int = 500,
) -> LeafPage:
    """Browse a run's leaves as ``rio audit log RUN`` lists them: filtered by target, probe,
    time and refusal, a page at a time (the leaves after sequence number ``after``).

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        NotFoundError: No such run.
    """
    from orchestrator.audit.logview import LogReview

    leaves = run_leaves(rio, person, run_id)
    review = LogReview(flt)
    listed: list[LogEntry] = []
    matched = 0
    more = False
    for entry in review.entries(leaves):
        matched += 1
        if entry.seq <= after:
            continue
        if len(listed) < limit:
            listed.append(entry)
        else:
            more = True
    return LeafPage(
        entries=tuple(listed),
        targets=tuple(review.summaries()),
        matched=matched,
        next_after=listed[-1].seq if more and listed else None,
    )
