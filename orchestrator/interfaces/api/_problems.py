"""Errors as RFC 9457 problem details (``application/problem+json``), pages as readable text.

rio's exception tree maps onto HTTP once, here: bad input 422 (unknown object 404, existing
name 409), refusals 403 (a closure that lacks signatures, a killed run: 409), wrong state 409,
failed verification 422, failures outside rio 503. Anything else is a bug: 500 with a fixed
sentence, never a stack trace or the exception's text (it might carry confidential data); the
traceback goes to the server log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import (
    AccessDeniedError,
    ClosureRefusedError,
    ConflictError,
    FailureError,
    InputError,
    NotFoundError,
    RefusalError,
    RioError,
    RunKilledError,
    StateError,
    VerificationError,
)

__all__ = ["PROBLEM_TYPES", "Problem", "install_problem_handlers", "problem_for"]

_log = logging.getLogger("rio.api")

PROBLEM_JSON = "application/problem+json"

#: slug -> (status, title); a problem's ``type`` is ``/problems/<slug>``.
PROBLEM_TYPES: dict[str, tuple[int, str]] = {
    "unauthenticated": (401, "Not logged in"),
    "access-denied": (403, "Access denied"),
    "refused": (403, "Refused by the rules"),
    "not-found": (404, "Not found"),
    "conflict": (409, "Conflict"),
    "wrong-state": (409, "Wrong state"),
    "closure-refused": (409, "Closure refused"),
    "run-killed": (409, "Run killed"),
    "bad-input": (422, "Bad input"),
    "verification-failed": (422, "Verification failed"),
    "rate-limited": (429, "Too many requests"),
    "unavailable": (503, "A service rio depends on failed"),
    "internal": (500, "Internal error"),
    "http": (400, "Bad request"),
}


@dataclass(kw_only=True)
class Problem(Exception):
    """An error response raised by a route or dependency."""

    slug: str
    detail: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)


def problem_for(exc: RioError) -> Problem:
    """The problem a rio error becomes (the error's message is the detail)."""
    slug = "bad-input"
    if isinstance(exc, NotFoundError):
        slug = "not-found"
    elif isinstance(exc, ConflictError):
        slug = "conflict"
    elif isinstance(exc, InputError):
        slug = "bad-input"
    elif isinstance(exc, AccessDeniedError):
        slug = "access-denied"
    elif isinstance(exc, ClosureRefusedError):
        slug = "closure-refused"
    elif isinstance(exc, RunKilledError):
        slug = "run-killed"
    elif isinstance(exc, RefusalError):
        slug = "refused"
    elif isinstance(exc, StateError):
        slug = "wrong-state"
    elif isinstance(exc, VerificationError):
        slug = "verification-failed"
    elif isinstance(exc, FailureError):
        slug = "unavailable"
    return Problem(slug=slug, detail=str(exc))


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/metrics", "/healthz"):
        return False
    return "text/html" in request.headers.get("accept", "")


def render(request: Request, problem: Problem) -> Response:
    """The response for ``problem``: problem+json for the API, a page for a browser."""
    status, title = PROBLEM_TYPES[problem.slug]
    status = problem.status or status
    if _wants_html(request):
        templates = getattr(request.app.state, "templates", None)
        if templates is not None:
            return templates.TemplateResponse(  # type: ignore[no-any-return]
                request,
                "error.html",
                {"title": title, "detail": problem.detail, "status": status, "person": None},
                status_code=status,
                headers=problem.headers,
            )
        return HTMLResponse(f"<h1>{title}</h1>", status_code=status, headers=problem.headers)
    body: dict[str, Any] = {
        "type": f"/problems/{problem.slug}",
        "title": title,
        "status": status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=problem.headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error through :func:`render`."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return render(request, exc)

    async def on_rio(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RioError)
        return render(request, problem_for(exc))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return render(request, Problem(slug="bad-input", detail=where, extra={"errors": errors}))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {401: "unauthenticated", 403: "access-denied", 404: "not-found"}.get(
            exc.status_code, "http"
        )
        return render(
            request,
            Problem(
                slug=slug,
                status=exc.status_code,
                detail=str(exc.detail),
                headers=dict(exc.headers or {}),
            ),
        )

    async def on_bug(request: Request, exc: Exception) -> Response:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(
            request,
            Problem(slug="internal", detail="rio failed to answer this request; see the log"),
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RioError, on_rio)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)
