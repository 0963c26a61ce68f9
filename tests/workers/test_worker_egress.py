"""A probe leaves only from a source address its notice announced (issue #18, egress pinning).

A worker pinned to an egress (``rio worker --egress``) sends only permits routed to that egress,
only when the permit's notice announced it, and only probes that bind to it; an unpinned worker
sends no permit that names a source. Every refusal is answered (into the run's ledger) and noted
in the refusals stream. Real Redis; the final send is a fake executor.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.run._egress import Egress
from orchestrator.run.executors import FakeExecutor, wire_permit
from orchestrator.workers import ClaimStore, KillListener, WorkerDeps, check_egress, handle_permit

from .conftest import CTX, PERMIT_KEY, WORKER_REDIS_URL, a_permit

ANNOUNCED = ("127.0.0.2", "127.0.0.3")


def _deps(namespace: str, fake: FakeExecutor, egress: str | None) -> WorkerDeps:
    client = redis.Redis.from_url(WORKER_REDIS_URL)
    return WorkerDeps(
        permit_key=PERMIT_KEY,
        claims=ClaimStore(client, namespace=namespace),
        kills=KillListener(client=redis.Redis.from_url(WORKER_REDIS_URL), namespace=namespace),
        name="w-egress",
        executor=fake,
        egress=egress,
    )


def _doc(source: str | None, probe: str = "http") -> dict[str, object]:
    ctx = dataclasses.replace(CTX, source_address=source, sources=ANNOUNCED)
    return wire_permit(a_permit(probe=probe), granted_at=datetime.now(UTC), ctx=ctx, key=PERMIT_KEY)


def _refusals(namespace: str) -> list[str]:
    client = redis.Redis.from_url(WORKER_REDIS_URL)
    return [str(json.loads(f[b"entry"])["why"]) for _, f in client.xrange(f"{namespace}:refusals")]


async def test_a_pinned_worker_sends_a_permit_for_its_announced_egress_from_it(
    namespace: str,
) -> None:
    fake = FakeExecutor()
    answer = await handle_permit(_doc("127.0.0.2"), "t-1", _deps(namespace, fake, "127.0.0.2"))
    assert answer["outcome"] == "ok"
    (sent,) = fake.sent
    assert sent.ctx.source_address == "127.0.0.2"
    assert _refusals(namespace) == []


@pytest.mark.parametrize(
    ("source", "egress", "probe", "why"),
    [
        ("127.0.0.9", "127.0.0.9", "http", "not announced"),
        ("127.0.0.3", "127.0.0.2", "http", "pinned to 127.0.0.2"),
        (None, "127.0.0.2", "http", "pinned to 127.0.0.2"),
        ("127.0.0.2", None, "http", "not pinned"),
        ("127.0.0.2", "127.0.0.2", "tls", "cannot bind"),
    ],
)
async def test_a_probe_is_refused_and_noted_unless_it_leaves_from_an_announced_egress(
    namespace: str, source: str | None, egress: str | None, probe: str, why: str
) -> None:
    fake = FakeExecutor()
    answer = await handle_permit(_doc(source, probe), "t-1", _deps(namespace, fake, egress))
    assert answer["outcome"] == "error"
    assert why in str(answer["error"])
    assert fake.sent == []
    (noted,) = _refusals(namespace)
    assert why in noted


def test_the_runner_sends_in_turn_from_the_announced_egresses_only() -> None:
    egress = Egress(("127.0.0.9", "127.0.0.3", "127.0.0.2"), ANNOUNCED)
    picks = [egress.pick("http", in_runner=False) for _ in range(4)]
    assert picks == [("127.0.0.3", None), ("127.0.0.2", None)] * 2
    source, why = egress.pick("port", in_runner=True)
    assert source is None and why is not None and "not pinned" in why


def test_the_runner_sends_nothing_when_no_egress_is_announced() -> None:
    egress = Egress(("127.0.0.9",), ANNOUNCED)
    source, why = egress.pick("http", in_runner=False)
    assert source is None and why is not None
    assert "127.0.0.9" in why and "127.0.0.2, 127.0.0.3" in why


def test_unpinned_runs_pick_no_source() -> None:
    assert Egress((), ANNOUNCED).pick("port", in_runner=True) == (None, None)


def test_a_worker_cannot_be_pinned_to_an_address_that_is_not_this_hosts() -> None:
    assert check_egress("127.0.0.2") == "127.0.0.2"
    with pytest.raises(InputError, match="not an IP address"):
        check_egress("egress.example")
    with pytest.raises(InputError, match="cannot send from 192.0.2.1"):
        check_egress("192.0.2.1")  # TEST-NET-1: only a bind is tried, nothing is sent
