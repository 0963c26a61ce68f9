"""The run lifecycle: the transition table holds, and a move is its row and its leaf at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from orchestrator.errors import StateError, StoreError, TransitionError
from orchestrator.ledger.log import ProbeLog, read_checkpoints
from orchestrator.record.rectify import ORDER_TRANSITIONS, OrderState, _move_order
from orchestrator.run.lifecycle import RunLifecycle, abort_idle, move
from orchestrator.run.runs import get_run, request_kill
from orchestrator.run.state import ALLOWED, FINAL, PauseReason, RunState, describe_state
from orchestrator.store.models import LeafRow, RectificationRow, RunRow

from .conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _row(state: RunState) -> RunRow:
    return RunRow(id="R-test", notice_id="N", technician_id=1, state=state.value)


@given(st.lists(st.sampled_from(list(RunState)), max_size=12))
def test_a_run_moves_only_along_the_transition_table(targets: list[RunState]) -> None:
    row = _row(RunState.SCHEDULED)
    for target in targets:
        current = RunState(row.state)
        before = (row.state, row.pause_reason, row.started_at, row.ended_at)
        if target in ALLOWED[current]:
            move(row, target, reason=PauseReason.WINDOW, now=T0)
            assert row.state == target.value
            assert (row.ended_at is not None) == (target in FINAL)
        else:
            with pytest.raises(TransitionError, match=f"is {current.value}: cannot become"):
                move(row, target, reason=PauseReason.WINDOW, now=T0)
            assert (row.state, row.pause_reason, row.started_at, row.ended_at) == before


@given(st.sampled_from(list(RunState)))
def test_no_state_moves_to_itself_and_final_states_only_seal(state: RunState) -> None:
    assert state not in ALLOWED[state]
    if state in FINAL:
        assert ALLOWED[state] <= {RunState.SEALED}
    assert issubclass(TransitionError, StateError)


def test_every_state_is_reachable_from_scheduled_and_every_run_can_be_sealed() -> None:
    reach = {RunState.SCHEDULED}
    frontier = [RunState.SCHEDULED]
    while frontier:
        for nxt in ALLOWED[frontier.pop()] - reach:
            reach.add(nxt)
            frontier.append(nxt)
    assert reach == set(RunState)
    for state in RunState:
        seen, todo = {state}, [state]
        while todo:
            for nxt in ALLOWED[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert RunState.SEALED in seen


def test_pause_reason_is_kept_only_while_paused_or_waiting() -> None:
    row = _row(RunState.SCHEDULED)
    move(row, RunState.RUNNING, now=T0)
    move(row, RunState.PAUSED, reason=PauseReason.CRASH, now=T0 + timedelta(seconds=1))
    assert (row.pause_reason, row.started_at) == ("crash", T0)
    assert describe_state(row.state, row.pause_reason) == "paused (crash)"
    move(row, RunState.RUNNING, reason=PauseReason.CRASH, now=T0 + timedelta(seconds=2))
    assert row.pause_reason is None and row.started_at == T0
    assert describe_state(row.state, row.pause_reason) == "running"


def _run(home: Home) -> str:
    now = now_utc()
    notice = announce_notice(
        home,
        scope_bytes(unique_network(), [around(now)]),
        policy_bytes(None, http_port=9),
        at=now - timedelta(minutes=1),
    )
    return new_run(home, notice)


def _leaf_count(home: Home, run_id: str) -> int:
    with home.rio.db.session() as s:
        return int(s.scalar(select(func.count()).where(LeafRow.run_id == run_id)) or 0)


async def test_each_move_commits_its_state_leaf_and_row_together(home: Home) -> None:
    run_id = _run(home)
    log = ProbeLog(home.rio.db, run_id, home.rio.signing_key, clock=home.rio.clock)
    life = RunLifecycle(home.rio.db, log)
    at = now_utc()
    await life.start(reason="started", at=at)
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == "running"
    assert _leaf_count(home, run_id) == 1  # durable when start() returns, with the row
    await life.pause(PauseReason.OPERATOR, why="operator", at=at)
    await life.start(reason="resumed", at=at)
    await life.complete(at=at)
    await log.close()
    with home.rio.db.session() as s:
        row = get_run(s, run_id)
        assert (row.state, row.ended_at is not None) == ("sealed", True)
    states = [leaf.data for leaf in leaves_of(home.rio, run_id) if leaf.kind == "state"]
    assert states == [
        {"state": "running", "reason": "started"},
        {"state": "paused", "reason": "operator"},
        {"state": "running", "reason": "resumed"},
        {"state": "completed", "reason": None},
        {"state": "sealed", "reason": None},
    ]
    # The seal carries its final checkpoint, over every leaf.
    assert read_checkpoints(home.rio.db, run_id)[-1].size == len(states)


async def test_an_illegal_move_raises_and_logs_nothing(home: Home) -> None:
    run_id = _run(home)
    log = ProbeLog(home.rio.db, run_id, home.rio.signing_key, clock=home.rio.clock)
    life = RunLifecycle(home.rio.db, log)
    with pytest.raises(TransitionError, match="is scheduled: cannot become completed"):
        await life.complete(at=now_utc())
    with pytest.raises(TransitionError, match="cannot become paused"):
        await life.pause(PauseReason.HEALTH, why="health", at=now_utc())
    await log.close()
    assert _leaf_count(home, run_id) == 0
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == "scheduled"


async def test_a_failed_row_change_takes_its_leaves_with_it(home: Home) -> None:
    run_id = _run(home)
    log = ProbeLog(home.rio.db, run_id, home.rio.signing_key, clock=home.rio.clock)

    def broken(row: RunRow) -> None:
        raise StoreError("the row could not be written")

    with pytest.raises(StoreError):
        await RunLifecycle(home.rio.db, log).start(reason="started", at=now_utc(), also=broken)
    with pytest.raises(StoreError):
        await log.close()
    assert _leaf_count(home, run_id) == 0
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == "scheduled"


async def test_an_idle_kill_logs_who_and_seals_in_one_go(home: Home) -> None:
    run_id = _run(home)
    with home.rio.db.session() as s:
        request_kill(s, run_id, "officer-1", "wrong target", now=home.rio.clock.now())
    await abort_idle(home.rio, run_id, now_utc())
    leaves = leaves_of(home.rio, run_id)
    assert [(leaf.kind, leaf.data) for leaf in leaves] == [
        ("kill", {"by": "officer-1", "reason": "wrong target"}),
        ("state", {"state": "aborted", "reason": "killed"}),
        ("state", {"state": "sealed", "reason": None}),
    ]
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == "sealed"
    assert read_checkpoints(home.rio.db, run_id)[-1].size == 3


@given(st.lists(st.sampled_from(list(OrderState)), max_size=6))
def test_an_order_moves_only_along_its_table(targets: list[OrderState]) -> None:
    row = RectificationRow(id=1, state=OrderState.ORDERED.value)
    for target in targets:
        current = OrderState(row.state)
        if target in ORDER_TRANSITIONS[current]:
            _move_order(row, target)
            assert row.state == target.value
        else:
            with pytest.raises(TransitionError, match=f"order 1 is {current.value}"):
                _move_order(row, target)
            assert row.state == current.value
    assert (
        not ORDER_TRANSITIONS[OrderState.RESOLVED] and not ORDER_TRANSITIONS[OrderState.UNRESOLVED]
    )
