"""``python -m bench.metrics_scrape``: what one ``/metrics`` scrape costs as the ledger grows.

A/B in one run on one database: the scrape as it was (every refusal and outcome leaf of every
run parsed at each scrape, plus a count over the whole leaf table) against the kept
:class:`~orchestrator.services.metrics.LedgerCounts` (only the leaves appended since the last
scrape), each timed over the same scrapes while one run keeps appending. Prints both and their
ratio; absolute times depend on the machine, the ratio is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from bench._home import BenchHome, policy_yaml, scope_yaml
from orchestrator.ledger.bodies import IntentBody, Outcome, OutcomeBody
from orchestrator.ledger.leaves import parse_leaf
from orchestrator.ledger.log import ProbeLog
from orchestrator.ledger.tally import RefusalTally
from orchestrator.services.metrics import LedgerCounts, prometheus_text
from orchestrator.store.models import LeafRow, RunRow

__all__ = ["main"]


def _old_scrape(home: BenchHome) -> None:
    """The scrape before LedgerCounts (commit 1722e8c's services/metrics.py), ledger part."""
    rio = home.opened
    with rio.db.session() as s:
        dict(s.execute(select(LeafRow.kind, func.count()).group_by(LeafRow.kind)).tuples().all())
        tally = RefusalTally()
        rows = s.execute(
            select(LeafRow.run_id, LeafRow.seq, LeafRow.body).where(
                LeafRow.kind.in_(("refusal", "outcome"))
            )
        )
        for run_id, seq, body in rows:
            tally.add(parse_leaf(bytes(body), source=f"run {run_id} leaf {seq}"))


async def _write(home: BenchHome, run_id: str, pairs: int) -> None:
    """Append ``pairs`` intent/outcome pairs to the run's log (opened and closed here)."""
    rio = home.opened
    log = ProbeLog(rio.db, run_id, rio.signing_key, clock=rio.clock)
    for n in range(pairs):
        intent = IntentBody(
            item=n,
            probe="port",
            target="cidr:127.0.30.0/27",
            ip="127.0.30.1",
            port=80,
            ports=(80,),
            server_name=None,
            cost=1,
            deadline="2026-11-30T02:00:20.000000+00:00",
            max_rate=10,
            resolution=None,
        )
        seq = await log.append("intent", intent.to_json(), datetime.now(UTC))
        outcome = OutcomeBody(
            intent=seq,
            outcome=Outcome.OK,
            elapsed_us=1200,
            connections=1,
            evidence_digest=None,
            findings=(),
        )
        await log.append("outcome", outcome.to_json(), datetime.now(UTC))
    await log.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_scrape")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--leaves", type=int, default=5000, help="leaves per sealed run")
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    with BenchHome(database_url=args.database_url) as home:
        rio = home.opened
        notice = home.notice(
            scope_yaml(["{cidr: 127.0.30.0/27}"]),
            policy_yaml(
                per_ip=10,
                per_network=10,
                per_notice=10,
                global_=10,
                concurrency=1,
                probes="{port: {ports: [80]}}",
            ),
        )
        template = home.run(notice.id)
        asyncio.run(_write(home, template, args.leaves // 2))
        with rio.db.session() as s:
            rows = s.execute(
                select(LeafRow.seq, LeafRow.kind, LeafRow.body, LeafRow.leaf_hash).where(
                    LeafRow.run_id == template
                )
            ).all()
            s.get(RunRow, template).state = "sealed"  # type: ignore[union-attr]
        for _ in range(args.runs - 1):
            run_id = home.run(notice.id)
            with rio.db.session() as s:
                s.execute(
                    insert(LeafRow),
                    [
                        {"run_id": run_id, "seq": q, "kind": k, "body": b, "leaf_hash": h}
                        for q, k, b, h in rows
                    ],
                )
                s.get(RunRow, run_id).state = "sealed"  # type: ignore[union-attr]
        live = home.run(notice.id)
        kept = LedgerCounts()
        prometheus_text(rio, ledger=kept)  # the first scrape reads everything once
        old = new = 0.0
        for _ in range(args.scrapes):
            asyncio.run(_write(home, live, 50))  # the live run appends between scrapes
            started = time.perf_counter()
            _old_scrape(home)
            old += time.perf_counter() - started
            started = time.perf_counter()
            prometheus_text(rio, ledger=kept)
            new += time.perf_counter() - started
        total = args.runs * args.leaves
        print(
            f"{args.runs} runs x {args.leaves} leaves ({total} leaves), {args.scrapes} scrapes, "
            f"{rio.db.safe_url.split(':')[0]}:"
        )
        print(f"  every leaf per scrape: {old / args.scrapes * 1000:.1f} ms/scrape")
        print(
            f"  kept counts:           {new / args.scrapes * 1000:.1f} ms/scrape "
            f"(whole /metrics text, {kept.read} leaves read in all)"
        )
        print(f"  ratio old/new: {old / new:.1f}x")


if __name__ == "__main__":
    main()
