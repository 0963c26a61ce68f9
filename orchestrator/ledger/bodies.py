"""Typed bodies of probe-log leaves: one class per kind, the wire format defined once.

Each body is a frozen msgspec Struct with ``to_json()`` (the ``data`` of
:func:`~orchestrator.ledger.leaves.make_leaf`) and ``from_json()``; values of the enums are
the strings archives have always held, so a leaf built from a body is byte-identical to the
dict literal it replaces (``tests/ledger/test_bodies.py``).
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = ["KillBody", "Outcome", "StateBody", "unknown_outcome"]


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


class StateBody(msgspec.Struct, frozen=True, kw_only=True):
    """A ``state`` leaf: the run's new state and why (``None`` when nothing needs saying)."""

    state: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StateBody:
        return cls(state=str(data["state"]), reason=data.get("reason"))


class KillBody(msgspec.Struct, frozen=True, kw_only=True):
    """A ``kill`` leaf: who pulled the kill switch and why."""

    by: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KillBody:
        return cls(by=str(data["by"]), reason=str(data["reason"]))


def unknown_outcome(intent: int) -> dict[str, Any]:
    """The outcome leaf of an intent whose runner crashed: maybe sent, never sent again."""
    return {
        "intent": intent,
        "outcome": Outcome.UNKNOWN.value,
        "elapsed_us": None,
        "connections": None,
        "evidence_digest": None,
        "findings": [],
    }
