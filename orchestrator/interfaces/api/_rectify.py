"""Rectification (Art. 19) over the API: the orders with their due dates and what is overdue,
where an order's re-check can run, the early application, scheduling and linking the
re-check, and the feedback. Each route parses, calls one service, shapes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from orchestrator.app import calendar_for
from orchestrator.interfaces.api._auth import Actor
from orchestrator.interfaces.api._context import ApiContext, context
from orchestrator.interfaces.api._problems import Problem
from orchestrator.record._zone import CALENDAR_ZONE
from orchestrator.record.rectify import RecheckPlan, Rectification
from orchestrator.services import rectify as rectify_service

__all__ = ["china_today", "order_out", "router"]

router = APIRouter(prefix="/api/v1/rectification", tags=["rectification"])
Ctx = Annotated[ApiContext, Depends(context)]
OrderId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The order's number.")]

_MAX_FEEDBACK = 32 * 1024 * 1024
"""bytes: the largest feedback document taken (only its SHA-256 is kept)."""


def china_today(ctx: ApiContext) -> date:
    """Today in China, the day overdue flags are judged on."""
    return ctx.clock.now().astimezone(CALENDAR_ZONE).date()


class FeedbackOut(BaseModel):
    at: datetime
    by: str | None
    document: str | None
    sha256: str | None


class OrderOut(BaseModel):
    id: int
    run_id: str
    findings: list[str]
    ordered_at: datetime
    deadline: date = Field(description="Rectify by this China calendar day.")
    working_days: int | None = Field(description="The deadline as ordered in working days.")
    provisional: bool = Field(
        description="A date was counted in a year without the State Council's notice."
    )
    applied_on: date | None = Field(description="The object's written early application.")
    recheck_due: date = Field(description="Re-check within 3 working days of the deadline.")
    recheck_run_id: str | None
    feedback_due: date | None = Field(description="Feed back within 3 working days.")
    feedback: FeedbackOut | None
    state: str = Field(description="ordered, applied, resolved or unresolved.")
    overdue: list[str] = Field(description="What is overdue today; empty when nothing is.")


class RecheckPlanOut(BaseModel):
    order_id: int
    run_id: str
    due: date
    probes: list[str]
    targets: list[str]
    notice_id: str | None = Field(description="The notice whose window covers the due date.")
    window_start: datetime | None
    window_end: datetime | None
    announce_by: datetime | None = Field(
        description="Without such a window: announce a new notice by this time."
    )
    why: str


def order_out(order: Rectification, today: date) -> OrderOut:
    feedback = None
    if order.feedback_at is not None:
        feedback = FeedbackOut(
            at=order.feedback_at,
            by=order.feedback_by,
            document=order.feedback_document,
            sha256=order.feedback_sha256,
        )
    return OrderOut(
        id=order.id,
        run_id=order.run_id,
        findings=list(order.findings),
        ordered_at=order.ordered_at,
        deadline=order.deadline,
        working_days=order.working_days,
        provisional=order.provisional,
        applied_on=order.applied_on,
        recheck_due=order.recheck_due,
        recheck_run_id=order.recheck_run_id,
        feedback_due=order.feedback_due,
        feedback=feedback,
        state=order.state.value,
        overdue=list(order.overdue(today)),
    )


def _plan_out(plan: RecheckPlan) -> RecheckPlanOut:
    return RecheckPlanOut(
        order_id=plan.order_id,
        run_id=plan.run_id,
        due=plan.due,
        probes=list(plan.probes),
        targets=list(plan.targets),
        notice_id=plan.notice_id,
        window_start=plan.window_start,
        window_end=plan.window_end,
        announce_by=plan.announce_by,
        why=plan.why,
    )


@router.get("/orders", response_model=list[OrderOut])
def orders(
    ctx: Ctx,
    person: Actor,
    run: Annotated[str | None, Query(max_length=40, description="Only this run's.")] = None,
) -> list[OrderOut]:
    """The rectification orders of the runs you may see, with what is overdue today."""
    today = china_today(ctx)
    return [order_out(o, today) for o in rectify_service.list_orders(ctx.rio, person, run)]


@router.get("/orders/{order_id}/recheck-plan", response_model=RecheckPlanOut)
def recheck_plan(order_id: OrderId, ctx: Ctx, person: Actor) -> RecheckPlanOut:
    """Which announced window the order's re-check can use, or what to announce by when."""
    return _plan_out(rectify_service.recheck_plan(ctx.rio, person, order_id))


