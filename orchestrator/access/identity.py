"""Who is asking: identity proven by the operator's private key, never by a typed name.

:func:`authenticate` loads the operator's Ed25519 private key (it never leaves the process),
signs a fresh challenge bound to a purpose, this host, a random nonce and the time, and checks
the signature against the public key *registered* under that key id. The signature is a DSSE
signature over a dedicated payload type, so it can never be replayed as a record signature
(and a record signature can never log anyone in).

The two halves, :func:`new_challenge` and :func:`verify_challenge`, are public so that a remote
interface can send the challenge and verify the client's answer with the same code. A remote
interface must also remember the nonces it has accepted (within ``max_age``) to refuse replays;
in-process authentication does not need to, because the challenge never leaves the process.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from orchestrator.errors import AccessDeniedError, KeyFileError
from orchestrator.intake.keys import key_id, load_public_key
from orchestrator.intake.registry import Person, person_by_id
from orchestrator.record.dsse import Ed25519Signer, Signature, sign_payload, verify_signature
from orchestrator.store.models import KeyRow

if TYPE_CHECKING:
    from orchestrator.context import Rio
    from orchestrator.settings import Settings

__all__ = [
    "AUTH_PAYLOAD_TYPE",
    "AUTH_PURPOSE",
    "KEY_FILE_ENV",
    "Challenge",
    "authenticate",
    "new_challenge",
    "resolve_key_file",
    "verify_challenge",
]

AUTH_PURPOSE = "rio-auth-v1"
AUTH_PAYLOAD_TYPE = "application/vnd.rio.auth-challenge+json;version=1"
KEY_FILE_ENV = "RIO_KEY_FILE"
_MAX_AGE = timedelta(seconds=60)
# Clocks of two hosts differ a little; a challenge from slightly in the future is still fresh.
_SKEW = timedelta(seconds=5)


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenge:
    """A one-time statement to sign: purpose, host, nonce and time."""

    purpose: str
    host: str
    nonce: str
    issued_at: datetime

    def to_bytes(self) -> bytes:
        """The exact bytes that are signed (sorted-key, compact JSON)."""
        data: dict[str, Any] = {
            "purpose": self.purpose,
            "host": self.host,
            "nonce": self.nonce,
            "issued_at": self.issued_at.astimezone(UTC).isoformat(),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def new_challenge(*, now: datetime, host: str | None = None) -> Challenge:
    """Return a fresh challenge: :data:`AUTH_PURPOSE`, this host, 256 random bits, the time."""
    return Challenge(
        purpose=AUTH_PURPOSE,
        host=host if host is not None else socket.gethostname(),
        nonce=secrets.token_hex(32),
        issued_at=now,
    )


def resolve_key_file(key_file: Path | None, settings: Settings) -> Path:
    """The key file given, else the settings' (``RIO_KEY_FILE``).

    Raises:
        KeyFileError: neither is set.
    """
    if key_file is not None:
        return key_file
    if settings.key_file is None:
        raise KeyFileError(f"no key file: pass --key FILE or set {KEY_FILE_ENV}")
    return settings.key_file


def verify_challenge(
    s: Session,
    challenge: Challenge,
    signature: Signature,
    *,
    now: datetime,
    host: str | None = None,
    max_age: timedelta = _MAX_AGE,
) -> Person:
    """Check a signed challenge and return the person whose registered key made it.

    Args:
        s: A database session.
        challenge: The challenge that was issued.
        signature: The signature over it (its key id names the key).
        now: The time of the check.
        host: The host the challenge must name (default: this host).
        max_age: How old the challenge may be.

    Returns:
        The registered, active owner of the key.

    Raises:
        AccessDeniedError: wrong purpose or host, stale challenge, unregistered key, bad
            signature, revoked or expired key, revoked person.
    """
    when = now
    kid = signature.keyid
    short = f"key {kid[:16]}..."
    if challenge.purpose != AUTH_PURPOSE:
        raise AccessDeniedError(f"{short}: challenge purpose {challenge.purpose!r} is not ours")
    expected_host = host if host is not None else socket.gethostname()
    if challenge.host != expected_host:
        raise AccessDeniedError(f"{short}: challenge was made for another host")
    age = when - challenge.issued_at
    if age > max_age or age < -_SKEW:
        raise AccessDeniedError(f"{short}: challenge is stale (issued {challenge.issued_at})")
    row = s.get(KeyRow, kid)
    if row is None:
        raise AccessDeniedError(f"{short} is not registered to anyone (rio person key)")
    try:
        registered = load_public_key(row.public_pem.encode("ascii"))
    except KeyFileError as exc:
        raise AccessDeniedError(f"{short}: the registered public key is unusable") from exc
    # The id is re-derived from the stored key, so a registry row whose id and key disagree
    # (an edited database) cannot vouch for someone else's key.
    if key_id(registered) != kid or not verify_signature(
        AUTH_PAYLOAD_TYPE, challenge.to_bytes(), signature, registered
    ):
        raise AccessDeniedError(f"{short}: signature does not verify against the registered key")
    if row.revoked_at is not None and row.revoked_at <= when:
        raise AccessDeniedError(f"{short} was revoked at {row.revoked_at.isoformat()}")
    if row.expires_at is not None and row.expires_at <= when:
        raise AccessDeniedError(f"{short} expired at {row.expires_at.isoformat()}")
    person = person_by_id(s, row.person_id)
    if not person.active_at(when):
        assert person.revoked_at is not None
        raise AccessDeniedError(
            f"{short} belongs to {person.name}, revoked at {person.revoked_at.isoformat()}"
        )
    return person


def authenticate(
    rio: Rio,
    key_file: Path | None = None,
    *,
    claimed: str | None = None,
    now: datetime | None = None,
) -> Person:
    """Prove who the operator is from their private key file.

    Args:
        rio: The opened home.
        key_file: The operator's private key (PKCS#8 PEM, mode 0600); default ``RIO_KEY_FILE``.
        claimed: If given, the name the operator says they are; refused unless it is the key's
            owner.
        now: The time of the check (default: the app's clock).

    Returns:
        The authenticated person.

    Raises:
        KeyFileError: no key file, or it is missing, too widely readable or not Ed25519.
        AccessDeniedError: the key is not registered, revoked or expired; the person is
            revoked; or the key belongs to someone other than ``claimed``.
    """
    path = resolve_key_file(key_file, rio.settings)
    signer = Ed25519Signer.from_file(path)
    when = now or rio.clock.now()
    challenge = new_challenge(now=when)
    signature = sign_payload(AUTH_PAYLOAD_TYPE, challenge.to_bytes(), signer)
    with rio.db.session() as s:
        person = verify_challenge(s, challenge, signature, now=when, host=challenge.host)
    if claimed is not None and claimed != person.name:
        raise AccessDeniedError(
            f"{path}: key {signer.keyid[:16]}... belongs to {person.name}, not to {claimed}"
        )
    return person
