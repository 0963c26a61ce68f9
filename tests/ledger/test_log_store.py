"""The probe log on a real database: one contract, SQLite and PostgreSQL.

PostgreSQL comes from ``RIO_TEST_DATABASE_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, loopback only). Each test gets its own
schema ``t_<random>`` (reached through ``search_path``), dropped at teardown; nothing else in
that database is touched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from orchestrator.clock import SystemClock
from orchestrator.errors import StoreError
from orchestrator.ledger.checkpoint import run_origin, verify_checkpoint
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME, ProbeLog, read_checkpoints
from orchestrator.ledger.merkle import root_from_leaves
from orchestrator.ledger.verify import verify_log
from orchestrator.store.db import Database, upgrade
from orchestrator.store.models import LeafRow

PG_URL = os.environ.get(
    "RIO_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
RUN = "R-20261130-store1"
KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _pg_schema_url() -> Iterator[str]:
    host = urlsplit(PG_URL).hostname or ""
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        pytest.skip(f"RIO_TEST_DATABASE_URL {PG_URL!r} is not on loopback; tests only use loopback")
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        admin = psycopg.connect(plain, autocommit=True, connect_timeout=2)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} (set RIO_TEST_DATABASE_URL): {exc}")
    schema = f"t_{secrets.token_hex(6)}"
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        assert schema.startswith("t_")  # never public
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path / 'rio.db').as_posix()}"
        urls: Iterator[str] | None = None
    else:
        urls = _pg_schema_url()
        url = next(urls)
    database = Database(url)
    try:
        upgrade(database)
        yield database
    finally:
        database.dispose()
        if urls is not None:
            for _ in urls:  # runs the schema's teardown
                pass


def _second(db: Database) -> Database:
    """Another engine on the same database: its reads come over another connection."""
    return Database(db.url)


async def _fill(log: ProbeLog, n: int) -> list[int]:
    return [
        await log.append_durable("state", {"state": "running", "reason": f"leaf {i}"}, T0)
        for i in range(n)
    ]


async def test_leaves_and_checkpoints_refuse_update_and_delete(db: Database) -> None:
    log = ProbeLog(db, RUN, KEY, clock=SystemClock())
    await _fill(log, 3)
    await log.close()
    before = [bytes(b) for b in _bodies(db)]
    for statement in (
        "UPDATE ledger_leaves SET kind = 'kill'",
        "DELETE FROM ledger_leaves WHERE seq = 1",
        "UPDATE ledger_checkpoints SET size = 99",
        "DELETE FROM ledger_checkpoints",
    ):
        with pytest.raises(StoreError, match="append-only"), db.session() as s:
            s.execute(text(statement))
    assert _bodies(db) == before
    assert [cp.size for cp in read_checkpoints(db, RUN)] == [3]


def _bodies(db: Database) -> list[bytes]:
    with db.session() as s:
        return [
            bytes(b)
            for b in s.scalars(
                select(LeafRow.body).where(LeafRow.run_id == RUN).order_by(LeafRow.seq)
            )
        ]


async def test_durable_returns_only_once_another_connection_reads_the_leaf(db: Database) -> None:
    commits = 0

    def count(_: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine, "commit", count)
    log = ProbeLog(
        db, RUN, KEY, checkpoint_every=10_000, checkpoint_seconds=3600, clock=SystemClock()
    )
    reader = _second(db)
    unseen: list[int] = []

    def visible(seq: int) -> bool:
        with reader.session() as s:
            return s.get(LeafRow, (RUN, seq)) is not None

    async def one(i: int) -> int:
        seq = await log.append("intent", {"item": i, "ip": "127.0.0.1", "cost": 1}, T0)
        await log.durable(seq)
        # No await between durable() returning and this read: the commit already happened.
        if not visible(seq):
            unseen.append(seq)
        return seq

    try:
        seqs = await asyncio.gather(*(one(i) for i in range(300)))
        await log.close()
    finally:
        reader.dispose()
    assert sorted(seqs) == list(range(300))
    assert unseen == []
    # Group commit: far fewer commits than leaves (one per flushed batch).
    assert commits <= 150, commits
    assert log.size == 300


async def test_reopened_log_rebuilds_the_same_root_and_continues(db: Database) -> None:
    first = ProbeLog(db, RUN, KEY, clock=SystemClock())
    await _fill(first, 37)
    root, size = first.root(), first.size
    await first.close()

    again = ProbeLog(db, RUN, KEY, clock=SystemClock())
    assert (again.size, again.root()) == (size, root)
    seq = await again.append_durable("state", {"state": "paused", "reason": "window"}, T0)
    await again.close()

    assert seq == 37
    bodies = _bodies(db)
    assert root_from_leaves(bodies) == (38, again.root())
    assert root_from_leaves(bodies[:37]) == (37, root)


async def test_checkpoint_every_n_leaves(db: Database) -> None:
    log = ProbeLog(db, RUN, KEY, checkpoint_every=10, checkpoint_seconds=3600, clock=SystemClock())
    await _fill(log, 35)
    await log.close()

    stored = read_checkpoints(db, RUN)
    assert [cp.size for cp in stored] == [10, 20, 30, 35]
    bodies = _bodies(db)
    for cp in stored:
        verified = verify_checkpoint(
            cp.note, KEY.public_key(), CHECKPOINT_KEY_NAME, origin=run_origin(RUN)
        )
        assert verified.root == root_from_leaves(bodies[: cp.size])[1] == cp.root
    verdict = verify_log(RUN, bodies, [cp.note for cp in stored], KEY.public_key())
    assert verdict, verdict.problems


async def test_checkpoints_cut_while_appending_state_their_true_root(db: Database) -> None:
    """checkpoint() racing the flusher's own checkpoints: no duplicate, every root matches."""
    log = ProbeLog(db, RUN, KEY, checkpoint_every=1, checkpoint_seconds=3600, clock=SystemClock())

    async def writer() -> None:
        for i in range(150):
            await log.append("intent", {"item": i, "ip": "127.0.0.1", "cost": 1}, T0)
            if i % 3 == 0:
                await asyncio.sleep(0)

    async def cutter() -> None:
        for _ in range(60):
            await log.checkpoint()

    await asyncio.gather(writer(), cutter(), cutter())
    await log.close()
    bodies = _bodies(db)
    stored = read_checkpoints(db, RUN)
    assert stored[-1].size == len(bodies) == 150
    for cp in stored:
        assert cp.root == root_from_leaves(bodies[: cp.size])[1], f"checkpoint {cp.size}"


