"""Budget waits as ``/metrics`` shows them: a real run whose per-IP budget admits one probe a
second sends two HTTP probes to one address, so the second waits for budget; the process's
figures (:mod:`orchestrator.telemetry`) count both acquisitions and the wait, and no probe is
left waiting. The budget itself is measured around, not changed (:mod:`orchestrator.gate.metered`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta

from orchestrator.app import budget_for
from orchestrator.gate.metered import MeteredBudget
from orchestrator.run.state import RunState
from orchestrator.services.metrics import prometheus_text
from orchestrator.telemetry import BudgetWaits
from tests.run.conftest import (
    Home,
    announce_notice,
    around,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)
from tests.support.servers import WELL_CONFIGURED, LoopbackHttpServer


def _metric(text: str, name: str) -> float:
    (value,) = [line.split()[1] for line in text.splitlines() if line.split()[0] == name]
    return float(value)


async def test_a_probe_waiting_for_budget_is_counted_while_it_waits_and_after(home: Home) -> None:
    from orchestrator.gate.budget import BudgetLimits

    waits = BudgetWaits()
    budget = MeteredBudget(
        BudgetLimits(per_ip=1, per_network=10, per_notice=10, global_=10), waits=waits
    )
    loop = asyncio.get_running_loop()
    try:
        first = await budget.acquire("127.0.0.1", "N-1", wait_until=loop.time() + 5)
        assert first and waits.read().waiting == 0
        second = asyncio.create_task(budget.acquire("127.0.0.1", "N-1", wait_until=loop.time() + 5))
        for _ in range(100):  # bounded: until the second acquisition is inside the budget
            await asyncio.sleep(0.01)
            if waits.read().waiting == 1:
                break
        assert waits.read().waiting == 1  # the per-IP window holds the first unit
        granted = await second
    finally:
        await budget.close()
    assert granted
    figures = waits.read()
    assert (figures.waiting, figures.acquisitions) == (0, 2)
    assert figures.waited >= 1  # the second; the first too only if this machine is slow
    assert figures.seconds == first.waited + granted.waited
    assert granted.waited > 0.5  # the one-second window had to move past the first unit


async def test_a_runs_budget_waits_show_in_metrics(home: Home) -> None:
    network = unique_network()
    host = str(next(ipaddress.IPv4Network(network).hosts()))
    with (
        LoopbackHttpServer(WELL_CONFIGURED, host=host) as one,
        LoopbackHttpServer(WELL_CONFIGURED, host=host) as two,
    ):
        now = now_utc()
        policy = policy_bytes(None, rates=(1, 50, 50, 50), http_port=one.port)
        policy = policy.replace(
            f"- {one.port}\n".encode(), f"- {one.port}\n    - {two.port}\n".encode()
        )
        notice = announce_notice(
            home, scope_bytes(f"{host}/32", [around(now)]), policy, at=now - timedelta(minutes=1)
        )
        assert notice.policy.probes.http is not None
        assert sorted(notice.policy.probes.http.ports) == sorted([one.port, two.port])
        assert isinstance(budget_for(home.rio, notice), MeteredBudget)
        run_id = new_run(home, notice)
        assert await make_runner(home, run_id).execute() is RunState.SEALED
        assert one.requests and two.requests
    text = prometheus_text(home.rio)
    assert _metric(text, "rio_budget_waiting") == 0
    assert _metric(text, "rio_budget_wait_seconds_count") == 2
    assert _metric(text, "rio_budget_waits_total") >= 1
    assert _metric(text, "rio_budget_wait_seconds_sum") > 0.5
