"""Rectification orders and re-checks (MPS Order 151, Art. 19).

An officer orders the object to rectify some findings by a deadline (a date, or N working days
from the order). The re-check is due within 3 working days after the deadline, or after the
object's written application for an early re-check; feedback on the re-check is due within 3
working days after it. Working days come from
:class:`~orchestrator.record.workdays.WorkingCalendar`, which refuses dates in years it does
not cover (:class:`~orchestrator.errors.CalendarRangeError`).

Ordering rectification changes the record's conclusions, so it re-assembles the record (a new
version; earlier signatures no longer count). It is refused once the record is closed. The
follow-up (application, re-check, feedback) is tracked on the order itself and goes into the
archive, not into the closed record.

The re-check is a run of the same probes on the same targets inside an announced window;
:func:`recheck_plan` says which notice window covers the due date, or which notice must be
announced by when. Scheduling that run is the runner's job; :func:`record_recheck` links it to
the order and computes the finding diff (by the findings' stable keys,
:func:`~orchestrator.record.findings.finding_diff`) and the feedback due date.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    StateError,
    TransitionError,
)
from orchestrator.intake.notices import Notice, get_notice, list_notices
from orchestrator.intake.registry import Person
from orchestrator.record.assemble import assemble_record, require_open
from orchestrator.record.findings import FindingDiff, FindingView, finding_diff, load_findings
from orchestrator.record.workdays import CALENDAR_ZONE, WorkingCalendar
from orchestrator.run.state import RunState
from orchestrator.store.db import Database
from orchestrator.store.models import FindingRow, RectificationRow, RunRow

__all__ = [
    "FEEDBACK_WORKING_DAYS",
    "ORDER_TRANSITIONS",
    "RECHECK_WORKING_DAYS",
    "FindingDiff",
    "OrderState",
    "RecheckPlan",
    "Rectification",
    "apply_early",
    "finding_diff",
    "get_order",
    "list_orders",
    "order_diff",
    "order_rectification",
    "recheck_plan",
    "recompute_provisional",
    "record_recheck",
]

RECHECK_WORKING_DAYS = 3
"""Art. 19: re-check within 3 working days after the deadline or the early application."""

FEEDBACK_WORKING_DAYS = 3
"""Art. 19: feedback within 3 working days after the re-check."""


class OrderState(enum.StrEnum):
    ORDERED = "ordered"
    """the object was ordered to rectify; the re-check is due after the deadline"""
    APPLIED = "applied"
    """the object applied in writing for an early re-check"""
    RESOLVED = "resolved"
    """the re-check found none of the ordered findings"""
    UNRESOLVED = "unresolved"
    """the re-check still found some of the ordered findings"""


ORDER_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.ORDERED: frozenset({OrderState.APPLIED, OrderState.RESOLVED, OrderState.UNRESOLVED}),
    OrderState.APPLIED: frozenset({OrderState.RESOLVED, OrderState.UNRESOLVED}),
    OrderState.RESOLVED: frozenset(),
    OrderState.UNRESOLVED: frozenset(),
}
"""An order's life: ordered -> (applied for an early re-check ->) resolved | unresolved; a
re-check is recorded once, and a new order follows an unresolved one."""


def _move_order(row: RectificationRow, target: OrderState) -> None:
    """Move an order along :data:`ORDER_TRANSITIONS`, in the caller's (one) transaction."""
    current = OrderState(row.state)
    if target not in ORDER_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ORDER_TRANSITIONS[current])) or "nothing (final)"
        raise TransitionError(
            f"rectification order {row.id} is {current.value}: cannot become {target.value} "
            f"(allowed: {allowed})"
        )
    row.state = target.value


