"""A run's findings are written with their outcome leaf, one row per key (issue #18 bookkeeping).

The runner keeps the run's keys in memory (``FindingsBook``) and hands each outcome's findings to
the probe log as a change of the leaf's transaction: a key seen again, in the same run or after
a resume, gains a sighting instead of a second row.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from orchestrator.ledger.log import ProbeLog
from orchestrator.run._findings import FindingsBook, Keyed
from orchestrator.store.evidence import cipher_for
from orchestrator.store.models import FindingRow
from probes.findings import Finding
from tests.run.conftest import (
    Home,
    announce_notice,
    around,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
)


def _finding(target: str) -> Finding:
    return Finding(
        rule="RIO-HTTP-BANNER-VERSION",
        title="Server banner names its version",
        severity="low",
        kind="finding",
        target=target,
        ip="127.0.0.9",
        port=80,
        probe="http",
        detail={"server": "nginx/1.22.1"},
        evidence="nginx/1.22.1",
        remediation="Hide the version.",
        refs=(),
        object_id="run-test-isp",
        endpoint={"ip": "127.0.0.9", "port": 80},
        subject={"server": "nginx/1.22.1"},
    )


def _run(home: Home) -> str:
    now = now_utc()
    notice = announce_notice(
        home,
        scope_bytes("127.0.0.8/30", [around(now)]),
        policy_bytes(None, http_port=80),
        at=now - timedelta(minutes=1),
    )
    return new_run(home, notice)


async def _outcome(home: Home, run_id: str, book: FindingsBook, target: str) -> int:
    log = ProbeLog(home.rio.db, run_id, home.rio.signing_key, clock=home.rio.clock)
    try:
        seq = log.next_seq
        write, added = book.change(seq, [Keyed.of(_finding(target))])
        await log.append("outcome", {"intent": 0, "outcome": "ok"}, change=write)
        return added
    finally:
        await log.close()


async def test_a_key_seen_again_after_a_resume_gains_a_sighting_not_a_second_row(
    home: Home,
) -> None:
    run_id = _run(home)
    cipher = cipher_for(home.rio)
    first = await _outcome(home, run_id, FindingsBook(home.rio.db, run_id, cipher), "ip:127.0.0.9")
    # A resumed run opens a new book: the key is known from the database.
    again = await _outcome(home, run_id, FindingsBook(home.rio.db, run_id, cipher), "host:lab.test")
    with home.rio.db.session() as s:
        rows = s.scalars(select(FindingRow).where(FindingRow.run_id == run_id)).all()
        assert (first, again) == (1, 0)
        (row,) = rows
        assert [x["target"] for x in row.sightings] == ["ip:127.0.0.9", "host:lab.test"]
        assert row.key == _finding("x").key and row.leaf_seq == 0
        assert row.evidence is not None and b"nginx/1.22.1" not in row.evidence  # sealed