class ApplicationIn(BaseModel):
    on: date = Field(description="The day of the object's written application (China).")


class RecheckIn(BaseModel):
    run_id: str = Field(min_length=1, max_length=40, description="The sealed re-check run.")


class RecheckOut(BaseModel):
    order: OrderOut
    diff: dict[str, list[dict[str, Any]]] = Field(
        description="fixed, still_present, new and not_ordered, by stable finding key."
    )


class RecheckScheduledOut(BaseModel):
    order_id: int
    run_id: str
    notice_id: str
    start: datetime
    due: date
    after_due: bool = Field(description="The planned start is after the due day ends.")


class OrderIn(BaseModel):
    run_id: str = Field(min_length=1, max_length=40, description="The sealed run.")
    findings: list[str] = Field(min_length=1, max_length=1000, description="Its finding ids.")
    deadline: date | None = Field(default=None, description="Rectify by this China day ...")
    working_days: int | None = Field(
        default=None, ge=1, le=365, description="... or within this many working days."
    )


@router.post("/orders", response_model=OrderOut, status_code=201)
def order(body: OrderIn, ctx: Ctx, person: Actor) -> OrderOut:
    """Order the object to rectify findings of a sealed run by a deadline (officers); the
    record gets a new version, and signatures on the old one no longer count."""
    made = rectify_service.order_rectification(
        ctx.rio,
        person,
        body.run_id,
        body.findings,
        calendar=calendar_for(ctx.rio.settings),
        deadline=body.deadline,
        working_days=body.working_days,
    )
    return order_out(made, china_today(ctx))


@router.post("/orders/{order_id}/application", response_model=OrderOut)
def apply_early(order_id: OrderId, body: ApplicationIn, ctx: Ctx, person: Actor) -> OrderOut:
    """Record the object's written application for an early re-check (officers)."""
    order = rectify_service.apply_early(
        ctx.rio, person, order_id, on=body.on, calendar=calendar_for(ctx.rio.settings)
    )
    return order_out(order, china_today(ctx))


@router.post(
    "/orders/{order_id}/recheck/schedule", response_model=RecheckScheduledOut, status_code=201
)
def schedule_recheck(order_id: OrderId, ctx: Ctx, person: Actor) -> RecheckScheduledOut:
    """Plan the re-check run at the next opening of the notice covering the due date (the
    entrusted vendor's technician); ``rio serve`` runs it."""
    planned = rectify_service.schedule_recheck(ctx.rio, person, order_id)
    return RecheckScheduledOut(
        order_id=planned.order_id,
        run_id=planned.run_id,
        notice_id=planned.notice_id,
        start=planned.start,
        due=planned.due,
        after_due=planned.after_due,
    )


@router.post("/orders/{order_id}/recheck", response_model=RecheckOut)
def record_recheck(order_id: OrderId, body: RecheckIn, ctx: Ctx, person: Actor) -> RecheckOut:
    """Link the sealed re-check run (officers): the finding diff decides resolved or not."""
    order, diff = rectify_service.record_recheck(
        ctx.rio,
        person,
        order_id,
        recheck_run_id=body.run_id,
        calendar=calendar_for(ctx.rio.settings),
    )
    return RecheckOut(order=order_out(order, china_today(ctx)), diff=diff.to_json())


@router.post("/orders/{order_id}/feedback", response_model=OrderOut)
async def feedback(
    order_id: OrderId,
    ctx: Ctx,
    person: Actor,
    document: Annotated[UploadFile, File(description="The feedback document as sent.")],
    name: Annotated[str | None, Form(max_length=300, description="Default: the file's.")] = None,
) -> OrderOut:
    """Record that the re-check result was fed back (officers): the document's name and
    SHA-256 are kept, its bytes are not."""
    data = await document.read(_MAX_FEEDBACK + 1)
    if len(data) > _MAX_FEEDBACK:
        raise Problem(slug="bad-input", detail="the feedback document is larger than 32 MiB")
    order = await run_in_threadpool(
        rectify_service.record_feedback,
        ctx.rio,
        person,
        order_id,
        document_name=name or document.filename or "",
        document=data,
        now=ctx.clock.now(),
    )
    return order_out(order, china_today(ctx))