@dataclass(frozen=True, kw_only=True, slots=True)
class Rectification:
    """A rectification order and its follow-up."""

    id: int
    run_id: str
    findings: tuple[str, ...]
    ordered_at: datetime
    deadline: date
    applied_on: date | None
    recheck_due: date
    recheck_run_id: str | None
    feedback_due: date | None
    state: OrderState
    feedback_at: datetime | None = None
    """When the re-check result was fed back to the object."""
    feedback_by: str | None = None
    """Who fed it back (an officer)."""
    feedback_document: str | None = None
    """The name of the feedback document."""
    feedback_sha256: str | None = None
    """SHA-256 of the feedback document as sent."""
    working_days: int | None = None
    """The deadline as ordered in working days (None: a date was given)."""
    provisional: bool = False
    """A date was counted in a year without a State Council notice (rule-based days);
    :func:`recompute_provisional` recomputes it once that year's notice is added."""

    def overdue(self, today: date) -> tuple[str, ...]:
        """What is overdue on ``today``: the re-check (no re-check run linked after its due
        date), or its feedback (none recorded after its due date, or recorded late)."""
        if self.recheck_run_id is None and today > self.recheck_due:
            return (f"re-check was due {self.recheck_due.isoformat()}",)
        if self.feedback_due is None:
            return ()
        if self.feedback_at is None:
            if today > self.feedback_due:
                return (f"feedback of the re-check was due {self.feedback_due.isoformat()}",)
            return ()
        given = self.feedback_at.astimezone(CALENDAR_ZONE).date()
        if given > self.feedback_due:
            return (
                f"feedback given {given.isoformat()}, after its due date "
                f"{self.feedback_due.isoformat()}",
            )
        return ()


def _order(row: RectificationRow) -> Rectification:
    return Rectification(
        id=row.id,
        run_id=row.run_id,
        findings=tuple(row.findings),
        ordered_at=row.ordered_at,
        deadline=row.deadline,
        applied_on=row.applied_on,
        recheck_due=row.recheck_due,
        recheck_run_id=row.recheck_run_id,
        feedback_due=row.feedback_due,
        state=OrderState(row.state),
        feedback_at=row.feedback_at,
        feedback_by=row.feedback_by,
        feedback_document=row.feedback_document,
        feedback_sha256=row.feedback_sha256,
        working_days=row.working_days,
        provisional=bool(row.provisional),
    )


def _order_row(s: Session, order_id: int) -> RectificationRow:
    row = s.get(RectificationRow, order_id)
    if row is None:
        raise NotFoundError(f"rectification order {order_id} does not exist")
    return row


def get_order(db: Database, order_id: int) -> Rectification:
    """Return one rectification order.

    Raises:
        NotFoundError: No such order.
    """
    with db.session() as s:
        return _order(_order_row(s, order_id))


def list_orders(db: Database, run_id: str | None = None) -> list[Rectification]:
    """Return every rectification order (of one run, if given), oldest first."""
    with db.session() as s:
        query = select(RectificationRow).order_by(RectificationRow.id)
        if run_id is not None:
            query = query.where(RectificationRow.run_id == run_id)
        return [_order(r) for r in s.scalars(query)]


def _sealed_run(s: Session, run_id: str) -> RunRow:
    run = s.get(RunRow, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id!r} is not known")
    if RunState(run.state) is not RunState.SEALED:
        raise StateError(f"run {run_id} is {run.state}: only a sealed run's findings are final")
    return run


