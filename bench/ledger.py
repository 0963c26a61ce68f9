"""Figures 5 and 6: the probe log's append rate and the audit's verify rate.

* 5: leaves per second through :class:`~orchestrator.ledger.log.ProbeLog` the way the runner
  uses it (log before send: ``append`` then ``durable``, from many concurrent producers), on
  SQLite and on PostgreSQL, beside a raw group commit (plain ``executemany`` of the same rows
  in batches of the log's size) on the same database.
* 6: leaves per second through :func:`orchestrator.ledger.verify.verify_log` (the audit's pass
  over a run's leaves and checkpoints) beside the bare RFC 9162 root over the same leaves.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, insert, select, text

from bench._common import Figure, Settings
from bench._home import BenchHome
from orchestrator.ledger.bodies import IntentBody, Outcome, OutcomeBody
from orchestrator.ledger.leaves import LEAF_BATCH, leaf_heads, parse_leaf, parse_leaf_exact
from orchestrator.ledger.log import ProbeLog, read_checkpoints
from orchestrator.ledger.merkle import root_from_leaves
from orchestrator.ledger.verify import verify_log
from orchestrator.store.models import LeafRow

__all__ = [
    "PG_URL",
    "LedgerSample",
    "VerifySample",
    "ledger_figures",
    "ledger_sample",
    "verify_sample",
]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_PRODUCERS = 32
_BATCH = 1024


def _intent(n: int) -> dict[str, Any]:
    """A body shaped like the gate's intent leaves."""
    ip = f"127.0.30.{n % 62 + 1}"
    return IntentBody(
        item=n,
        probe="http",
        target=f"url:http://{ip}:8080/u{n}",
        ip=ip,
        port=8080,
        ports=(),
        server_name=None,
        cost=1,
        deadline="2026-11-30T02:00:20.000000+00:00",
        max_rate=1,
        resolution=None,
    ).to_json()


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerSample:
    """One append measurement."""

    rio_rate: float
    raw_rate: float
    run_id: str


def _outcome(intent: int) -> dict[str, Any]:
    return OutcomeBody(
        intent=intent,
        outcome=Outcome.OK,
        elapsed_us=1200,
        connections=1,
        evidence_digest=None,
        findings=(),
    ).to_json()


async def _produce(log: ProbeLog, leaves: int) -> float:
    # Like the runner: intent, wait until durable (log before send), then the outcome.
    per = leaves // _PRODUCERS // 2

    async def producer(first: int) -> None:
        for n in range(first, first + per):
            seq = await log.append("intent", _intent(n), datetime.now(UTC))
            await log.durable(seq)
            await log.append("outcome", _outcome(seq), datetime.now(UTC))

    started = time.perf_counter()
    await asyncio.gather(*(producer(p * per) for p in range(_PRODUCERS)))
    seconds = time.perf_counter() - started
    await log.close()
    return seconds


def ledger_sample(home: BenchHome, leaves: int) -> LedgerSample:
    """Append ``leaves`` through a ProbeLog, then insert the same rows raw under another run."""
    rio = home.opened
    run_id = f"R-bench-{secrets.token_hex(4)}"
    log = ProbeLog(rio.db, run_id, rio.signing_key, clock=rio.clock)
    seconds = asyncio.run(_produce(log, leaves))
    total = leaves // _PRODUCERS // 2 * _PRODUCERS * 2
    with rio.db.session() as s:
        stored = s.execute(
            select(LeafRow.seq, LeafRow.kind, LeafRow.body, LeafRow.leaf_hash)
            .where(LeafRow.run_id == run_id)
            .order_by(LeafRow.seq)
        ).all()
    raw_run = f"R-raw-{secrets.token_hex(4)}"
    rows = [
        {"run_id": raw_run, "seq": seq, "kind": kind, "body": bytes(body), "leaf_hash": bytes(h)}
        for seq, kind, body, h in stored
    ]
    started = time.perf_counter()
    for i in range(0, len(rows), _BATCH):
        with rio.db.session() as s:
            s.execute(insert(LeafRow), rows[i : i + _BATCH])
    raw_seconds = time.perf_counter() - started
    return LedgerSample(rio_rate=total / seconds, raw_rate=len(rows) / raw_seconds, run_id=run_id)


