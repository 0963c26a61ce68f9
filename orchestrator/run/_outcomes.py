"""The outcome leaf of one probe, as the runner logs it: what happened, when it was sent (as the
tool traced it, where it did), a salted digest of its evidence and its findings' digests."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from msgspec import UNSET, UnsetType

from orchestrator.gate.decide import Admission
from orchestrator.ledger.bodies import NotSent, Outcome, OutcomeBody
from orchestrator.ledger.leaves import format_instant
from orchestrator.run._findings import Keyed
from probes.base import ProbeResult

__all__ = ["bounded", "outcome_body"]

_ERROR_LIMIT = 500


def bounded(error: str | None) -> str | None:
    """An outcome's reason as it goes into the ledger: one line, at most 500 characters."""
    if error is None:
        return None
    return " ".join(error.split())[:_ERROR_LIMIT]


def outcome_body(
    intent: int,
    result: ProbeResult | None,
    outcome: str,
    keyed: Sequence[Keyed],
    *,
    salt: bytes | None,
    sent_at: datetime | None = None,
    reason: Admission | None = None,
) -> OutcomeBody:
    """The outcome leaf's body for the intent ``intent``.

    Args:
        result: what the probe answered; ``None`` when it was never sent.
        keyed: its findings, keyed (their digests go into the leaf).
        salt: the run's evidence-digest salt; needed when the result has observations.
        sent_at: the budget grant immediately before connecting (``Gate.admit``), unless the
            tool traced its connections itself (then the first of those).
        reason: why a permit went unsent (its admission's refusal).
    """
    digest = None
    if result is not None and result.observations:
        # A salted digest: auditors can check evidence they were granted, nobody can guess it.
        assert salt is not None
        evidence = json.dumps(
            [[o.key, o.value, o.port, o.evidence] for o in result.observations],
            sort_keys=True,
            default=str,
        ).encode()
        digest = hmac.new(salt, evidence, hashlib.sha256).hexdigest()
    sent: str | None = format_instant(sent_at) if sent_at is not None else None
    sends: tuple[int, ...] | UnsetType = UNSET
    if result is not None and result.connection_times:
        # What went out, as the tool traced it: the first connection and the others'
        # offsets from it (microseconds), so an audit replays the budgets from the wire.
        first = result.connection_times[0]
        sent = format_instant(datetime.fromtimestamp(first, UTC))
        sends = tuple(round((t - first) * 1_000_000) for t in result.connection_times)
    return OutcomeBody(
        intent=intent,
        outcome=Outcome(outcome),
        elapsed_us=round(result.elapsed * 1_000_000) if result else None,
        connections=result.connections if result else 0,
        evidence_digest=digest,
        findings=tuple(k.digest for k in keyed),
        sent_at=sent,
        # Why it was not ok, in the probe's words (a probe's own refusal included).
        error=bounded(result.error) if result is not None else None,
        sends_us=sends,
        not_sent=UNSET
        if reason is None
        else NotSent(check=reason.check, reason=reason.reason, sentence=reason.sentence),
    )