def order_rectification(
    db: Database,
    run_id: str,
    finding_ids: Sequence[str],
    *,
    calendar: WorkingCalendar,
    deadline: date | None = None,
    working_days: int | None = None,
    now: datetime,
) -> Rectification:
    """Order the object to rectify findings of a sealed run, and re-assemble the record.

    Args:
        db: The database.
        run_id: The sealed run whose findings are meant.
        finding_ids: Ids of findings of that run (at least one, no repeats).
        calendar: The working-day calendar.
        deadline: The rectification deadline (a China calendar date) ...
        working_days: ... or a number of working days after the order's date (China time).
        now: The order time.

    Returns:
        The stored order; its re-check is due 3 working days after the deadline.

    Raises:
        InputError: Neither or both of ``deadline``/``working_days``, a deadline before the
            order date, no findings, or a finding that is not the run's.
        CalendarRangeError: A date falls in a year the calendar does not cover.
        StateError: The run is not sealed, or its record is closed.
    """
    when = now
    today = when.astimezone(CALENDAR_ZONE).date()
    if (deadline is None) == (working_days is None):
        raise InputError(
            f"rectification of run {run_id}: give either a deadline or a number of working days"
        )
    if not finding_ids:
        raise InputError(f"rectification of run {run_id}: name at least one finding (--finding)")
    if len(set(finding_ids)) != len(finding_ids):
        raise InputError(f"rectification of run {run_id}: a finding is named twice")
    if working_days is not None:
        if working_days < 1:
            raise InputError(
                f"rectification of run {run_id}: working days must be 1 or more, not {working_days}"
            )
        deadline = calendar.add_working_days(today, working_days)
    assert deadline is not None
    if deadline < today:
        raise InputError(
            f"rectification of run {run_id}: deadline {deadline.isoformat()} is before the "
            f"order date {today.isoformat()}"
        )
    # Asking the calendar about the deadline refuses a year it does not cover, with its error.
    calendar.is_working_day(deadline)
    recheck_due = calendar.add_working_days(deadline, RECHECK_WORKING_DAYS)
    provisional = bool(calendar.provisional_between(today, recheck_due))
    # Assemble first: a run whose record cannot be assembled (no final checkpoint, say) gets
    # no order that its record would not show.
    assemble_record(db, run_id, now=when)
    with db.session() as s:
        _sealed_run(s, run_id)
        require_open(s, run_id, "order rectification")
        for fid in finding_ids:
            finding = s.get(FindingRow, fid)
            if finding is None or finding.run_id != run_id:
                raise InputError(
                    f"rectification of run {run_id}: finding {fid!r} is not a finding of this run"
                )
        row = RectificationRow(
            run_id=run_id,
            findings=list(finding_ids),
            ordered_at=when,
            deadline=deadline,
            applied_on=None,
            recheck_due=recheck_due,
            recheck_run_id=None,
            feedback_due=None,
            state=OrderState.ORDERED.value,
            working_days=working_days,
            provisional=provisional,
        )
        s.add(row)
        s.flush()
        order = _order(row)
    # The orders are part of the record's conclusions: a new version, old signatures void.
    assemble_record(db, run_id, now=when)
    return order


def apply_early(
    db: Database, order_id: int, *, on: date, calendar: WorkingCalendar
) -> Rectification:
    """Record the object's written application for an early re-check.

    Args:
        db: The database.
        order_id: The order.
        on: The date of the written application (China calendar date).
        calendar: The working-day calendar.

    Returns:
        The order with its re-check now due 3 working days after ``on``.

    Raises:
        InputError: ``on`` is before the order or after the deadline.
        StateError: The order was already applied for or re-checked.
        CalendarRangeError: A date falls in a year the calendar does not cover.
    """
    with db.session() as s:
        row = _order_row(s, order_id)
        state = OrderState(row.state)
        if state is not OrderState.ORDERED:
            raise StateError(
                f"rectification order {order_id} is {state.value}: an early re-check can be "
                "applied for only once, before the re-check"
            )
        ordered_on = row.ordered_at.astimezone(CALENDAR_ZONE).date()
        if on < ordered_on:
            raise InputError(
                f"rectification order {order_id}: application date {on.isoformat()} is before "
                f"the order ({ordered_on.isoformat()})"
            )
        if on > row.deadline:
            raise InputError(
                f"rectification order {order_id}: application date {on.isoformat()} is after the "
                f"deadline {row.deadline.isoformat()}; the re-check is due after the deadline"
            )
        row.recheck_due = calendar.add_working_days(on, RECHECK_WORKING_DAYS)
        row.provisional = bool(calendar.provisional_between(ordered_on, row.recheck_due))
        row.applied_on = on
        _move_order(row, OrderState.APPLIED)
        return _order(row)


