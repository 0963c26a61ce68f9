"""The Celery executor: each permit goes to a worker as a tagged wire permit.

The runner has already logged the intent and taken the budget; this executor sends the wire form
to the probe queue and waits for the worker's answer. Answers come back on one Redis list per
executor (named in the task), read by one task that hands each answer to the probe waiting for
it: one blocking read serves every probe in flight, so dispatch is pipelined (many permits on
the workers at once) without a Redis round trip per probe spent waiting. Cancelling a wait (the
kill switch or the permit's deadline) broadcasts a kill for that permit to every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import datetime

import redis
import redis.asyncio as aioredis

from orchestrator.run.executors._broker import (
    PROBE_TASK,
    celery_app,
    egress_queue,
    publish_kill,
    reply_list,
)
from orchestrator.run.executors._results import result_from_json
from orchestrator.run.executors._wire import idempotency_key, wire_permit
from orchestrator.settings import Settings
from probes.base import Permit, ProbeContext, ProbeResult

__all__ = ["CeleryExecutor"]

_BATCH = 256
"""answers taken from the reply list per read"""


class CeleryExecutor:
    """Sends permits to ``rio worker`` processes over the broker."""

    def __init__(self, settings: Settings) -> None:
        self._app = celery_app(settings)
        self._key = settings.require_permit_key()
        self._ns = settings.celery_queue
        self._queue = settings.celery_queue
        self._redis = aioredis.Redis.from_url(settings.state_url)
        self._sync = redis.Redis.from_url(settings.state_url)
        self._reply = reply_list(self._ns, uuid.uuid4().hex)
        self._waiting: dict[str, asyncio.Future[ProbeResult]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def execute(
        self, permit: Permit, ctx: ProbeContext, *, granted_at: datetime
    ) -> ProbeResult:
        doc = wire_permit(permit, granted_at=granted_at, ctx=ctx, key=self._key)
        task_id = str(uuid.uuid4())
        answer: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = answer
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="rio-worker-answers")
        try:
            # kombu's publish is synchronous; a thread keeps the run's event loop free meanwhile.
            await asyncio.to_thread(
                self._app.send_task,
                PROBE_TASK,
                args=[doc],
                kwargs={"reply": self._reply},
                queue=egress_queue(self._queue, ctx.source_address),
                task_id=task_id,
            )
            return await answer
        except asyncio.CancelledError:
            # Every worker hears this; the one holding the permit cancels it, a queued one never
            # sends it. Synchronous, so it is published even while this task is being torn down.
            publish_kill(
                self._sync, self._ns, run=permit.run_id,
                key=idempotency_key(permit.run_id, permit.decision),
            )  # fmt: skip
            raise
        finally:
            self._waiting.pop(task_id, None)

    async def _read(self) -> None:
        """Hand each answer on the reply list to the probe waiting for it, until none waits."""
        while self._waiting:
            got = await self._redis.blpop([self._reply], timeout=1)
            if got is None:
                continue
            raw = [got[1]]
            more = await self._redis.lpop(self._reply, _BATCH)
            if isinstance(more, list):
                raw += more
            for item in raw:
                body = json.loads(item)
                waiter = self._waiting.get(str(body.get("task")))
                # An answer nobody waits for (killed, timed out) is dropped.
                if waiter is not None and not waiter.done():
                    waiter.set_result(result_from_json(body["answer"]))

    async def kill(self, run_id: str) -> int:
        """Broadcast a kill of ``run_id`` to every worker; returns how many listeners heard it."""
        return await asyncio.to_thread(publish_kill, self._sync, self._ns, run=run_id)

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._redis.delete(self._reply)
        await self._redis.aclose()
        self._sync.close()
