"""The runner's per-target lanes: one queue of requests per target, bounded in number and size.

A lane decides its target's next request while the previous one is being sent, so each target has
a request waiting at the budget's pacer ahead of every release (see ``runner.py``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from orchestrator.gate.decide import ProbeRequest

__all__ = ["Lanes", "lane_key"]


@dataclass
class Lanes:
    """The runner's per-target lanes: requests queued per target, and room for more."""

    limit: int
    queued_limit: int
    queues: dict[str, deque[ProbeRequest]] = field(default_factory=dict)
    queued: int = 0
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self, key: str) -> None:
        self.queues.pop(key, None)
        self.room.set()

    def drop(self, key: str, queue: deque[ProbeRequest]) -> None:
        """Close the lane and forget the requests still in its queue (the run is stopping)."""
        self.queued -= len(queue)
        queue.clear()
        self.close(key)


def lane_key(req: ProbeRequest) -> str:
    return req.ip or req.host or req.target
