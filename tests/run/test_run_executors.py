"""The executor seam: the runner sends every permitted probe through its executor, and only
after the probe's intent is in the log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from orchestrator.ledger.verify import verify_run
from orchestrator.run.executors import FakeExecutor, LocalExecutor
from orchestrator.run.state import RunState
from orchestrator.store.models import LeafRow
from probes.base import Permit, ProbeResult

from .conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)


def _notice_over_six_hosts(home: Home) -> str:
    network = unique_network().rsplit("/", 1)[0] + "/29"
    now = now_utc()
    notice = announce_notice(
        home,
        scope_bytes(network, [around(now)]),
        policy_bytes(None, http_port=9, rates=(4, 60, 60, 80)),
        at=now - timedelta(minutes=1),
    )
    return new_run(home, notice)


async def test_every_permit_is_sent_through_the_executor_after_its_intent_is_logged(
    home: Home,
) -> None:
    run_id = _notice_over_six_hosts(home)
    logged_first: list[bool] = []

    def answer(permit: Permit) -> ProbeResult:
        with home.rio.db.session() as s:
            kind = s.execute(
                select(LeafRow.kind).where(LeafRow.run_id == run_id, LeafRow.seq == permit.decision)
            ).scalar_one_or_none()
        logged_first.append(kind == "intent")
        return ProbeResult(probe=permit.probe, ip=permit.ip, outcome="ok", connections=1)

    fake = FakeExecutor(answer)
    state = await make_runner(home, run_id, executor=fake).execute()

    assert state is RunState.SEALED
    assert len(fake.sent) == 6  # a /29: six hosts
    assert logged_first == [True] * 6
    assert fake.closed
    assert all(s.granted_at is not None for s in fake.sent)
    outcomes = [leaf for leaf in leaves_of(home.rio, run_id) if leaf.kind == "outcome"]
    assert sorted(int(o.data["intent"]) for o in outcomes) == sorted(
        s.permit.decision for s in fake.sent
    )
    assert verify_run(home.rio, run_id)


async def test_an_executors_answer_is_what_the_outcome_leaf_records(home: Home) -> None:
    run_id = _notice_over_six_hosts(home)
    fake = FakeExecutor(
        lambda p: ProbeResult(probe=p.probe, ip=p.ip, outcome="error", error=f"said no to {p.ip}")
    )
    await make_runner(home, run_id, executor=fake).execute()

    outcomes = [leaf for leaf in leaves_of(home.rio, run_id) if leaf.kind == "outcome"]
    assert len(outcomes) == 6
    assert {o.data["outcome"] for o in outcomes} == {"error"}
    assert all(str(o.data["error"]).startswith("said no to 127.") for o in outcomes)


def test_the_local_executor_is_the_default() -> None:
    from orchestrator.run.executors import executor_for
    from orchestrator.settings import load_settings

    assert isinstance(executor_for(load_settings({})), LocalExecutor)
