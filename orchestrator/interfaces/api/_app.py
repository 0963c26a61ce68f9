"""The HTTP application: the API under ``/api/v1``, the pages, ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from orchestrator import __version__
from orchestrator.clock import Clock, SystemClock
from orchestrator.context import Rio
from orchestrator.interfaces.api import _auth, _ops, _public, _rectify, _resources
from orchestrator.interfaces.api._context import ApiConfig, ApiContext
from orchestrator.interfaces.api._problems import install_problem_handlers
from orchestrator.timefmt import format_instant

__all__ = ["create_app"]

_WEB = Path(__file__).resolve().parent.parent / "web"

_DESCRIPTION = """\
rio's HTTP API: the same operations and the same role checks as the `rio` command line.

**Log in** with your own Ed25519 key: `POST /api/v1/auth/challenge`, sign the returned
`challenge` bytes as a DSSE signature (`PAE(payload_type, challenge)`), send it to
`POST /api/v1/auth/token` and use the token as `Authorization: Bearer TOKEN` (15 minutes).

Errors are RFC 9457 problem details (`application/problem+json`).
"""


def create_app(rio: Rio, *, clock: Clock | None = None, config: ApiConfig | None = None) -> FastAPI:
    """Build the HTTP application over an opened home.

    Args:
        rio: The opened home (database, keys, settings); the caller closes it.
        clock: The clock sessions, challenges and the public check use (default: system).
        config: The HTTP front end's own settings.

    Returns:
        The ASGI application.
    """
    from orchestrator.interfaces.web import pages

    app = FastAPI(
        title="rio",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = ApiContext(rio=rio, clock=clock or SystemClock(), config=config or ApiConfig())
    app.state.templates = Jinja2Templates(directory=_WEB / "templates")
    # Pages write every instant one way, as the command line does: ISO 8601 with the offset,
    # in the zone people here read times in (RIO_TIMEZONE); `{{ t | when }}`.
    zone = rio.settings.tz

    def when(value: datetime | None, tz: str | None = None) -> str:
        return format_instant(value, ZoneInfo(tz) if tz else zone)

    app.state.templates.env.filters["when"] = when
    install_problem_handlers(app)
    app.include_router(_auth.router)
    app.include_router(_public.router)
    app.include_router(_resources.router)
    app.include_router(_rectify.router)
    app.include_router(_ops.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=_WEB / "static"), name="static")
    return app
