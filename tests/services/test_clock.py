"""One clock: an app built on a fake clock stamps everything it writes with that clock's time
(grants, access-log entries, runs, kill requests, state leaves, checkpoints), so no service
reads the wall clock behind its back."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.access.evidence import access_log, grant_evidence, read_evidence
from orchestrator.app import build_app
from orchestrator.clock import FakeClock
from orchestrator.ledger.log import read_checkpoints, read_leaves
from orchestrator.run.runs import get_run
from orchestrator.services import runs
from tests.access.test_lab import Lab

T = datetime(2026, 9, 5, 3, 0, tzinfo=UTC)  # not today: anything stamped today read the wall


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; rio stores UTC.
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def test_grants_and_evidence_reads_are_stamped_by_the_apps_clock(lab: Lab) -> None:
    app = build_app(lab.rio.settings, clock=FakeClock(T))
    try:
        grant = grant_evidence(app, lab.person("officer-a"), "auditor-u", lab.run_a)
        finding = lab.findings[lab.run_a][0]
        read_evidence(app, lab.person("auditor-u"), finding, reason="audit of the clock")
        with app.db.session() as s:
            entries = access_log(s, run_id=lab.run_a)
    finally:
        app.close()
    assert grant.created and _utc(grant.granted_at) == T
    assert {_utc(e.at) for e in entries} == {T}


async def test_a_run_created_and_killed_on_a_fake_clock_carries_its_time_everywhere(
    lab: Lab,
) -> None:
    app = build_app(lab.rio.settings, clock=FakeClock(T))
    try:
        tech = lab.person("tech-a")
        run_id = runs.new_run(app, tech, lab.notice_a)
        await runs.kill_runs(app, tech, [run_id], reason="the clock test stops it")
        with app.db.session() as s:
            row = get_run(s, run_id)
            created, killed = _utc(row.created_at), _utc(row.kill_requested_at)
        leaves = list(read_leaves(app.db, run_id))
        checkpoints = read_checkpoints(app.db, run_id)
    finally:
        app.close()
    assert run_id.startswith("R-20260905-")
    assert created == killed == T
    assert [leaf.kind for leaf in leaves] == ["kill", "state", "state"]
    assert {leaf.instant for leaf in leaves} == {T}
    assert checkpoints and {_utc(c.created_at) for c in checkpoints} == {T}
