"""The Celery executor: each permit goes to a worker as a tagged wire permit.

The runner has already logged the intent and taken the budget; this executor sends the wire form
to the probe queue and waits (``BLPOP``, no polling) for the worker's answer. Cancelling the wait
(the kill switch or the permit's deadline) broadcasts a kill for that permit to every worker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

import redis
import redis.asyncio as aioredis

from orchestrator.run.executors._broker import PROBE_TASK, answer_list, celery_app, publish_kill
from orchestrator.run.executors._results import result_from_json
from orchestrator.run.executors._wire import idempotency_key, wire_permit
from orchestrator.settings import Settings
from probes.base import Permit, ProbeContext, ProbeResult

__all__ = ["CeleryExecutor"]


class CeleryExecutor:
    """Sends permits to ``rio worker`` processes over the broker."""

    def __init__(self, settings: Settings) -> None:
        self._app = celery_app(settings)
        self._key = settings.require_permit_key()
        self._ns = settings.celery_queue
        self._queue = settings.celery_queue
        self._redis = aioredis.Redis.from_url(settings.state_url)
        self._sync = redis.Redis.from_url(settings.state_url)

    async def execute(
        self, permit: Permit, ctx: ProbeContext, *, granted_at: datetime
    ) -> ProbeResult:
        doc = wire_permit(permit, granted_at=granted_at, ctx=ctx, key=self._key)
        task_id = str(uuid.uuid4())
        # kombu's publish is synchronous; a thread keeps the run's event loop free meanwhile.
        await asyncio.to_thread(
            self._app.send_task, PROBE_TASK, args=[doc], queue=self._queue, task_id=task_id
        )
        name = answer_list(self._ns, task_id)
        try:
            while True:
                got = await self._redis.blpop([name], timeout=1)
                if got is not None:
                    await self._redis.delete(name)
                    return result_from_json(json.loads(got[1]))
        except asyncio.CancelledError:
            # Every worker hears this; the one holding the permit cancels it, a queued one never
            # sends it. Synchronous, so it is published even while this task is being torn down.
            publish_kill(
                self._sync, self._ns, run=permit.run_id,
                key=idempotency_key(permit.run_id, permit.decision),
            )  # fmt: skip
            raise

    async def kill(self, run_id: str) -> int:
        """Broadcast a kill of ``run_id`` to every worker; returns how many listeners heard it."""
        return await asyncio.to_thread(publish_kill, self._sync, self._ns, run=run_id)

    async def aclose(self) -> None:
        await self._redis.aclose()
        self._sync.close()
