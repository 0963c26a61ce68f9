"""The kill broadcast: one Redis pub/sub channel that every worker listens on.

A kill is a message, not a flag each worker polls: the runner (its executor) publishes the run or
the permit to stop, every worker process receives it on its listener thread and cancels the
probes of that run it has in flight (their asyncio tasks), at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from orchestrator.run.executors._broker import kill_channel

__all__ = ["KillListener"]


@dataclass(kw_only=True)
class _Flight:
    run: str
    key: str
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[object]


@dataclass(kw_only=True)
class KillListener:
    """Listens on the kill channel in a daemon thread; cancels matching probes in flight."""

    client: redis.Redis
    namespace: str
    _flights: dict[str, _Flight] = field(default_factory=dict)
    _killed_runs: set[str] = field(default_factory=set)
    _killed_keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _pubsub: redis.client.PubSub | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(kill_channel(self.namespace))
        self.ready.set()
        self._thread = threading.Thread(target=self._listen, name="rio-kill", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                self._pubsub.close()

    def killed(self, run: str, key: str) -> bool:
        """Whether ``run`` (or this one permit of it) was stopped by a broadcast."""
        with self._lock:
            return run in self._killed_runs or key in self._killed_keys

    @contextlib.contextmanager
    def flight(self, run: str, key: str) -> Iterator[None]:
        """Register the current asyncio task as the probe for ``key`` while it runs."""
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._flights[key] = _Flight(
                run=run, key=key, loop=asyncio.get_running_loop(), task=task
            )
        try:
            yield
        finally:
            with self._lock:
                self._flights.pop(key, None)

    def _listen(self) -> None:
        assert self._pubsub is not None
        try:
            for message in self._pubsub.listen():  # type: ignore[no-untyped-call]
                if message.get("type") != "message":
                    continue
                try:
                    body = json.loads(message["data"])
                except (TypeError, ValueError):
                    continue
                self._apply(str(body.get("run")), body.get("key"))
        except (redis.RedisError, ValueError, OSError):
            # Closed at shutdown (or the store went away: the runner's deadline still bounds it).
            return

    def _apply(self, run: str, key: str | None) -> None:
        with self._lock:
            seen = self._killed_runs if key is None else self._killed_keys
            if len(seen) > 10_000:
                seen.clear()
            seen.add(run if key is None else key)
            hits = [
                f for f in self._flights.values() if f.run == run and (key is None or f.key == key)
            ]
        for f in hits:
            f.loop.call_soon_threadsafe(f.task.cancel)
