"""Operations endpoints: ``/healthz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from orchestrator.interfaces.api._context import ApiContext, context
from orchestrator.services import metrics as metrics_service

__all__ = ["router"]

router = APIRouter(tags=["operations"])
Ctx = Annotated[ApiContext, Depends(context)]


@router.get("/healthz")
def healthz(ctx: Ctx) -> dict[str, str]:
    """Liveness and the database: ``{"status": "ok"}``, or a 503 problem naming what failed."""
    return {"status": "ok", "database": metrics_service.database_health(ctx.rio)}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(ctx: Ctx) -> PlainTextResponse:
    """Counters and gauges in the Prometheus text exposition format (version 0.0.4)."""
    return PlainTextResponse(
        metrics_service.prometheus_text(
            ctx.rio, verify_results=ctx.verify_results, ledger=ctx.ledger_counts
        ),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
