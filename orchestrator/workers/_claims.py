"""One permit, one send: the workers' shared claim on each permit (Redis).

Celery acknowledges a task late (after it finished), so a worker killed mid-task has its task
delivered again, to another worker. Each permit's idempotency key is claimed in Redis by the first
delivery's task id, atomically (``HSETNX``), and moves ``claimed -> sending -> done``:

- a new key: this delivery owns it and may send;
- the same task id again (a redelivery) after ``done``: the stored result is returned, nothing is
  sent again;
- the same task id while ``sending`` (its worker died mid-send): the probe may have left, so it
  is not sent again; the outcome is ``unknown`` (as the runner handles an intent without outcome);
- the same task id while only ``claimed`` (died before sending): it is sent now;
- another task id: a replayed permit; it is refused.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

import redis

__all__ = ["Claim", "ClaimStore", "Seen"]


class Seen(enum.Enum):
    """What the claim store knew of a permit when a delivery asked for it."""

    NEW = "new"
    """Nobody had it: this delivery sends."""
    RETRY = "retry"
    """Redelivered before anything was sent: this delivery sends."""
    DONE = "done"
    """Redelivered after the outcome was stored: that outcome is the answer."""
    IN_DOUBT = "in-doubt"
    """Redelivered after its worker began sending: not sent again, outcome unknown."""
    REPLAY = "replay"
    """Another task carried the same permit: refused."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    seen: Seen
    result: dict[str, Any] | None = None


class ClaimStore:
    """Claims in Redis under ``{namespace}:permit:{key}``, kept ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, *, namespace: str, ttl: int = 86_400) -> None:
        self._r = client
        self._ns = namespace
        self._ttl = ttl

    def _name(self, key: str) -> str:
        return f"{self._ns}:permit:{key}"

    def claim(self, key: str, task_id: str) -> Claim:
        name = self._name(key)
        if self._r.hsetnx(name, "task", task_id):
            self._r.hset(name, "state", "claimed")
            self._r.expire(name, self._ttl)
            return Claim(seen=Seen.NEW)
        raw: dict[bytes, bytes] = self._r.hgetall(name)  # type: ignore[assignment]
        got = {k.decode(): v.decode() for k, v in raw.items()}
        if got.get("task") != task_id:
            return Claim(seen=Seen.REPLAY)
        state = got.get("state", "claimed")
        if state == "done":
            return Claim(seen=Seen.DONE, result=json.loads(got["result"]))
        if state == "sending":
            return Claim(seen=Seen.IN_DOUBT)
        return Claim(seen=Seen.RETRY)

    def sending(self, key: str) -> None:
        """Mark the permit as leaving now (called immediately before the probe connects)."""
        self._r.hset(self._name(key), "state", "sending")

    def done(self, key: str, result: dict[str, Any]) -> None:
        self._r.hset(self._name(key), mapping={"state": "done", "result": json.dumps(result)})

    def note_refusal(self, entry: dict[str, Any]) -> None:
        """Keep the worker's refusals in a bounded stream for ``rio doctor`` and operators."""
        self._r.xadd(
            f"{self._ns}:refusals",
            {"entry": json.dumps(entry, sort_keys=True)},
            maxlen=10_000,
            approximate=True,
        )