async def test_rows_given_with_leaves_are_committed_with_them_in_one_group(db: Database) -> None:
    # What the runner does with an outcome's findings: rows that belong to a leaf ride in the
    # leaf's group commit, not in a transaction of their own per leaf.
    with db.session() as s:
        s.execute(text("CREATE TABLE scratch_rows (seq integer)"))
    commits = 0

    def count(_: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(db.engine, "commit", count)
    log = ProbeLog(
        db, RUN, KEY, checkpoint_every=10_000, checkpoint_seconds=3600, clock=SystemClock()
    )

    def row_for(seq: int) -> Callable[[Session], None]:
        return lambda s: s.execute(text("INSERT INTO scratch_rows VALUES (:n)"), {"n": seq})

    seqs = [
        await log.append("outcome", {"intent": i}, T0, change=row_for(log.next_seq))
        for i in range(40)
    ]
    await log.durable(seqs[-1])
    await log.close()
    with db.session() as s:
        rows = sorted(s.scalars(text("SELECT seq FROM scratch_rows")))
    assert rows == seqs == list(range(40))
    assert commits < 10, commits  # 40 leaves and 40 rows in a handful of group commits


async def test_a_failing_row_keeps_its_leaf_out_and_fails_the_log(db: Database) -> None:
    log = ProbeLog(
        db, RUN, KEY, checkpoint_every=10_000, checkpoint_seconds=3600, clock=SystemClock()
    )
    await log.append_durable("state", {"state": "running"}, T0)

    def broken(s: Session) -> None:
        s.execute(text("INSERT INTO no_such_table VALUES (1)"))

    seq = await log.append("outcome", {"intent": 0}, T0, change=broken)
    with pytest.raises(StoreError):
        await log.durable(seq)
    with pytest.raises(StoreError):
        await log.close()
    assert len(_bodies(db)) == 1
