"""Remote login: a stored, single-use challenge signed with the person's key, for a session token.

The HTTP API proves who is asking the same way the CLI does (:mod:`orchestrator.access.identity`):
the person signs a challenge with their Ed25519 private key, and the signature is checked
against the public key *registered* under its key id. Remotely the challenge leaves the server,
so the server must remember it: :func:`issue_challenge` stores it with an expiry, and
:func:`redeem_challenge` marks it used *before* it checks the signature, so a challenge can be
answered once, right or wrong, and never replayed.

A successful answer yields a :class:`SessionToken`: 256 random bits, handed to the client once
and stored only as its SHA-256, valid for :data:`SESSION_TTL`. :func:`person_for_token` resolves
it on every request and re-checks that the person and the key are still in force, so a
revocation ends live sessions at once. Rights are never cached in the token: every request asks
:mod:`orchestrator.access.roles`.

Why tokens from a signed challenge and not long-lived per-person API tokens: rio's people
already hold keys (they sign records with them); a long-lived bearer secret would be a second
credential to leak, rotate and revoke, and a stolen one would outlive the key's revocation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from orchestrator.access.identity import AUTH_PURPOSE, Challenge, verify_challenge
from orchestrator.errors import AccessDeniedError
from orchestrator.intake.registry import Person, person_by_id
from orchestrator.record.dsse import Signature
from orchestrator.store.db import Database
from orchestrator.store.models import ApiSessionRow, AuthChallengeRow, KeyRow

__all__ = [
    "CHALLENGE_TTL",
    "SESSION_TTL",
    "SessionToken",
    "end_session",
    "issue_challenge",
    "person_for_token",
    "redeem_challenge",
]

CHALLENGE_TTL = timedelta(seconds=60)
"""How long an issued challenge may be answered."""
SESSION_TTL = timedelta(minutes=15)
"""How long a session token lives; the client logs in again after it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionToken:
    """A fresh session: the token (shown once), whose it is, and when it ends."""

    token: str
    person: Person
    key_id: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_challenge(db: Database, *, host: str, now: datetime) -> Challenge:
    """Make and store a fresh challenge for ``host`` (the name the server answers to).

    Expired challenges are swept on the way, so the table holds only the last minute's.
    """
    challenge = Challenge(
        purpose=AUTH_PURPOSE, host=host, nonce=secrets.token_hex(32), issued_at=now
    )
    with db.session() as s:
        s.execute(delete(AuthChallengeRow).where(AuthChallengeRow.expires_at < now))
        s.add(
            AuthChallengeRow(
                nonce=challenge.nonce,
                host=host,
                issued_at=now,
                expires_at=now + CHALLENGE_TTL,
            )
        )
    return challenge


def _take_challenge(db: Database, nonce: str, now: datetime) -> Challenge:
    """Mark the stored challenge used (committed, whatever follows) and return it."""
    with db.session() as s:
        row = s.get(AuthChallengeRow, nonce, with_for_update=True)
        if row is None:
            raise AccessDeniedError("login refused: the challenge is unknown (ask for a new one)")
        if row.used_at is not None:
            raise AccessDeniedError("login refused: the challenge was already answered")
        row.used_at = now
        expired = row.expires_at <= now
        challenge = Challenge(
            purpose=AUTH_PURPOSE, host=row.host, nonce=row.nonce, issued_at=row.issued_at
        )
    if expired:
        raise AccessDeniedError("login refused: the challenge expired (ask for a new one)")
    return challenge


def redeem_challenge(
    db: Database, nonce: str, signature: Signature, *, now: datetime
) -> SessionToken:
    """Check the answer to a stored challenge and open a session for the key's owner.

    Args:
        db: The database.
        nonce: The challenge answered.
        signature: The DSSE signature over the challenge's bytes
            (:data:`~orchestrator.access.identity.AUTH_PAYLOAD_TYPE`).
        now: The time of the check.

    Returns:
        The new session; its ``token`` is not stored anywhere and cannot be shown again.

    Raises:
        AccessDeniedError: unknown, used or expired challenge; or anything
            :func:`~orchestrator.access.identity.verify_challenge` refuses.
    """
    challenge = _take_challenge(db, nonce, now)
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        person = verify_challenge(
            s, challenge, signature, now=now, host=challenge.host, max_age=CHALLENGE_TTL
        )
        expires = now + SESSION_TTL
        s.add(
            ApiSessionRow(
                token_sha256=_digest(token),
                person_id=person.id,
                key_id=signature.keyid,
                issued_at=now,
                expires_at=expires,
            )
        )
    return SessionToken(token=token, person=person, key_id=signature.keyid, expires_at=expires)


def _session_person(s: Session, token: str, now: datetime) -> Person:
    row = s.get(ApiSessionRow, _digest(token))
    if row is None or row.ended_at is not None:
        raise AccessDeniedError("the session token is not valid (log in again)")
    if row.expires_at <= now:
        raise AccessDeniedError("the session expired (log in again)")
    key = s.get(KeyRow, row.key_id)
    if key is None or (key.revoked_at is not None and key.revoked_at <= now):
        raise AccessDeniedError("the key this session was opened with is revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise AccessDeniedError("the key this session was opened with expired")
    person = person_by_id(s, row.person_id)
    if not person.active_at(now):
        raise AccessDeniedError(f"{person.name} is revoked")
    return person


def person_for_token(db: Database, token: str, *, now: datetime) -> Person:
    """The person a live session token belongs to.

    Raises:
        AccessDeniedError: unknown, ended or expired token; revoked key or person.
    """
    with db.session() as s:
        return _session_person(s, token, now)


def end_session(db: Database, token: str, *, now: datetime) -> None:
    """Log out: the token stops working at once (unknown tokens are ignored)."""
    with db.session() as s:
        row = s.get(ApiSessionRow, _digest(token))
        if row is not None and row.ended_at is None:
            row.ended_at = now
