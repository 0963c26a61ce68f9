"""``/metrics`` reads each ledger leaf once: the counts kept between scrapes equal a full
recount after every change, and a scrape reads only the leaves appended since the last one."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from orchestrator.ledger.log import ProbeLog, read_leaves
from orchestrator.ledger.tally import RefusalTally
from orchestrator.services.metrics import LedgerCounts
from orchestrator.store.models import LeafRow, RunRow
from tests.record.conftest import Lab, add_sealed_run


def _recount(lab: Lab) -> tuple[dict[str, int], dict[str, int], int]:
    """Leaves by kind, refusals by reason, and how many leaves: read from scratch."""
    tally = RefusalTally()
    kinds: Counter[str] = Counter()
    with lab.rio.db.session() as s:
        runs = list(s.scalars(select(RunRow.id)))
        total = int(s.scalar(select(func.count()).select_from(LeafRow)) or 0)
    for run_id in runs:
        for leaf in read_leaves(lab.rio.db, run_id):
            kinds[leaf.kind] += 1
            tally.add(leaf)
    return dict(kinds), tally.counts(), total


def _update(lab: Lab, counts: LedgerCounts) -> int:
    """Bring the counts up to date; returns how many leaves that read."""
    before = counts.read
    with lab.rio.db.session() as s:
        counts.update(s)
    return counts.read - before


def _same(lab: Lab, counts: LedgerCounts) -> None:
    kinds, refusals, _ = _recount(lab)
    assert counts.kinds() == kinds
    assert counts.refusals() == refusals


async def _append_state(lab: Lab, run_id: str, n: int) -> None:
    log = ProbeLog(lab.rio.db, run_id, lab.rio.signing_key, clock=lab.rio.clock)
    for _ in range(n):
        await log.append("state", {"state": "running", "reason": None}, at=datetime.now(UTC))
    await log.close()


def test_each_leaf_is_read_once_and_the_counts_equal_a_recount(api_lab: Lab) -> None:
    counts = LedgerCounts()
    _, _, total = _recount(api_lab)
    assert total > 0
    assert _update(api_lab, counts) == total
    _same(api_lab, counts)
    assert _update(api_lab, counts) == 0  # nothing new: nothing read

    # A new run, not sealed yet: its leaves are read once, then only what it appends.
    add_sealed_run(api_lab, "R-20260903-m1", [("RIO-PORT-TELNET", 23)], state="running")
    _, _, grown = _recount(api_lab)
    assert _update(api_lab, counts) == grown - total
    _same(api_lab, counts)
    asyncio.run(_append_state(api_lab, "R-20260903-m1", 3))
    assert _update(api_lab, counts) == 3
    _same(api_lab, counts)
    assert _update(api_lab, counts) == 0


def test_a_fresh_count_and_a_kept_one_agree_on_the_metrics_text(api_lab: Lab) -> None:
    from orchestrator.services.metrics import prometheus_text

    kept = LedgerCounts()
    first = prometheus_text(api_lab.rio, ledger=kept)
    add_sealed_run(api_lab, "R-20260903-m2", [("RIO-PORT-FTP", 21)])
    assert prometheus_text(api_lab.rio, ledger=kept) == prometheus_text(api_lab.rio)
    assert prometheus_text(api_lab.rio, ledger=kept) != first


async def _append_health(lab: Lab, run_id: str, changes: list[tuple[str, str]]) -> None:
    from orchestrator.ledger.bodies import HealthBody

    log = ProbeLog(lab.rio.db, run_id, lab.rio.signing_key, clock=lab.rio.clock)
    for ip, state in changes:
        body = HealthBody(ip=ip, state=state, factor=0.5, until=None, reason="test")
        await log.append("health", body.to_json(), at=lab.rio.clock.now())
    await log.close()


def test_paused_targets_are_those_last_paused_in_runs_not_sealed(api_lab: Lab) -> None:
    from sqlalchemy import update

    counts = LedgerCounts()
    run = "R-20260903-m3"
    add_sealed_run(api_lab, run, [("RIO-PORT-TELNET", 23)], state="running")
    asyncio.run(
        _append_health(
            api_lab,
            run,
            [("127.0.10.5", "paused"), ("127.0.10.6", "throttled"), ("127.0.10.7", "paused")],
        )
    )
    _update(api_lab, counts)
    assert counts.paused_targets() == 2
    asyncio.run(_append_health(api_lab, run, [("127.0.10.7", "recovered")]))
    _update(api_lab, counts)
    assert counts.paused_targets() == 1
    with api_lab.rio.db.session() as s:  # the run ends: it probes nothing any more
        s.execute(update(RunRow).where(RunRow.id == run).values(state="sealed"))
    _update(api_lab, counts)
    assert counts.paused_targets() == 0
