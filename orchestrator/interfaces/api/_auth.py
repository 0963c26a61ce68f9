"""Who is asking over HTTP: the login routes and the dependency that names the person.

Login is two calls: ``POST /api/v1/auth/challenge`` returns a stored, single-use challenge;
the client signs its exact bytes with the person's Ed25519 key (a DSSE signature with the
payload type :data:`~orchestrator.access.identity.AUTH_PAYLOAD_TYPE`) and sends the signature to
``POST /api/v1/auth/token``, which answers with a short-lived bearer token and sets the same
token as an ``HttpOnly``, ``SameSite=Strict`` cookie for the pages.

Every API route takes ``Authorization: Bearer TOKEN``. Reading routes (GET) also take the cookie,
so the pages and their live progress stream (``EventSource`` sends no headers) work; routes
that change anything take only the header, so a page on another site cannot make a logged-in
browser act (no cookie-borne writes, hence no CSRF).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from orchestrator.access.identity import AUTH_PAYLOAD_TYPE
from orchestrator.access.sessions import (
    CHALLENGE_TTL,
    SESSION_TTL,
    end_session,
    issue_challenge,
    person_for_token,
    redeem_challenge,
)
from orchestrator.errors import AccessDeniedError
from orchestrator.intake.registry import Person
from orchestrator.interfaces.api._context import ApiContext, context
from orchestrator.interfaces.api._problems import Problem
from orchestrator.record.dsse import Signature

__all__ = ["COOKIE", "Actor", "PageActor", "router"]

COOKIE = "rio_session"
_SAFE_METHODS = frozenset({"GET", "HEAD"})

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _unauthenticated(detail: str) -> Problem:
    return Problem(
        slug="unauthenticated", detail=detail, headers={"WWW-Authenticate": 'Bearer realm="rio"'}
    )


def _token(request: Request, *, cookie_ok: bool) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if cookie_ok:
        return request.cookies.get(COOKIE) or None
    return None


def current_person(request: Request, ctx: Annotated[ApiContext, Depends(context)]) -> Person:
    """The logged-in person (401 when there is no valid session)."""
    token = _token(request, cookie_ok=request.method in _SAFE_METHODS)
    if token is None:
        raise _unauthenticated("log in: POST /api/v1/auth/challenge, then /api/v1/auth/token")
    try:
        return person_for_token(ctx.rio.db, token, now=ctx.clock.now())
    except AccessDeniedError as exc:
        raise _unauthenticated(str(exc)) from exc


def page_person(request: Request, ctx: Annotated[ApiContext, Depends(context)]) -> Person | None:
    """The person behind the page session cookie, or ``None`` (pages show a login link)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return person_for_token(ctx.rio.db, token, now=ctx.clock.now())
    except AccessDeniedError:
        return None


Actor = Annotated[Person, Depends(current_person)]
PageActor = Annotated[Person | None, Depends(page_person)]
Ctx = Annotated[ApiContext, Depends(context)]


class ChallengeOut(BaseModel):
    """A challenge to sign: sign ``PAE(payload_type, challenge)`` (DSSE) with your key."""

    nonce: str
    challenge: str = Field(description="The exact UTF-8 bytes to sign (compact JSON).")
    payload_type: str
    expires_at: datetime


class TokenIn(BaseModel):
    """The answer to a challenge."""

    nonce: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    keyid: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    sig: str = Field(min_length=1, max_length=200, description="Base64 Ed25519 signature.")


class PersonOut(BaseModel):
    """Who a session belongs to."""

    name: str
    role: str
    organisation: str
    vendor: str | None


class TokenOut(BaseModel):
    """A session: send ``Authorization: Bearer <token>`` until ``expires_at``."""

    token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_at: datetime
    person: PersonOut


def person_out(person: Person) -> PersonOut:
    return PersonOut(
        name=person.name,
        role=str(person.role),
        organisation=person.organisation,
        vendor=person.vendor,
    )


def decode_sig(text: str, what: str) -> bytes:
    """Base64 (standard or URL-safe, padded or not) to bytes; a 422 problem otherwise."""
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Problem(slug="bad-input", detail=f"{what}: not base64") from exc


@router.post("/challenge", response_model=ChallengeOut)
def challenge(ctx: Ctx) -> ChallengeOut:
    """Issue a single-use login challenge (valid for 60 seconds)."""
    now = ctx.clock.now()
    issued = issue_challenge(ctx.rio.db, host=ctx.config.host_name, now=now)
    return ChallengeOut(
        nonce=issued.nonce,
        challenge=issued.to_bytes().decode("utf-8"),
        payload_type=AUTH_PAYLOAD_TYPE,
        expires_at=now + CHALLENGE_TTL,
    )


@router.post("/token", response_model=TokenOut)
def token(body: TokenIn, response: Response, ctx: Ctx) -> TokenOut:
    """Exchange a signed challenge for a session token (also set as the page cookie)."""
    signature = Signature(keyid=body.keyid, sig=decode_sig(body.sig, "sig"))
    try:
        session = redeem_challenge(ctx.rio.db, body.nonce, signature, now=ctx.clock.now())
    except AccessDeniedError as exc:
        raise _unauthenticated(str(exc)) from exc
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=ctx.config.secure_cookie,
        path="/",
    )
    return TokenOut(
        token=session.token, expires_at=session.expires_at, person=person_out(session.person)
    )


@router.post("/logout", status_code=204)
def logout(request: Request, response: Response, ctx: Ctx, _person: Actor) -> Response:
    """End the session: the token stops working at once."""
    token = _token(request, cookie_ok=False)
    if token is not None:
        end_session(ctx.rio.db, token, now=ctx.clock.now())
    out = Response(status_code=204)
    out.delete_cookie(COOKIE, path="/")
    return out


@router.get("/me", response_model=PersonOut)
def me(person: Actor) -> PersonOut:
    """Who this session belongs to."""
    return person_out(person)
