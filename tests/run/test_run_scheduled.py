"""A *scheduled* run (rio run schedule + rio serve --once) against >= 20 loopback targets."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from orchestrator.demo.farm import Farm
from orchestrator.gate.resolve import Resolver
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runs import get_run
from orchestrator.run.scheduler import RioScheduler
from orchestrator.run.state import RunState

from .conftest import (
    TECHNICIAN,
    Home,
    announce_notice,
    around,
    leaves_of,
    now_utc,
    policy_bytes,
    scope_bytes,
)
from .test_run_complete import _rate_excesses


def test_scheduled_run_against_thirty_loopback_targets_seals_inside_windows_and_rates(
    home: Home, farm: Farm
) -> None:
    now = now_utc()
    window = around(now)
    policy = policy_bytes(farm, rates=(4, 60, 60, 80), port_probe=True, https=True)
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [window]), policy, at=now - timedelta(minutes=1)
    )
    options = {"resolver": Resolver(["127.0.0.1"], port=9, timeout=0.5), "dns_port": 9}
    with RioScheduler(home.rio, runner_options=options) as scheduler:
        planned = scheduler.schedule_run(notice.id, TECHNICIAN)
        fired = asyncio.run(scheduler.fire_due())
    assert fired, "the run was due now and should have fired"
    with home.rio.db.session() as s:
        run = get_run(s, planned.run_id)
        assert RunState(run.state) is RunState.SEALED
    verdict = verify_run(home.rio, planned.run_id)
    assert verdict, verdict.problems
    intents = [leaf for leaf in leaves_of(home.rio, planned.run_id) if leaf.kind == "intent"]
    targets = {leaf.data["ip"] for leaf in intents}
    assert len(targets) >= 20
    start, end = window
    for leaf in intents:
        assert start <= leaf.instant < end
    assert _rate_excesses(intents, notice) == []