def verify_sample(home: BenchHome, run_id: str) -> VerifySample:
    """verify_log's rate over a run's stored leaves, beside the raw root and both parse paths."""
    rio = home.opened
    with rio.db.session() as s:
        bodies = [
            bytes(b)
            for b in s.scalars(
                select(LeafRow.body).where(LeafRow.run_id == run_id).order_by(LeafRow.seq)
            )
        ]
    notes = [cp.note for cp in read_checkpoints(rio.db, run_id)]
    started, cpu_started = time.perf_counter(), time.process_time()
    verdict = verify_log(run_id, bodies, notes, rio.verify_key)
    verify_seconds = time.perf_counter() - started
    verify_cpu = time.process_time() - cpu_started
    if not verdict.ok:
        raise RuntimeError(f"bench: the bench's own log does not verify: {verdict}")
    started = time.perf_counter()
    size, root = root_from_leaves(bodies)
    raw_seconds = time.perf_counter() - started
    if size != verdict.size or root != verdict.root:
        raise RuntimeError("bench: verify_log and root_from_leaves disagree on the root")
    return VerifySample(
        rate=len(bodies) / verify_seconds,
        cpu_rate=len(bodies) / max(verify_cpu, 1e-9),
        raw_root_rate=len(bodies) / raw_seconds,
        batch_rate=_batch_rate(bodies),
        fast_parse_rate=_parse_rate(parse_leaf, bodies),
        exact_parse_rate=_parse_rate(parse_leaf_exact, bodies),
        leaves=len(bodies),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifySample:
    """One verify measurement, with the leaf parser's two paths timed over the same leaves."""

    rate: float
    cpu_rate: float
    """leaves per CPU second (process_time): on a loaded machine, wall time is the neighbours'"""
    raw_root_rate: float
    batch_rate: float
    fast_parse_rate: float
    exact_parse_rate: float
    leaves: int


def _parse_rate(parse: Callable[[bytes], object], bodies: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for raw in bodies:
        parse(raw)
    return len(bodies) / (time.perf_counter() - started)


def _batch_rate(bodies: Sequence[bytes]) -> float:
    """Leaves per second through verify_log's batch path (leaf_heads, in its batches)."""
    started = time.perf_counter()
    for i in range(0, len(bodies), LEAF_BATCH):
        leaf_heads(bodies[i : i + LEAF_BATCH])
    return len(bodies) / (time.perf_counter() - started)


def _pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def _pg_reachable() -> str | None:
    """``None`` when PostgreSQL answers, else why not."""
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any driver/connection failure means: skip with a note
        return f"PostgreSQL at {PG_URL} unreachable: {type(exc).__name__}"
    return None


def _append_figure(
    key: str, db: str, samples: Sequence[LedgerSample], goal: float, leaves: int
) -> Figure:
    return Figure(
        key=key,
        name=f"ledger append (log before send), {db}",
        unit="leaves/s",
        samples=tuple(s.rio_rate for s in samples),
        op=">=",
        goal=goal,
        baseline=tuple(s.rio_rate / s.raw_rate for s in samples),
        baseline_label="of raw",
        detail=f"{leaves} leaves, {_PRODUCERS} producers: intent, durable, outcome; "
        "raw executemany "
        f"{statistics.median(s.raw_rate for s in samples):,.0f} leaves/s",
    )


def ledger_figures(settings: Settings) -> list[Figure]:
    """Figures 5 (SQLite, PostgreSQL) and 6."""
    leaves = settings.pick(10_240, 40_960)
    figures: list[Figure] = []
    with BenchHome() as home:
        sqlite = [ledger_sample(home, leaves) for _ in range(settings.repeats)]
        figures.append(_append_figure("5a", "SQLite", sqlite, 30_000, leaves))
        verify = [verify_sample(home, s.run_id) for s in sqlite]
    figures.append(
        Figure(
            key="6",
            name="audit verify_log",
            unit="leaves/s",
            samples=tuple(v.rate for v in verify),
            op=">=",
            goal=250_000,
            baseline=tuple(v.rate / v.raw_root_rate for v in verify),
            baseline_label="of raw root",
            detail=f"{verify[-1].leaves} leaves + checkpoints; CPU "
            f"{statistics.median(v.cpu_rate for v in verify):,.0f} leaves/s; raw root_from_leaves "
            f"{statistics.median(v.raw_root_rate for v in verify):,.0f} leaves/s; its batch path "
            f"(leaf_heads) {statistics.median(v.batch_rate for v in verify):,.0f} leaves/s; "
            "parse_leaf "
            f"{statistics.median(v.fast_parse_rate for v in verify):,.0f} leaves/s, its exact "
            f"stdlib path alone {statistics.median(v.exact_parse_rate for v in verify):,.0f} "
            "leaves/s (orchestrator.ledger.verify.verify_log)",
        )
    )
    why = _pg_reachable()
    if why is not None:
        figures.insert(
            1,
            Figure(
                key="5b",
                name="ledger append (log before send), PostgreSQL",
                unit="leaves/s",
                samples=(),
                op=">=",
                goal=20_000,
                skipped=why,
            ),
        )
        return figures
    schema = f"rio_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"create schema {schema}"))
        with BenchHome(database_url=_pg_schema_url(schema)) as home:
            pg = [ledger_sample(home, leaves) for _ in range(settings.repeats)]
        figures.insert(1, _append_figure("5b", "PostgreSQL", pg, 20_000, leaves))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"drop schema if exists {schema} cascade"))
        admin.dispose()
    return figures
