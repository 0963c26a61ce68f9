"""Rectification orders (Art. 19): what is ordered, the early application, the re-check (where
it can run, scheduling it, linking its run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from orchestrator.access.roles import Action, authorize, visible_runs
from orchestrator.context import Rio
from orchestrator.errors import InputError, StateError
from orchestrator.intake.registry import Person
from orchestrator.record._zone import CALENDAR_ZONE
from orchestrator.record.findings import FindingDiff
from orchestrator.record.rectify import RecheckPlan, Rectification
from orchestrator.record.workdays import OperatorCalendar, WorkingCalendar

__all__ = [
    "CalendarAdded",
    "RecheckScheduled",
    "add_calendar",
    "apply_early",
    "list_orders",
    "order_rectification",
    "recheck_plan",
    "record_feedback",
    "record_recheck",
    "require_order",
    "schedule_recheck",
]


def list_orders(app: Rio, actor: Person, run_id: str | None = None) -> list[Rectification]:
    """The rectification orders of the runs ``actor`` may see (of one run, if given).

    Raises:
        AccessDeniedError: ``run_id`` is given and ``actor`` may not read its ledger.
    """
    from orchestrator.record import rectify
    from orchestrator.store.models import RunRow

    with app.db.session() as s:
        if run_id is not None:
            authorize(s, actor, Action.READ_LEDGER, run_id=run_id, now=app.clock.now())
        visible = set(
            s.scalars(visible_runs(s, actor, now=app.clock.now()).with_only_columns(RunRow.id))
        )
    return [o for o in rectify.list_orders(app.db, run_id) if o.run_id in visible]


def recheck_plan(app: Rio, actor: Person, order_id: int) -> RecheckPlan:
    """Which announced window the order's re-check can use, or what must be announced by when.

    Raises:
        AccessDeniedError: ``actor`` may not read the order's run.
        NotFoundError: no such order.
    """
    from orchestrator.record import rectify

    order = rectify.get_order(app.db, order_id)
    with app.db.session() as s:
        authorize(s, actor, Action.READ_LEDGER, run_id=order.run_id, now=app.clock.now())
    return rectify.recheck_plan(app.db, order_id, now=app.clock.now())


def order_rectification(
    app: Rio,
    actor: Person,
    run_id: str,
    findings: Sequence[str],
    *,
    calendar: WorkingCalendar,
    deadline: date | None = None,
    working_days: int | None = None,
) -> Rectification:
    """Order the object to rectify findings of a sealed run by a deadline (an officer); the
    record gets a new version.

    Raises:
        AccessDeniedError: ``actor`` may not order rectification on the run.
        InputError: neither or both of ``deadline`` and ``working_days``, or a finding that is
            not the run's.
        StateError: the run is not sealed, or its record is closed.
    """
    from orchestrator.record import rectify

    with app.db.session() as s:
        authorize(s, actor, Action.ORDER_RECTIFICATION, run_id=run_id, now=app.clock.now())
    return rectify.order_rectification(
        app.db,
        run_id,
        list(findings),
        calendar=calendar,
        deadline=deadline,
        working_days=working_days,
        now=app.clock.now(),
    )


def require_order(app: Rio, order_id: int) -> None:
    """Raise unless ``order_id`` names a rectification order. Anyone may ask, so a front end
    says an id is unknown before it asks for a key.

    Raises:
        InputError: No such order.
    """
    from orchestrator.store.models import RectificationRow

    with app.db.session() as s:
        if s.get(RectificationRow, order_id) is None:
            raise InputError(f"rectification order {order_id} is not known (rio rectify status)")


def _authorise_order_step(app: Rio, actor: Person, order_id: int) -> None:
    """Rectification steps are an officer's, on the order's run."""
    from orchestrator.store.models import RectificationRow

    with app.db.session() as s:
        row = s.get(RectificationRow, order_id)
        if row is None:
            raise InputError(f"rectification order {order_id} is not known (rio rectify status)")
        authorize(s, actor, Action.ORDER_RECTIFICATION, run_id=row.run_id, now=app.clock.now())


def apply_early(
    app: Rio, actor: Person, order_id: int, *, on: date, calendar: WorkingCalendar
) -> Rectification:
    """Record the object's written application for an early re-check (an officer).

    Raises:
        InputError: no such order, or ``on`` is before the order or after its deadline.
        AccessDeniedError: ``actor`` may not order rectification on the order's run.
        StateError: the order was already applied for or re-checked.
    """
    from orchestrator.record import rectify

    _authorise_order_step(app, actor, order_id)
    return rectify.apply_early(app.db, order_id, on=on, calendar=calendar)


def record_recheck(
    app: Rio, actor: Person, order_id: int, *, recheck_run_id: str, calendar: WorkingCalendar
) -> tuple[Rectification, FindingDiff]:
    """Link the sealed re-check run to the order: the finding diff and the feedback due date.

    Raises:
        InputError: no such order.
        AccessDeniedError: ``actor`` may not order rectification on the order's run.
    """
    from orchestrator.record import rectify

    _authorise_order_step(app, actor, order_id)
    return rectify.record_recheck(
        app.db, order_id, recheck_run_id=recheck_run_id, calendar=calendar
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class RecheckScheduled:
    """The re-check run planned for an order."""

    order_id: int
    run_id: str
    notice_id: str
    start: datetime
    due: date
    after_due: bool
    """The planned start is later than the end of the due date (a China calendar day)."""


def schedule_recheck(app: Rio, actor: Person, order_id: int) -> RecheckScheduled:
    """Plan the order's re-check run at the next opening of the notice whose announced window
    covers its due date, launched by ``actor`` (the entrusted vendor's technician).

    Raises:
        NotFoundError: no such order.
        StateError: no announced window covers the due date (the message says what must be
            announced by when).
        AccessDeniedError: ``actor`` may not launch runs of that notice.
    """
    from orchestrator.record import rectify
    from orchestrator.run.scheduler import RioScheduler
    from orchestrator.store.models import RunRow

    plan = rectify.recheck_plan(app.db, order_id, now=app.clock.now())
    if plan.notice_id is None:
        raise StateError(f"order {order_id}: {plan.why}")
    with app.db.session() as s:
        authorize(s, actor, Action.LAUNCH_RUN, notice_id=plan.notice_id, now=app.clock.now())
    with RioScheduler(app, clock=app.clock) as scheduler:
        planned = scheduler.schedule_run(plan.notice_id, actor.name)
    with app.db.session() as s:
        row = s.get(RunRow, planned.run_id)
        if row is not None:
            row.recheck_of = order_id
    return RecheckScheduled(
        order_id=order_id,
        run_id=planned.run_id,
        notice_id=plan.notice_id,
        start=planned.start,
        due=plan.due,
        after_due=planned.start > datetime.combine(plan.due, datetime.max.time(), CALENDAR_ZONE),
    )


def record_feedback(
    app: Rio,
    actor: Person,
    order_id: int,
    *,
    document_name: str,
    document: bytes,
    now: datetime | None = None,
) -> Rectification:
    """Record that the re-check result was fed back to the object (an officer; Art. 19): the
    document's name and SHA-256 are stored, its bytes are not.

    Raises:
        NotFoundError: no such order.
        AccessDeniedError: ``actor`` may not order rectification on the order's run.
        StateError: the order has no re-check yet.
        ConflictError: feedback was already recorded.
        InputError: the document is empty or has no name.
    """
    from orchestrator.record import rectify

    return rectify.record_feedback(
        app.db,
        order_id,
        actor=actor,
        document_name=document_name,
        document=document,
        now=now or app.clock.now(),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CalendarAdded:
    """A year's calendar stored, and the orders it recomputed (each before and after)."""

    added: OperatorCalendar
    recomputed: tuple[tuple[Rectification, Rectification], ...]
    closed_runs: frozenset[str]
    """The runs of recomputed orders whose record is closed (it keeps the dates it was signed
    with)."""


def add_calendar(app: Rio, actor: Person, file: Path) -> CalendarAdded:
    """Check a year's calendar file and store it in the home (an administrator: reference data,
    like the registries); recompute every provisional order with the calendar now in force
    (:func:`orchestrator.app.calendar_for`).

    Raises:
        AccessDeniedError: ``actor`` is not an active administrator.
        CalendarFileError: the file is not a calendar (the message names the field).
    """
    from orchestrator.app import calendar_for
    from orchestrator.record import rectify
    from orchestrator.record.assemble import current_record
    from orchestrator.record.workdays import add_calendar_file

    now = app.clock.now()
    with app.db.session() as s:
        authorize(s, actor, Action.MANAGE_REGISTRY, now=now)
    added = add_calendar_file(app.settings.home, file)
    changed = rectify.recompute_provisional(app.db, calendar=calendar_for(app.settings), now=now)
    closed = {after.run_id for _, after in changed if current_record(app.db, after.run_id).closed}
    return CalendarAdded(added=added, recomputed=tuple(changed), closed_runs=frozenset(closed))