def _findings(s: Session, run_id: str, ids: Iterable[str] | None = None) -> list[FindingView]:
    return load_findings(s, run_id, ids)


def order_diff(db: Database, order: Rectification) -> FindingDiff | None:
    """The diff between an order's findings and its re-check run's findings (None before)."""
    if order.recheck_run_id is None:
        return None
    with db.session() as s:
        return _order_diff(s, order.run_id, order.findings, order.recheck_run_id)


def _order_diff(
    s: Session, run_id: str, ordered: Sequence[str], recheck_run_id: str
) -> FindingDiff:
    """The ordered findings against the re-check run's; the original run's other findings
    seen again are ``not_ordered`` (they were there before: not new)."""
    named = set(ordered)
    original = _findings(s, run_id)
    return finding_diff(
        [f for f in original if f.id in named],
        _findings(s, recheck_run_id),
        also_before=[f for f in original if f.id not in named],
    )


def record_recheck(
    db: Database,
    order_id: int,
    *,
    recheck_run_id: str,
    calendar: WorkingCalendar,
) -> tuple[Rectification, FindingDiff]:
    """Link the re-check run to an order; compute the diff and the feedback due date.

    Args:
        db: The database.
        order_id: The order.
        recheck_run_id: The re-check run; sealed, of the same inspected object.
        calendar: The working-day calendar.

    Returns:
        The updated order and the finding diff.

    Raises:
        StateError: The order already has a re-check, or the run is not sealed.
        InputError: The run inspected another object, belongs to another order, or ended
            before the order was given.
        CalendarRangeError: A date falls in a year the calendar does not cover.
    """
    with db.session() as s:
        row = _order_row(s, order_id)
        if row.recheck_run_id is not None:
            raise StateError(
                f"rectification order {order_id} was already re-checked by run {row.recheck_run_id}"
            )
        run = _sealed_run(s, recheck_run_id)
        original = s.get(RunRow, row.run_id)
        assert original is not None
        if run.id == original.id:
            raise InputError(f"rectification order {order_id}: a run cannot re-check itself")
        if run.recheck_of is not None and run.recheck_of != order_id:
            raise InputError(
                f"run {run.id} is the re-check of order {run.recheck_of}, not of order {order_id}"
            )
        if get_notice(s, run.notice_id).object_id != get_notice(s, original.notice_id).object_id:
            raise InputError(
                f"run {run.id} inspected another object than order {order_id}'s run {original.id}"
            )
        done = run.ended_at or run.started_at or run.created_at
        if done < row.ordered_at:
            raise InputError(
                f"run {run.id} ended at {done.isoformat()}, before order {order_id} was given "
                f"({row.ordered_at.isoformat()}): it cannot be its re-check"
            )
        rechecked_on = done.astimezone(CALENDAR_ZONE).date()
        diff = _order_diff(s, row.run_id, row.findings, run.id)
        row.feedback_due = calendar.add_working_days(rechecked_on, FEEDBACK_WORKING_DAYS)
        ordered_on = row.ordered_at.astimezone(CALENDAR_ZONE).date()
        row.provisional = bool(calendar.provisional_between(ordered_on, row.feedback_due))
        row.recheck_run_id = run.id
        _move_order(row, OrderState.UNRESOLVED if diff.still_present else OrderState.RESOLVED)
        return _order(row), diff


