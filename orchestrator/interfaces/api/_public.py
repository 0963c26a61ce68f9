"""The public notice check (no login): ``/api/v1/public/...``, rate-limited per client address.

The inspected object's staff, or anyone the notice letter or a probe's User-Agent sent here,
learn whether traffic from an address at an instant belongs to an announced inspection, and
see the public part of the notice (:mod:`orchestrator.intake.public`). Nothing confidential.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from orchestrator.intake.public import PublicNotice, SourceAnswer
from orchestrator.interfaces.api._context import ApiContext, context
from orchestrator.interfaces.api._problems import Problem
from orchestrator.interfaces.api._schemas import PublicNoticeOut, SourceAnswerOut
from orchestrator.services import public as public_service

__all__ = ["limit_public", "public_notice_out", "router", "source_answer_out"]

router = APIRouter(prefix="/api/v1/public", tags=["public"])


def limit_public(request: Request, ctx: Annotated[ApiContext, Depends(context)]) -> ApiContext:
    """Count one public question against the client's address; 429 past the limit."""
    who = request.client.host if request.client is not None else "unknown"
    if not ctx.limiter.hit(ctx.public_limit, "public-check", who):
        raise Problem(
            slug="rate-limited",
            detail=f"at most {ctx.config.public_rate} public checks per client address",
            headers={"Retry-After": "60"},
        )
    return ctx


Limited = Annotated[ApiContext, Depends(limit_public)]


def public_notice_out(n: PublicNotice) -> PublicNoticeOut:
    return PublicNoticeOut.model_validate(n, from_attributes=True)


def source_answer_out(a: SourceAnswer) -> SourceAnswerOut:
    return SourceAnswerOut(
        source=a.source,
        at=a.at,
        announced=bool(a),
        why=a.why,
        runs_active=a.runs_active,
        notices=[public_notice_out(n) for n in a.notices],
    )


@router.get("/notices/{notice_id}", response_model=PublicNoticeOut)
def notice(notice_id: str, ctx: Limited) -> PublicNoticeOut:
    """The public part of a notice: object, organ, windows, sources, contact, scope digest."""
    return public_notice_out(public_service.public_notice(ctx.rio, notice_id))


@router.get("/lookup", response_model=SourceAnswerOut)
def lookup(
    ctx: Limited,
    source: Annotated[str, Query(max_length=64, description="The source address seen.")],
    at: Annotated[datetime, Query(description="When it was seen (ISO 8601 with offset).")],
) -> SourceAnswerOut:
    """Was traffic from ``source`` at ``at`` part of an announced inspection?"""
    return source_answer_out(public_service.lookup_source(ctx.rio, source, at))
