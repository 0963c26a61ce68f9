"""The closure rule of Art. 18 as a pure function: who must sign, and who counted.

:func:`evaluate_signoff` takes the authorised keys (the registry), the signatures on one record
version and the threshold, and counts distinct people per role in python-tuf's order: loop over
authorised keys, verify, check validity at signing time, count people. It touches no database;
:mod:`orchestrator.record.signoff` feeds it and enforces the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from orchestrator.intake.registry import Person, Role
from orchestrator.record.dsse import PAYLOAD_TYPE, Signature, verify_signature

__all__ = [
    "SIGNING_ROLES",
    "AuthorisedKey",
    "SignoffResult",
    "Threshold",
    "TimedSignature",
    "evaluate_signoff",
    "why_not_counted",
]

SIGNING_ROLES = frozenset({Role.OFFICER, Role.TECHNICIAN})


@dataclass(frozen=True, kw_only=True, slots=True)
class Threshold:
    """What closure needs.

    Attributes:
        officers: Distinct officers required (never fewer than 2).
        technicians: Distinct technicians of ``vendor`` required (0 without a vendor).
        vendor: The vendor the notice entrusted, if any.
        organs: The organs whose officers count: the notice's announcing organ and the
            co-inspecting organs it names (empty: the notice names no organ, no officer counts).
    """

    officers: int
    technicians: int
    vendor: str | None
    organs: frozenset[str] = frozenset()


def why_not_counted(
    *, role: str, organisation: str, vendor: str | None, threshold: Threshold
) -> str | None:
    """Say why a valid signature by this person does not count towards closure, or None.

    Officers count only for the organs the notice names (its announcing organ and any
    co-inspecting ones), technicians only for the vendor the notice entrusted; nobody else
    ever counts. The offline audit asks the same function, so both count alike.
    """
    if role == Role.OFFICER:
        if not threshold.organs:
            return "an officer, but the notice names no announcing organ"
        if organisation not in threshold.organs:
            named = ", ".join(sorted(threshold.organs))
            return (
                f"an officer of {organisation or '(no organisation)'}, not of the organ(s) "
                f"the notice names ({named})"
            )
        return None
    if role == Role.TECHNICIAN:
        if threshold.vendor is None or vendor != threshold.vendor:
            return (
                f"a technician of {vendor or '(no vendor)'}, not of the entrusted vendor "
                f"{threshold.vendor or '(none)'}"
            )
        return None
    return f"a {role} never counts towards sign-off"


@dataclass(frozen=True, kw_only=True, slots=True)
class TimedSignature:
    """A submitted signature and the time the store received it."""

    signature: Signature
    signed_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthorisedKey:
    """A registered key with its holder, as the closure rule needs it."""

    key_id: str
    public_key: Ed25519PublicKey
    person: Person
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def invalid_at(self, when: datetime) -> str | None:
        """Say why this key could not sign at ``when``, or None if it could."""
        if when < self.created_at:
            return f"key registered at {self.created_at.isoformat()}, after the signature"
        if self.revoked_at is not None and when >= self.revoked_at:
            return f"key revoked at {self.revoked_at.isoformat()}"
        if self.expires_at is not None and when >= self.expires_at:
            return f"key expired at {self.expires_at.isoformat()}"
        if not self.person.active_at(when):
            assert self.person.revoked_at is not None
            return f"{self.person.name} revoked at {self.person.revoked_at.isoformat()}"
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class SignoffResult:
    """Whether a record version has the signatures closure needs, and why (not).

    Attributes:
        run_id: The run.
        version: The record version checked.
        threshold: What is required.
        officers_signed: Distinct officers whose valid signature counts, sorted.
        technicians_signed: Distinct technicians of the vendor whose signature counts, sorted.
        missing: What is still needed, one phrase each; empty when the rule is met.
        ignored: Signatures that did not count, each with the reason.
        why: One sentence: met, or what is missing.
    """

    run_id: str
    version: int
    threshold: Threshold
    officers_signed: tuple[str, ...]
    technicians_signed: tuple[str, ...]
    missing: tuple[str, ...]
    ignored: tuple[str, ...]
    why: str

    def __bool__(self) -> bool:
        return not self.missing


def _needs(threshold: Threshold, officers: int, technicians: int) -> tuple[str, ...]:
    missing: list[str] = []
    if officers < threshold.officers:
        n = threshold.officers - officers
        missing.append(f"{n} more officer{'s' if n > 1 else ''}")
    if threshold.vendor is not None and technicians < threshold.technicians:
        n = threshold.technicians - technicians
        missing.append(f"{n} more technician{'s' if n > 1 else ''} of vendor {threshold.vendor}")
    return tuple(missing)


def evaluate_signoff(
    *,
    run_id: str,
    version: int,
    version_created_at: datetime,
    payload: bytes,
    signatures: Sequence[TimedSignature],
    keys: Iterable[AuthorisedKey],
    threshold: Threshold,
) -> SignoffResult:
    """Apply the closure rule to one record version. Never raises.

    Args:
        run_id: The run (for the result).
        version: The version the payload is.
        version_created_at: When that version was stored; an earlier signature is refused.
        payload: The canonical record bytes the signatures must cover.
        signatures: The submitted signatures with their times.
        keys: Every authorised key; signatures by any other key id are ignored.
        threshold: What is required.

    Returns:
        The result; falsy unless the threshold is met.
    """
    seen: dict[str, TimedSignature] = {}
    for submitted in signatures:
        kid = submitted.signature.keyid
        if kid in seen:
            why = f"key id {kid} appears more than once in the signature list; the list is rejected"
            return SignoffResult(
                run_id=run_id,
                version=version,
                threshold=threshold,
                officers_signed=(),
                technicians_signed=(),
                missing=_needs(threshold, 0, 0) or ("a signature list without repeated key ids",),
                ignored=(why,),
                why=why,
            )
        seen[kid] = submitted
    officers: set[str] = set()
    technicians: set[str] = set()
    ignored: list[str] = []
    authorised: set[str] = set()
    for key in sorted(keys, key=lambda k: k.key_id):
        authorised.add(key.key_id)
        item = seen.get(key.key_id)
        if item is None:
            continue
        who = f"{key.person.name} ({key.person.role}, key {key.key_id[:16]})"
        if not verify_signature(PAYLOAD_TYPE, payload, item.signature, key.public_key):
            ignored.append(f"{who}: signature does not verify over record v{version}")
            continue
        if item.signed_at < version_created_at:
            ignored.append(f"{who}: signed before record v{version} existed")
            continue
        problem = key.invalid_at(item.signed_at)
        if problem is not None:
            ignored.append(f"{who}: {problem}; signed at {item.signed_at.isoformat()}")
            continue
        role = key.person.role
        reason = why_not_counted(
            role=role,
            organisation=key.person.organisation,
            vendor=key.person.vendor,
            threshold=threshold,
        )
        if reason is not None:
            ignored.append(f"{who}: {reason}")
        elif role is Role.OFFICER:
            officers.add(key.person.name)
        else:
            technicians.add(key.person.name)
    for kid in sorted(seen.keys() - authorised):
        ignored.append(f"key {kid[:16]}: not a registered key")
    missing = _needs(threshold, len(officers), len(technicians))
    if missing:
        why = f"record of run {run_id} v{version} needs " + " and ".join(missing)
    else:
        why = f"record of run {run_id} v{version} has the signatures closure needs"
    return SignoffResult(
        run_id=run_id,
        version=version,
        threshold=threshold,
        officers_signed=tuple(sorted(officers)),
        technicians_signed=tuple(sorted(technicians)),
        missing=missing,
        ignored=tuple(ignored),
        why=why,
    )
