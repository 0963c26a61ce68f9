"""Typed bodies of probe-log leaves: one class per kind, the wire format defined once.

Each body is a frozen msgspec Struct with ``to_json()`` (the ``data`` of
:func:`~orchestrator.ledger.leaves.make_leaf`) and ``from_json()``; values of the enums are
the strings archives have always held, so a leaf built from a body is byte-identical to the
dict literal it replaces (``tests/ledger/test_bodies.py``, ``tests/record/test_golden_archive.py``).

``to_json`` writes the fields in declaration order (canonical JSON sorts them anyway) and
leaves out a field that is :data:`msgspec.UNSET`: the fields later versions of rio added
(``sent_at``, ``error``, ``sends_us``, ``not_sent`` of an outcome) are UNSET where a leaf did not
carry them, so ``from_json(data).to_json() == data`` for leaves written before they existed.

``from_json`` checks types strictly (no ``"3"`` for ``3``, no ``true`` for ``1``) and raises
:class:`BodyError` naming the field. It is for leaves rio wrote itself (its own database); the
offline audit judges an archive's leaves field by field instead, so that each check words its
own problem (``orchestrator/audit/_leafchecks.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "BodyError",
    "Check",
    "HealthBody",
    "IntentBody",
    "KillBody",
    "NotSent",
    "Outcome",
    "OutcomeBody",
    "RefusalBody",
    "StateBody",
    "unknown_outcome",
]


class BodyError(ValueError):
    """A leaf's ``data`` is not a body of its kind (the message names the field)."""


class Outcome(enum.StrEnum):
    """What came back from a probe (the ``outcome`` of an outcome leaf)."""

    OK = "ok"
    """the probe ran and got an answer"""
    TIMEOUT = "timeout"
    """no answer within the policy's probe timeout"""
    UNREACHABLE = "unreachable"
    """the target could not be reached"""
    ERROR = "error"
    """the probe or its tool failed"""
    REFUSED = "refused"
    """the target refused the connection"""
    KILLED = "killed"
    """cancelled by the kill switch before it was sent"""
    UNKNOWN = "unknown"
    """its runner crashed after the intent: maybe sent, never sent again"""
    UNSENT = "unsent"
    """permitted but not sent (e.g. its rate budget was gone at send time)"""


class Check(enum.StrEnum):
    """The gate's checks, in the order it runs them (the ``check`` of a refusal leaf)."""

    REQUEST = "request"
    """the request itself is well formed"""
    RUN = "run"
    """the run is active and not killed"""
    NOTICE = "notice"
    """the notice's lead time is met"""
    ENTRUSTED = "entrusted"
    """the launcher is an active technician of the entrusted vendor"""
    WINDOW = "window"
    """inside an announced and a policy window, off blackouts"""
    PROBE = "probe"
    """the policy allows the probe and its parameters"""
    SCOPE = "scope"
    """every address of the target is inside the scope, outside its excludes"""
    HEALTH = "health"
    """the target is not paused by the health breaker"""
    RATE = "rate"
    """the probe's cost fits every one-second budget"""


class _Body(msgspec.Struct, frozen=True, kw_only=True):
    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The leaf's ``data``: plain JSON values (lists, not tuples), UNSET fields left out."""
        # Through JSON and back: msgspec renders floats shortest-round-trip, so every value
        # comes back equal, and nested structs, enums and tuples come back as dicts, str, lists.
        data: dict[str, Any] = _DECODE(_ENCODE(self))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The body of a leaf's ``data``.

        Raises:
            BodyError: a field is missing or of the wrong type.
        """
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise BodyError(f"{cls.kind} leaf: {exc}") from None


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder().decode


class StateBody(_Body, frozen=True, kw_only=True):
    """A ``state`` leaf: the run's new state and why (``None`` when nothing needs saying)."""

    kind: ClassVar[str] = "state"
    state: str
    reason: str | None = None


class KillBody(_Body, frozen=True, kw_only=True):
    """A ``kill`` leaf: who pulled the kill switch and why."""

    kind: ClassVar[str] = "kill"
    by: str
    reason: str


class IntentBody(_Body, frozen=True, kw_only=True):
    """An ``intent`` leaf: a permit, logged (and durable) before the probe is sent.

    ``ip`` is the pinned address; ``cost`` the budget units (connections) the permit allows;
    ``deadline`` an ISO 8601 instant; ``max_rate`` the per-IP rate in force (an integer today,
    a float in archives of rio's first version); ``resolution`` the logged DNS answer of a
    host target (:meth:`~orchestrator.gate.resolve.Resolution.to_json`).
    """

    kind: ClassVar[str] = "intent"
    item: int
    probe: str
    target: str
    ip: str
    port: int | None
    ports: tuple[int, ...]
    server_name: str | None
    cost: int
    deadline: str | None
    max_rate: int | float
    resolution: dict[str, Any] | None


class RefusalBody(_Body, frozen=True, kw_only=True):
    """A ``refusal`` leaf: the gate's no.

    ``request`` is the request as far as it is loggable (:meth:`ProbeRequest.to_json
    <orchestrator.gate.decide.ProbeRequest.to_json>`; a malformed one keeps what it had);
    ``at`` the decision's instant (ISO 8601).
    """

    kind: ClassVar[str] = "refusal"
    request: dict[str, Any]
    check: Check
    reason: str
    sentence: str
    at: str | None
    resolution: dict[str, Any] | None


class NotSent(msgspec.Struct, frozen=True, kw_only=True):
    """Why a permitted probe went unused (the ``not_sent`` of an ``unsent`` outcome)."""

    check: Check | None
    reason: str | None
    sentence: str


class OutcomeBody(_Body, frozen=True, kw_only=True):
    """An ``outcome`` leaf: what came back for the intent at sequence number ``intent``.

    ``findings`` are the findings' digests; ``evidence_digest`` a salted digest of the
    evidence. ``sent_at`` (the send time, a leaf instant, ``None`` when never sent or not
    known) and ``error`` (why not ok, in the probe's words) are UNSET in archives written
    before they existed; ``sends_us`` (every traced connection's offset from ``sent_at``)
    only where the tool traced them; ``not_sent`` only for ``unsent``. ``elapsed`` (float
    seconds) is what rio's first version logged instead of ``elapsed_us``.
    """

    kind: ClassVar[str] = "outcome"
    intent: int
    outcome: Outcome
    elapsed_us: int | UnsetType | None = UNSET
    elapsed: float | UnsetType | None = UNSET
    connections: int | None
    evidence_digest: str | None
    findings: tuple[str, ...]
    sent_at: str | UnsetType | None = UNSET
    error: str | UnsetType | None = UNSET
    sends_us: tuple[int, ...] | UnsetType = UNSET
    not_sent: NotSent | UnsetType = UNSET


class HealthBody(_Body, frozen=True, kw_only=True):
    """A ``health`` leaf: the breaker changed a target's state.

    ``state`` is ``throttled``, ``paused`` or ``recovered``; ``factor`` the per-IP rate factor
    from now on; ``until`` the breaker's clock time the pause ends (``None`` unless paused).
    """

    kind: ClassVar[str] = "health"
    ip: str
    state: str
    factor: float
    until: float | None
    reason: str


def unknown_outcome(intent: int) -> dict[str, Any]:
    """The outcome leaf of an intent whose runner crashed: maybe sent, never sent again."""
    return OutcomeBody(
        intent=intent,
        outcome=Outcome.UNKNOWN,
        elapsed_us=None,
        connections=None,
        evidence_digest=None,
        findings=(),
    ).to_json()
