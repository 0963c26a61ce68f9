"""The scheduler: runs are placed at openings, survive restarts, never start late outside a window.

Time is a fake clock (2030, Asia/Shanghai windows); the runs that do execute probe a loopback
farm on 127.0.22.0/28 through the real gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.clock import FakeClock
from orchestrator.context import Rio
from orchestrator.demo.farm import Farm, FarmSpec
from orchestrator.errors import StateError
from orchestrator.ledger.log import read_checkpoints, read_leaves
from orchestrator.run.runs import get_run, list_runs
from orchestrator.run.scheduler import RioScheduler, fire_run, scheduler_lock
from orchestrator.run.state import RunState
from orchestrator.settings import load_settings
from tests.scheduler import (
    NETWORK,
    SHANGHAI,
    TARGETS,
    TECH,
    Lab,
    TickingClock,
    build_lab,
    open_home,
    policy_doc,
    scope_doc,
    window,
)
from tests.support.postgres import loopback_pg_url

SH = ZoneInfo(SHANGHAI)
ANNOUNCED = datetime(2030, 11, 1, tzinfo=UTC)
BEFORE = datetime(2030, 12, 1, 12, 0, tzinfo=UTC)  # Sunday 20:00 in Shanghai
WEEKDAY_NIGHTS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "00:00", "end": "06:00"}]


def sh(d: int, h: int, mi: int = 0) -> datetime:
    """December 2030, Beijing time, as UTC."""
    return datetime(2030, 12, d, h, mi, tzinfo=SH).astimezone(UTC)


def night(d: int, start: str = "01:00:00", end: str = "05:00:00") -> dict[str, str]:
    return window(f"2030-12-{d:02d}T{start}", f"2030-12-{d:02d}T{end}")


@pytest.fixture
def farm() -> Iterator[Farm]:
    spec = FarmSpec(
        network=NETWORK,
        count=6,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=120.0,
    )
    with Farm(spec) as f:
        yield f


def lab_with(
    home: Path, announced: list[dict[str, str]], *, targets: str = TARGETS, **policy: object
) -> Lab:
    return build_lab(
        home,
        scope_doc(announced, targets=targets),
        policy_doc(**policy),  # type: ignore[arg-type]
        announced_at=ANNOUNCED,
    )


def _state(lab: Lab, run_id: str) -> tuple[RunState, datetime | None, str | None]:
    with lab.rio.db.session() as s:
        row = get_run(s, run_id)
        return RunState(row.state), row.scheduled_for, row.pause_reason


def test_schedule_places_the_run_at_the_first_opening_in_shanghai(tmp_path: Path) -> None:
    lab = lab_with(tmp_path / "home", [night(2)], windows=WEEKDAY_NIGHTS)
    with RioScheduler(lab.rio, clock=FakeClock(BEFORE)) as scheduler:
        planned = scheduler.schedule_run(lab.notice.id, TECH)
        jobs = scheduler.jobs()
    assert planned.start == sh(2, 1) == datetime(2030, 12, 1, 17, 0, tzinfo=UTC)
    assert _state(lab, planned.run_id) == (RunState.SCHEDULED, sh(2, 1), None)
    assert [(j.kind, j.subject, j.next_run) for j in jobs] == [("run", planned.run_id, sh(2, 1))]


def test_schedule_refused_when_no_opening_is_left(tmp_path: Path) -> None:
    lab = lab_with(tmp_path / "home", [night(2)])
    with (
        RioScheduler(lab.rio, clock=FakeClock(sh(2, 5))) as scheduler,
        pytest.raises(StateError, match="no opening left"),
    ):
        scheduler.schedule_run(lab.notice.id, TECH)
    with lab.rio.db.session() as s:
        assert list_runs(s) == []


def test_job_survives_a_scheduler_restart_and_fires_from_the_new_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lab = lab_with(home, [night(2)])
    with RioScheduler(lab.rio, clock=FakeClock(BEFORE)) as first:
        run_id = first.schedule_run(lab.notice.id, TECH).run_id
        before = first.jobs()
    lab.rio.close()

    rio = open_home(home)  # a new process: new engine, new scheduler object
    try:
        clock = FakeClock(sh(2, 6))  # it comes back after the only window
        with RioScheduler(rio, clock=clock) as second:
            assert second.jobs() == before
            fired = asyncio.run(second.fire_due())
            assert fired == [before[0].id]
            assert second.jobs() == []
        with rio.db.session() as s:
            assert RunState(get_run(s, run_id).state) is RunState.MISSED
    finally:
        rio.close()


async def test_jobs_fire_on_the_callers_event_loop_by_the_scheduler_that_takes_them(
    tmp_path: Path,
) -> None:
    # Firing is async: awaited here, inside this test's running loop (an asyncio.run inside
    # the scheduler would refuse to start). Each scheduler does the jobs it takes; there is no
    # process-wide "current" scheduler for a job to look up.
    lab = lab_with(tmp_path / "home", [night(2)])
    clock = FakeClock(BEFORE)
    said: list[str] = []
    with RioScheduler(lab.rio, clock=clock, on_event=said.append) as scheduler:
        run_id = scheduler.schedule_run(lab.notice.id, TECH).run_id
        clock.set(sh(2, 6))
        other = RioScheduler(lab.rio, clock=clock)  # made, never fired: it must not matter
        fired = await scheduler.fire_due()
        other.close()
    assert len(fired) == 1 and fired[0].startswith(f"run:{run_id}:")
    assert _state(lab, run_id)[0] is RunState.MISSED
    assert any(run_id in line and "missed" in line for line in said)


def test_a_stored_job_reference_called_directly_refuses() -> None:
    with pytest.raises(StateError, match="done by the rio scheduler"):
        fire_run("R-20301201-aaaaaa")


def test_run_whose_window_passed_while_down_waits_for_the_next_then_is_missed(
    tmp_path: Path,
) -> None:
    lab = lab_with(tmp_path / "home", [night(2), night(3)])
    clock = FakeClock(BEFORE)
    with RioScheduler(lab.rio, clock=clock) as scheduler:
        run_id = scheduler.schedule_run(lab.notice.id, TECH).run_id

        clock.set(sh(2, 6))  # rio was down during the whole first window
        asyncio.run(scheduler.fire_due())
        assert _state(lab, run_id) == (RunState.WAITING, sh(3, 1), "window")
        assert [(j.subject, j.next_run) for j in scheduler.jobs()] == [(run_id, sh(3, 1))]

        clock.set(sh(3, 7))  # ... and the second one
        asyncio.run(scheduler.fire_due())
        assert _state(lab, run_id)[0] is RunState.MISSED
        assert scheduler.jobs() == []
    leaves = list(read_leaves(lab.rio.db, run_id))
    assert [leaf.kind for leaf in leaves] == ["state", "state"]  # no probe was ever permitted
    assert [leaf.data["state"] for leaf in leaves] == ["waiting", "missed"]
    assert read_checkpoints(lab.rio.db, run_id)[-1].size == 2


def test_job_firing_before_the_lead_time_is_met_waits(tmp_path: Path) -> None:
    lab = build_lab(
        tmp_path / "home",
        scope_doc([night(2), night(3)]),
        policy_doc(lead="24h"),
        announced_at=sh(1, 12),
    )
    with RioScheduler(lab.rio, clock=FakeClock(sh(1, 13))) as scheduler:
        planned = scheduler.schedule_run(lab.notice.id, TECH)
    # Announced at noon on the 1st with a 24 h lead: the 2nd's window is closed to it.
    assert planned.start == sh(3, 1)


def test_recurring_check_creates_one_run_per_period_inside_announced_windows(
    tmp_path: Path, farm: Farm
) -> None:
    windows = [night(2), night(3), night(11), night(16)]
    lab = lab_with(tmp_path / "home", windows, http_port=farm.http_port)
    clock = FakeClock(BEFORE)
    with RioScheduler(lab.rio, clock=clock) as scheduler:
        planned = scheduler.schedule_run(lab.notice.id, TECH, every=timedelta(days=7))
        assert planned.next_period == sh(11, 1)  # Dec 9 has no window: the next opening
        for _ in range(20):
            jobs = scheduler.jobs()
            if not jobs:
                break
            assert jobs[0].next_run is not None
            clock.set(jobs[0].next_run)
            asyncio.run(scheduler.fire_due())
        assert scheduler.jobs() == []
    with lab.rio.db.session() as s:
        runs = [(r.scheduled_for, RunState(r.state)) for r in list_runs(s, lab.notice.id)]
    # Weekly from Dec 2: Dec 9 -> Dec 11 (next window), Dec 16; Dec 23 has none. Dec 3 is
    # never used: one run per period.
    assert runs == [
        (sh(2, 1), RunState.SEALED),
        (sh(11, 1), RunState.SEALED),
        (sh(16, 1), RunState.SEALED),
    ]
    for when, _ in runs:
        assert when is not None and lab.notice.scope.window_at(when) is not None


def test_paused_run_gets_a_resume_job_at_the_next_opening(tmp_path: Path, farm: Farm) -> None:
    windows = [night(2, "01:00:00", "01:30:00"), night(3)]
    # Six targets (127.0.22.1-6), one HTTP probe each, one at a time.
    lab = lab_with(
        tmp_path / "home",
        windows,
        targets="127.0.22.0/29",
        http_port=farm.http_port,
        concurrency=1,
    )
    # Every reading of the clock takes 4 minutes: the 30-minute window closes mid-run.
    clock = TickingClock(BEFORE, timedelta(0))
    with RioScheduler(lab.rio, clock=clock) as scheduler:
        run_id = scheduler.schedule_run(lab.notice.id, TECH).run_id
        clock.set(sh(2, 1))
        clock.step = timedelta(minutes=4)
        asyncio.run(scheduler.fire_due())
        state, when, reason = _state(lab, run_id)
        assert (state, when, reason) == (RunState.PAUSED, sh(3, 1), "window")
        assert [(j.subject, j.next_run) for j in scheduler.jobs()] == [(run_id, sh(3, 1))]
        with lab.rio.db.session() as s:
            row = get_run(s, run_id)
            assert 0 < row.done < row.planned == 6

        clock.set(sh(3, 1))
        clock.step = timedelta(seconds=1)
        asyncio.run(scheduler.fire_due())
        assert scheduler.jobs() == []
    with lab.rio.db.session() as s:
        row = get_run(s, run_id)
        assert RunState(row.state) is RunState.SEALED
        assert row.done == row.planned == 6
    leaves = list(read_leaves(lab.rio.db, run_id))
    intents = [leaf for leaf in leaves if leaf.kind == "intent"]
    # How many probes the window's close catches between permit and send depends on how many
    # clock readings (4 minutes each) happen first; those end 'unsent' and are permitted again.
    outcomes = [leaf.data["outcome"] for leaf in leaves if leaf.kind == "outcome"]
    assert [o for o in outcomes if o != "unsent"] == ["ok"] * 6
    assert len(intents) == len(outcomes) == 6 + outcomes.count("unsent")
    assert all(lab.notice.scope.window_at(datetime.fromisoformat(i.at)) for i in intents)


def test_nothing_fires_while_another_scheduler_holds_the_lock(tmp_path: Path) -> None:
    lab = lab_with(tmp_path / "home", [night(2)])
    other = scheduler_lock(lab.rio)
    assert other.acquire()
    try:
        with RioScheduler(lab.rio, clock=FakeClock(BEFORE)) as scheduler:
            run_id = scheduler.schedule_run(lab.notice.id, TECH).run_id
            scheduler.clock = FakeClock(sh(2, 6))
            with pytest.raises(StateError, match="holds the scheduler lock"):
                asyncio.run(scheduler.fire_due())
            assert len(scheduler.jobs()) == 1
            assert _state(lab, run_id)[0] is RunState.SCHEDULED
            other.release()
            assert len(asyncio.run(scheduler.fire_due())) == 1
            assert _state(lab, run_id)[0] is RunState.MISSED
    finally:
        other.release()


def test_lock_file_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    lab = lab_with(tmp_path / "home", [night(2)])
    first, second = scheduler_lock(lab.rio), scheduler_lock(lab.rio)
    assert first.acquire() and first.held
    assert not second.acquire() and not second.held
    first.release()
    assert second.acquire()
    second.release()


def test_postgres_advisory_lock_admits_one_scheduler(tmp_path: Path) -> None:
    url = loopback_pg_url()
    settings = load_settings({"RIO_HOME": str(tmp_path / "home"), "RIO_DATABASE_URL": url})
    first_rio, second_rio = Rio(settings), Rio(settings)
    try:
        first, second = scheduler_lock(first_rio), scheduler_lock(second_rio)
        assert first.acquire()
        assert not second.acquire()
        first.release()
        assert second.acquire()
        second.release()
    finally:
        first_rio.close()
        second_rio.close()
