"""Rectification orders (Art. 19): what is ordered, where the re-check can run."""

from __future__ import annotations

from orchestrator.access.roles import Action, authorize, visible_runs
from orchestrator.context import Rio
from orchestrator.intake.registry import Person
from orchestrator.record.rectify import RecheckPlan, Rectification

__all__ = ["list_orders", "recheck_plan"]


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
        visible = set(s.scalars(visible_runs(s, actor).with_only_columns(RunRow.id)))
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
