"""One permit, one send, across every worker: replays refused, redeliveries not sent again,
kills broadcast to the probe in flight. Real Redis; the final send is a fake executor."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import cast

import redis

from orchestrator.run.executors import FakeExecutor, wire_permit
from orchestrator.run.executors._broker import publish_kill
from orchestrator.workers import ClaimStore, KillListener, WorkerDeps, handle_permit

from .conftest import CTX, PERMIT_KEY, WORKER_REDIS_URL, a_permit


def _deps(namespace: str, fake: FakeExecutor, name: str = "w1") -> WorkerDeps:
    client = redis.Redis.from_url(WORKER_REDIS_URL)
    return WorkerDeps(
        permit_key=PERMIT_KEY,
        claims=ClaimStore(client, namespace=namespace),
        kills=KillListener(client=redis.Redis.from_url(WORKER_REDIS_URL), namespace=namespace),
        name=name,
        executor=fake,
    )


def _doc() -> dict[str, object]:
    return wire_permit(a_permit(), granted_at=datetime.now(UTC), ctx=CTX, key=PERMIT_KEY)


def _refusals(namespace: str) -> list[dict[str, object]]:
    client = redis.Redis.from_url(WORKER_REDIS_URL)
    # A sync client: redis-py types xrange for the async client as well.
    stream = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(f"{namespace}:refusals"))
    return [json.loads(fields[b"entry"]) for _, fields in stream]


async def test_a_replayed_permit_is_refused_by_another_worker_and_noted(namespace: str) -> None:
    fake1, fake2 = FakeExecutor(), FakeExecutor()
    doc = _doc()

    first = await handle_permit(doc, "task-1", _deps(namespace, fake1, "w1"))
    replay = await handle_permit(doc, "task-2", _deps(namespace, fake2, "w2"))

    assert first["outcome"] == "ok"
    assert replay["outcome"] == "error"
    assert "replayed" in str(replay["error"])
    assert len(fake1.sent) == 1 and fake2.sent == []
    (noted,) = _refusals(namespace)
    assert noted["task"] == "task-2" and noted["worker"] == "w2" and noted["intent"] == 7


async def test_a_redelivered_task_is_answered_from_its_stored_outcome_not_sent_again(
    namespace: str,
) -> None:
    fake1, fake2 = FakeExecutor(), FakeExecutor()
    doc = _doc()

    first = await handle_permit(doc, "task-1", _deps(namespace, fake1))
    again = await handle_permit(doc, "task-1", _deps(namespace, fake2, "w2"))

    assert again == first
    assert len(fake1.sent) == 1 and fake2.sent == []


async def test_a_task_redelivered_after_its_worker_began_sending_is_not_sent_twice(
    namespace: str,
) -> None:
    doc = _doc()
    deps = _deps(namespace, FakeExecutor())
    # The first worker claimed the permit and marked it leaving, then died (kill -9).
    deps.claims.claim("R-20261204-abcdef:7", "task-1")
    deps.claims.sending("R-20261204-abcdef:7")
    fake = FakeExecutor()

    again = await handle_permit(doc, "task-1", _deps(namespace, fake, "w2"))

    assert again["outcome"] == "unknown"
    assert fake.sent == []


async def test_an_altered_permit_is_refused_and_noted(namespace: str) -> None:
    doc = _doc()
    doc["body"]["permit"]["ip"] = "127.0.0.10"  # type: ignore[index]
    fake = FakeExecutor()

    answer = await handle_permit(doc, "task-1", _deps(namespace, fake))

    assert answer["outcome"] == "error" and "tag does not verify" in str(answer["error"])
    assert fake.sent == []
    why = _refusals(namespace)[0]["why"]
    assert isinstance(why, str) and why.startswith("permit refused")


async def test_the_kill_broadcast_cancels_the_probe_in_flight(namespace: str) -> None:
    hold = asyncio.Event()  # never set: the probe would wait until its deadline
    fake = FakeExecutor(hold=hold)
    deps = _deps(namespace, fake)
    deps.kills.start()
    try:
        task = asyncio.create_task(handle_permit(_doc(), "task-1", deps))
        for _ in range(200):
            if fake.sent:
                break
            await asyncio.sleep(0.01)
        publish_kill(redis.Redis.from_url(WORKER_REDIS_URL), namespace, run="R-20261204-abcdef")
        answer = await asyncio.wait_for(task, 5)
    finally:
        deps.kills.stop()

    assert answer["outcome"] == "killed"
    assert len(fake.cancelled) == 1
    # A permit of the killed run delivered afterwards is never sent.
    late = FakeExecutor()
    doc = wire_permit(a_permit(decision=8), granted_at=datetime.now(UTC), ctx=CTX, key=PERMIT_KEY)
    deps2 = WorkerDeps(
        permit_key=PERMIT_KEY, claims=deps.claims, kills=deps.kills, name="w1", executor=late
    )
    assert (await handle_permit(doc, "task-2", deps2))["outcome"] == "killed"
    assert late.sent == []
