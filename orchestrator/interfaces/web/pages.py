"""The pages: HTML rendered on the server from the same services the API calls.

A page that needs a person reads the session cookie the login page obtained; without one it
sends the browser to ``/login``. Pages only read: every change (sign, close, kill) is a call
from the page's JavaScript to the API with the bearer token, so the pages need no CSRF tokens.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.audit.logview import LogFilter
from orchestrator.errors import InputError
from orchestrator.intake.registry import Person
from orchestrator.interfaces.api._auth import PageActor
from orchestrator.interfaces.api._context import ApiContext, context
from orchestrator.interfaces.api._public import limit_public
from orchestrator.interfaces.api._rectify import china_today, order_out
from orchestrator.interfaces.api._resources import audit_out, record_out
from orchestrator.services import audit as audit_service
from orchestrator.services import public as public_service
from orchestrator.services import records as record_service
from orchestrator.services import rectify as rectify_service
from orchestrator.services import runs as run_service
from orchestrator.services.notices import list_notices

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
Limited = Annotated[ApiContext, Depends(limit_public)]


def render(request: Request, template: str, person: Person | None, **values: Any) -> Response:
    templates = request.app.state.templates
    return templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, {"person": person, **values}
    )


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, person: PageActor) -> Response:
    return RedirectResponse("/runs" if person is not None else "/verify", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, person: PageActor) -> Response:
    return render(request, "login.html", person)


@router.get("/verify", response_class=HTMLResponse)
def verify_lookup(
    request: Request,
    ctx: Limited,
    person: PageActor,
    source: Annotated[str | None, Query(max_length=64)] = None,
    at: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The public check by source address and time (no login)."""
    answer = None
    if source and at:
        try:
            when = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(f"seen at {at!r} is not an ISO 8601 time") from exc
        answer = public_service.lookup_source(ctx.rio, source, when)
    notices = list(answer.notices) if answer is not None else []
    view = None
    if answer is not None:
        view = {"announced": bool(answer), "why": answer.why, "runs_active": answer.runs_active}
    return render(
        request, "verify.html", person, answer=view, notices=notices, source=source, at=at
    )


@router.get("/verify/{notice_id}", response_class=HTMLResponse)
def verify_notice(request: Request, notice_id: str, ctx: Limited, person: PageActor) -> Response:
    """The public part of one notice (the letter and the User-Agent point here)."""
    notice = public_service.public_notice(ctx.rio, notice_id)
    return render(request, "verify.html", person, answer=None, notices=[notice])


@router.get("/notices", response_class=HTMLResponse)
def notices_page(request: Request, person: PageActor) -> Response:
    if person is None:
        return to_login(request)
    ctx = context(request)
    return render(request, "notices.html", person, notices=list_notices(ctx.rio, person))


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, person: PageActor) -> Response:
    """The runs dashboard."""
    if person is None:
        return to_login(request)
    ctx = context(request)
    return render(request, "runs.html", person, runs=run_service.list_runs(ctx.rio, person))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, person: PageActor) -> Response:
    """A run with live progress (server-sent events) and its kill switch."""
    if person is None:
        return to_login(request)
    ctx = context(request)
    status = run_service.run_status(ctx.rio, person, run_id, now=ctx.clock.now())
    return render(request, "run.html", person, run=status)


@router.get("/runs/{run_id}/record", response_class=HTMLResponse)
def record_page(request: Request, run_id: str, person: PageActor) -> Response:
    """The record, who signed and who is missing, the Sign button (WebCrypto) and Close."""
    if person is None:
        return to_login(request)
    ctx = context(request)
    rec = record_out(record_service.view_record(ctx.rio, person, run_id, now=ctx.clock.now()))
    diff = record_service.record_diff(ctx.rio, person, run_id, now=ctx.clock.now())
    changes = [
        {"path": c.path, "kind": c.kind.value, "before": _shown(c.before), "after": _shown(c.after)}
        for c in diff.changes
    ]
    return render(
        request, "record.html", person, rec=rec, st=rec.signoff, since=diff.since, changes=changes
    )


def _shown(value: Any, limit: int = 300) -> str:
    """A changed value as compact JSON, cut to ``limit`` characters."""
    if value is None:
        return "-"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@router.get("/runs/{run_id}/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    run_id: str,
    person: PageActor,
    target: Annotated[str | None, Query(max_length=255)] = None,
    probe: Annotated[str | None, Query(max_length=40)] = None,
    refused: Annotated[bool, Query()] = False,
    after: Annotated[int, Query(ge=-1, le=2**62)] = -1,
) -> Response:
    """Each verification check of the run's archive, and its probe log, filterable."""
    if person is None:
        return to_login(request)
    ctx = context(request)
    report = audit_service.verify_run_archive(ctx.rio, person, run_id, now=ctx.clock.now())
    ctx.verify_results["pass" if report else "fail"] += 1
    flt = LogFilter(target=target or None, probe=probe or None, refused=refused)
    page = audit_service.review_leaves(ctx.rio, person, run_id, flt, after=after, limit=500)
    return render(
        request,
        "audit.html",
        person,
        report=audit_out(report),
        page=page,
        flt=flt,
    )


@router.get("/rectification", response_class=HTMLResponse)
def rectification_page(
    request: Request,
    person: PageActor,
    run: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Rectification orders (Art. 19): deadlines, re-check and feedback due dates, and what is
    overdue today."""
    if person is None:
        return to_login(request)
    ctx = context(request)
    today = china_today(ctx)
    orders = [order_out(o, today) for o in rectify_service.list_orders(ctx.rio, person, run)]
    return render(request, "rectification.html", person, orders=orders, today=today, run=run)
