"""A permit altered between the orchestrator and the worker is refused by the worker, and the
refusal is the probe's outcome leaf: in the run's Merkle log, where an auditor sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis

from orchestrator.ledger.verify import verify_run
from orchestrator.run.executors import FakeExecutor, wire_permit
from orchestrator.run.executors._results import result_from_json
from orchestrator.run.state import RunState
from orchestrator.workers import ClaimStore, KillListener, WorkerDeps, handle_permit
from probes.base import Permit, ProbeContext, ProbeResult
from tests.workers.conftest import PERMIT_KEY, WORKER_REDIS_URL
from tests.workers.conftest import namespace as namespace  # the fixture: a fresh Redis namespace

from .conftest import Home, leaves_of, make_runner
from .test_run_executors import _notice_over_six_hosts


class _TamperingWire:
    """The wire between runner and worker, with an attacker who swaps the pinned address."""

    def __init__(self, deps: WorkerDeps) -> None:
        self.deps = deps
        self.n = 0

    async def execute(
        self, permit: Permit, ctx: ProbeContext, *, granted_at: datetime
    ) -> ProbeResult:
        doc: dict[str, Any] = wire_permit(permit, granted_at=granted_at, ctx=ctx, key=PERMIT_KEY)
        self.n += 1
        if self.n % 2 == 0:
            doc["body"]["permit"]["ip"] = "127.0.0.1"
        answer = await handle_permit(doc, f"task-{self.n}", self.deps)
        return result_from_json(answer)

    async def aclose(self) -> None:
        return None


async def test_an_altered_permit_is_refused_and_its_refusal_is_in_the_ledger(
    home: Home, namespace: str
) -> None:
    run_id = _notice_over_six_hosts(home)
    sent = FakeExecutor()
    deps = WorkerDeps(
        permit_key=PERMIT_KEY,
        claims=ClaimStore(redis.Redis.from_url(WORKER_REDIS_URL), namespace=namespace),
        kills=KillListener(client=redis.Redis.from_url(WORKER_REDIS_URL), namespace=namespace),
        name="w1",
        executor=sent,
    )

    state = await make_runner(home, run_id, executor=_TamperingWire(deps)).execute()

    assert state is RunState.SEALED
    outcomes = [leaf for leaf in leaves_of(home.rio, run_id) if leaf.kind == "outcome"]
    refused = [o for o in outcomes if "permit refused" in str(o.data["error"])]
    assert len(refused) == 3 and len(sent.sent) == 3
    assert "127.0.0.1" not in {s.permit.ip for s in sent.sent}
    assert all("tag does not verify" in str(o.data["error"]) for o in refused)
    assert verify_run(home.rio, run_id)
