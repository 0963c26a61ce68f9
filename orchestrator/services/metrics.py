"""What ``/metrics`` and ``/healthz`` report, read from the database (no acting person).

Prometheus derives rates itself: ``rate(rio_probes_sent_total[1m])`` is probes per second.
Figures are totals over every run in the database, computed per scrape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.context import Rio
from orchestrator.errors import StoreError
from orchestrator.ledger.leaves import parse_leaf
from orchestrator.ledger.tally import RefusalTally
from orchestrator.store.models import LeafRow, RunRow

__all__ = ["database_health", "prometheus_text"]


def database_health(rio: Rio) -> str:
    """``"ok"`` when the database answers a query.

    Raises:
        StoreError: The database does not answer.
    """
    try:
        with rio.db.session() as s:
            s.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StoreError(f"database {rio.db.safe_url} does not answer") from exc
    return "ok"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(
    name: str, kind: str, doc: str, samples: Mapping[str, int] | int, label: str = ""
) -> list[str]:
    lines = [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]
    if isinstance(samples, int):
        lines.append(f"{name} {samples}")
    else:
        lines.extend(
            f'{name}{{{label}="{_escape(key)}"}} {value}' for key, value in sorted(samples.items())
        )
    return lines


def prometheus_text(rio: Rio, *, verify_results: Mapping[str, int] | None = None) -> str:
    """The metrics in the Prometheus text exposition format.

    Args:
        rio: The opened home.
        verify_results: Audit verifications this process answered, by result (pass/fail).
    """
    with rio.db.session() as s:
        states = {
            str(k): int(v)
            for k, v in s.execute(select(RunRow.state, func.count()).group_by(RunRow.state))
        }
        paused = {
            str(k or "unknown"): int(v)
            for k, v in s.execute(
                select(RunRow.pause_reason, func.count())
                .where(RunRow.state == "paused")
                .group_by(RunRow.pause_reason)
            )
        }
        kinds = {
            str(k): int(v)
            for k, v in s.execute(select(LeafRow.kind, func.count()).group_by(LeafRow.kind))
        }
        tally = RefusalTally()
        rows = s.execute(
            select(LeafRow.run_id, LeafRow.seq, LeafRow.body).where(
                LeafRow.kind.in_(("refusal", "outcome"))
            )
        )
        for run_id, seq, body in rows:
            tally.add(parse_leaf(bytes(body), source=f"run {run_id} leaf {seq}"))
    lines: list[str] = []
    lines += _family("rio_runs", "gauge", "Runs by state.", states, "state")
    lines += _family(
        "rio_paused_runs",
        "gauge",
        "Paused runs by pause reason.",
        paused,
        "reason",
    )
    lines += _family(
        "rio_probes_sent_total",
        "counter",
        "Probes sent (intent leaves committed before sending).",
        int(kinds.get("intent", 0)),
    )
    lines += _family(
        "rio_ledger_leaves_total",
        "counter",
        "Probe-log leaves by kind.",
        kinds,
        "kind",
    )
    lines += _family(
        "rio_refusals_total",
        "counter",
        "Refusals by reason (the gate's and the probes' own).",
        tally.counts(),
        "reason",
    )
    lines += _family(
        "rio_health_events_total",
        "counter",
        "Target health events (distress back-off and pauses) logged.",
        int(kinds.get("health", 0)),
    )
    lines += _family(
        "rio_audit_verifications_total",
        "counter",
        "Audit verifications answered by this process, by result.",
        dict(Counter(verify_results or {})),
        "result",
    )
    return "\n".join(lines) + "\n"
