"""What ``/metrics`` and ``/healthz`` report, read from the database (no acting person).

Prometheus derives rates itself: ``rate(rio_probes_sent_total[1m])`` is probes per second.
Figures are totals over every run in the database. The ledger's are kept by a
:class:`LedgerCounts` that reads each leaf once: a scrape reads only the leaves appended since
the one before (one index lookup per run that is not sealed, a range read where it grew), so
its cost follows the new leaves, not the size of the ledger. The budget-wait figures are this
process's own (:mod:`orchestrator.telemetry`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orchestrator.context import Rio
from orchestrator.errors import StoreError
from orchestrator.ledger.leaves import parse_leaf
from orchestrator.ledger.tally import RefusalTally
from orchestrator.run.state import RunState
from orchestrator.store.models import LeafRow, RunRow

__all__ = ["LedgerCounts", "database_health", "prometheus_text"]

_TALLIED = ("refusal", "outcome", "health")
"""The kinds whose bodies are read: why a probe was not sent (:class:`RefusalTally`), and the
health breaker's changes (which targets are paused)."""


class LedgerCounts:
    """Leaves by kind, refusals by reason and paused targets over every run, brought up to date
    incrementally.

    Leaves are append-only and each run's are committed in sequence order by its one writer
    (the run's lease), so "every leaf after the last one read" is exactly what is new. A sealed
    run gets no more leaves (its final state leaf is committed with the row's state), so once
    read after it was seen sealed it is not looked at again. Safe to share between threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._done: set[str] = set()
        self._kinds: Counter[str] = Counter()
        self._tally = RefusalTally()
        self._health: dict[str, dict[str, str]] = {}
        """per run not sealed: each target's last health state"""
        self.read = 0
        """Leaves read so far (what the scrapes cost)."""

    def update(self, s: Session) -> None:
        """Read the leaves appended since the last update."""
        with self._lock:
            runs = s.execute(select(RunRow.id, RunRow.state)).all()
            for run_id, state in runs:
                if run_id in self._done:
                    continue
                last = self._last.get(run_id, -1)
                top = s.scalar(select(func.max(LeafRow.seq)).where(LeafRow.run_id == run_id))
                if top is not None and top > last:
                    self._read(s, run_id, last, top)
                    self._last[run_id] = top
                if state == RunState.SEALED.value:
                    self._done.add(run_id)
                    self._health.pop(run_id, None)  # a sealed run probes nothing any more

    def _read(self, s: Session, run_id: str, after: int, upto: int) -> None:
        window = (LeafRow.run_id == run_id, LeafRow.seq > after, LeafRow.seq <= upto)
        for kind, count in s.execute(
            select(LeafRow.kind, func.count()).where(*window).group_by(LeafRow.kind)
        ).tuples():
            self._kinds[str(kind)] += int(count)
            self.read += int(count)
        rows = s.execute(
            select(LeafRow.seq, LeafRow.body).where(*window, LeafRow.kind.in_(_TALLIED))
        )
        for seq, body in rows:
            leaf = parse_leaf(bytes(body), source=f"run {run_id} leaf {seq}")
            if leaf.kind == "health":
                self._health.setdefault(run_id, {})[str(leaf.data["ip"])] = str(leaf.data["state"])
            else:
                self._tally.add(leaf)

    def kinds(self) -> dict[str, int]:
        with self._lock:
            return dict(self._kinds)

    def paused_targets(self) -> int:
        """Targets whose last health change paused them, in runs not sealed yet (a target of
        two such runs counts twice: each run's breaker holds it)."""
        with self._lock:
            return sum(
                1
                for states in self._health.values()
                for state in states.values()
                if state == "paused"
            )

    def refusals(self) -> dict[str, int]:
        with self._lock:
            return self._tally.counts()


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


def prometheus_text(
    rio: Rio,
    *,
    verify_results: Mapping[str, int] | None = None,
    ledger: LedgerCounts | None = None,
) -> str:
    """The metrics in the Prometheus text exposition format.

    Args:
        rio: The opened home.
        verify_results: Audit verifications this process answered, by result (pass/fail).
        ledger: The counts kept between scrapes (a fresh one reads every leaf).
    """
    ledger = ledger if ledger is not None else LedgerCounts()
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
        ledger.update(s)
    kinds = ledger.kinds()
    waits = rio.telemetry.budget_waits.read()
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
        ledger.refusals(),
        "reason",
    )
    lines += _family(
        "rio_health_events_total",
        "counter",
        "Target health events (distress back-off and pauses) logged.",
        int(kinds.get("health", 0)),
    )
    lines += _family(
        "rio_paused_targets",
        "gauge",
        "Targets the health breaker paused (no recovery logged since), in runs not sealed.",
        ledger.paused_targets(),
    )
    lines += _family(
        "rio_budget_waiting",
        "gauge",
        "Probes of this process's runs waiting for rate budget now.",
        waits.waiting,
    )
    lines += [
        "# HELP rio_budget_wait_seconds Time probes of this process's runs waited for rate "
        "budget (every acquisition, granted or not).",
        "# TYPE rio_budget_wait_seconds summary",
        f"rio_budget_wait_seconds_sum {waits.seconds:.6f}",
        f"rio_budget_wait_seconds_count {waits.acquisitions}",
    ]
    lines += _family(
        "rio_budget_waits_total",
        "counter",
        "Budget acquisitions of this process's runs that had to wait.",
        waits.waited,
    )
    lines += _family(
        "rio_audit_verifications_total",
        "counter",
        "Audit verifications answered by this process, by result.",
        dict(Counter(verify_results or {})),
        "result",
    )
    return "\n".join(lines) + "\n"