@dataclass(frozen=True, kw_only=True, slots=True)
class RecheckPlan:
    """Where the re-check of an order can run, or what must be announced first.

    Attributes:
        order_id: The order.
        run_id: The run whose findings are re-checked.
        due: The last day (China calendar) for the re-check.
        probes: The probes that produced the ordered findings.
        targets: The targets (as announced) of those findings.
        notice_id: The notice whose window covers the due date, if any.
        window_start: That window's start (UTC), if any.
        window_end: That window's end (UTC), if any.
        announce_by: When no window covers it: the latest time a new notice for the same
            object must be announced (the start of the due day minus the policy lead time).
        why: One sentence for the officer.
    """

    order_id: int
    run_id: str
    due: date
    probes: tuple[str, ...]
    targets: tuple[str, ...]
    notice_id: str | None
    window_start: datetime | None
    window_end: datetime | None
    announce_by: datetime | None
    why: str


def _covering_window(
    notices: Iterable[Notice], object_id: str, earliest: datetime, latest: datetime
) -> tuple[Notice, datetime, datetime] | None:
    """The earliest announced window of the object open somewhere in [earliest, latest)."""
    best: tuple[Notice, datetime, datetime] | None = None
    for notice in notices:
        if notice.object_id != object_id:
            continue
        usable_from = max(earliest, notice.lead_time_met_at())
        for w in notice.scope.windows:
            start, end = max(w.start_utc, usable_from), w.end_utc
            if start < end and start < latest and (best is None or start < best[1]):
                best = (notice, start, end)
    return best


def recheck_plan(db: Database, order_id: int, *, now: datetime) -> RecheckPlan:
    """Say where the re-check of an order can run before it is due.

    Args:
        db: The database.
        order_id: The order.
        now: The current time; windows that have passed do not count.

    Returns:
        The plan: a covering notice window, or the time by which a notice must be announced.

    Raises:
        NotFoundError: No such order.
    """
    when = now
    with db.session() as s:
        order = _order(_order_row(s, order_id))
        run = s.get(RunRow, order.run_id)
        assert run is not None
        original = get_notice(s, run.notice_id)
        findings = _findings(s, order.run_id, order.findings)
        notices = list_notices(s)
    probes = tuple(sorted({f.probe for f in findings}))
    targets = tuple(sorted({t for f in findings for t, _ in f.seen_as}))
    due_start = datetime.combine(order.recheck_due, time(0), CALENDAR_ZONE).astimezone(UTC)
    due_end = due_start + timedelta(days=1)
    found = _covering_window(notices, original.object_id, when, due_end)
    if found is not None:
        notice, start, end = found
        return RecheckPlan(
            order_id=order.id,
            run_id=order.run_id,
            due=order.recheck_due,
            probes=probes,
            targets=targets,
            notice_id=notice.id,
            window_start=start,
            window_end=end,
            announce_by=None,
            why=(
                f"notice {notice.id} has a window from {start.isoformat()} to {end.isoformat()}; "
                f"run the re-check there by {order.recheck_due.isoformat()}"
            ),
        )
    announce_by = due_start - original.policy.min_notice_lead
    return RecheckPlan(
        order_id=order.id,
        run_id=order.run_id,
        due=order.recheck_due,
        probes=probes,
        targets=targets,
        notice_id=None,
        window_start=None,
        window_end=None,
        announce_by=announce_by,
        why=(
            f"no announced window of object {original.object_id} is open before the re-check "
            f"is due ({order.recheck_due.isoformat()}): announce a notice covering that day by "
            f"{announce_by.isoformat()} (policy {original.policy.name} lead time "
            f"{original.policy.min_notice_lead})"
        ),
    )


def record_feedback(
    db: Database,
    order_id: int,
    *,
    actor: Person,
    document_name: str,
    document: bytes,
    now: datetime,
) -> Rectification:
    """Record that the re-check result was fed back to the object (Art. 19).

    Args:
        db: The database.
        order_id: The order; its re-check must be recorded (:func:`record_recheck`).
        actor: The officer who fed it back; authorised here (closing the run's record).
        document_name: The feedback document's name (e.g. its file name).
        document: The feedback document's bytes; only their SHA-256 is stored.
        now: When it was fed back.

    Returns:
        The updated order; :meth:`Rectification.overdue` says whether it came late.

    Raises:
        AccessDeniedError: The actor may not act on the order's run.
        StateError: The order has no re-check yet.
        ConflictError: Feedback was already recorded.
        InputError: The document is empty or has no name.
    """
    # access/ imports record/ (purge reads archives): import the role matrix at call time.
    from orchestrator.access.roles import Action, authorize

    when = now
    if not document or not document_name.strip():
        raise InputError(f"rectification order {order_id}: the feedback document is empty")
    with db.session() as s:
        row = _order_row(s, order_id)
        authorize(s, actor, Action.ORDER_RECTIFICATION, run_id=row.run_id, now=when)
        if row.recheck_run_id is None or row.feedback_due is None:
            raise StateError(
                f"rectification order {order_id} has no re-check yet (rio rectify recheck): "
                "there is no result to feed back"
            )
        if row.feedback_at is not None:
            raise ConflictError(
                f"rectification order {order_id}: feedback was already recorded at "
                f"{row.feedback_at.isoformat()} by {row.feedback_by}"
            )
        row.feedback_at = when
        row.feedback_by = actor.name
        row.feedback_document = document_name.strip()[:300]
        row.feedback_sha256 = hashlib.sha256(document).hexdigest()
        return _order(row)


def recompute_provisional(
    db: Database, *, calendar: WorkingCalendar, now: datetime
) -> list[tuple[Rectification, Rectification]]:
    """Recompute the dates of provisional orders with the calendar as it is now.

    Called when an operator adds a year's notice (``rio calendar add``). An order's deadline is
    recounted when it was ordered in working days; its re-check and feedback due dates always
    are. An order whose record is still open re-assembles the record when its deadline moved
    (a new version: signatures over the provisional deadline no longer count). A closed
    record keeps the deadline it was signed with, marked provisional; the archive's
    ``rectification.json`` carries the recomputed dates.

    Args:
        db: The database.
        calendar: The calendar with the new year in it.
        now: When, for a re-assembled record.

    Returns:
        ``(before, after)`` for every provisional order, in id order.
    """
    when = now
    changed: list[tuple[Rectification, Rectification]] = []
    reassemble: set[str] = set()
    with db.session() as s:
        rows = s.scalars(
            select(RectificationRow)
            .where(RectificationRow.provisional.is_(True))
            .order_by(RectificationRow.id)
        )
        for row in rows:
            before = _order(row)
            ordered_on = row.ordered_at.astimezone(CALENDAR_ZONE).date()
            last = ordered_on
            if row.working_days is not None:
                row.deadline = calendar.add_working_days(ordered_on, row.working_days)
            base = row.applied_on if row.applied_on is not None else row.deadline
            row.recheck_due = calendar.add_working_days(base, RECHECK_WORKING_DAYS)
            last = max(row.deadline, row.recheck_due)
            if row.recheck_run_id is not None and row.feedback_due is not None:
                run = s.get(RunRow, row.recheck_run_id)
                assert run is not None
                done = run.ended_at or run.started_at or run.created_at
                rechecked_on = done.astimezone(CALENDAR_ZONE).date()
                row.feedback_due = calendar.add_working_days(rechecked_on, FEEDBACK_WORKING_DAYS)
                last = max(last, row.feedback_due)
            row.provisional = bool(calendar.provisional_between(ordered_on, last))
            after = _order(row)
            changed.append((before, after))
            if after.deadline != before.deadline or after.provisional != before.provisional:
                reassemble.add(row.run_id)
    for run_id in sorted(reassemble):
        with db.session() as s:
            closed = _is_closed(s, run_id)
        if not closed:
            assemble_record(db, run_id, now=when)
    return changed


def _is_closed(s: Session, run_id: str) -> bool:
    try:
        require_open(s, run_id, "recompute")
    except StateError:
        return True
    return False
