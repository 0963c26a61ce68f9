"""``rio run status``'s peak: connections in any sliding second, as the target received them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from orchestrator.ledger.bodies import IntentBody, Outcome, OutcomeBody
from orchestrator.ledger.leaves import format_instant
from orchestrator.ledger.log import ProbeLog
from orchestrator.services import runs
from tests.access.test_lab import Lab


def _log_probes(lab: Lab, sends: list[tuple[float, tuple[int, ...] | None]]) -> None:
    """Log one intent + outcome per ``(seconds after a whole second, traced offsets in us)``."""
    base = datetime(2026, 12, 4, 3, 0, 0, tzinfo=UTC)

    async def write() -> None:
        log = ProbeLog(lab.rio.db, lab.run_a, lab.rio.signing_key, clock=lab.rio.clock)
        try:
            for n, (offset, traced) in enumerate(sends):
                at = base + timedelta(seconds=offset)
                intent = IntentBody(
                    item=n, probe="port", target="127.0.10.5", ip="127.0.10.5", port=None,
                    ports=(22,), server_name=None, cost=len(traced or (0,)), deadline=None,
                    max_rate=10, resolution=None,
                )  # fmt: skip
                seq = await log.append("intent", intent.to_json(), at)
                outcome = OutcomeBody(
                    intent=seq, outcome=Outcome.OK, elapsed_us=1000, connections=1,
                    evidence_digest=None, findings=(), sent_at=format_instant(at), error=None,
                    **({"sends_us": traced} if traced else {}),
                )  # fmt: skip
                await log.append("outcome", outcome.to_json(), at)
        finally:
            await log.close()

    asyncio.run(write())


def test_run_status_peak_counts_a_sliding_second_not_calendar_seconds(lab: Lab) -> None:
    # 0.6 s and 1.4 s: one per calendar second, two inside the sliding second (0.5, 1.5].
    _log_probes(lab, [(0.6, None), (1.4, None), (3.0, None)])
    status = asyncio.run(runs.run_figures(lab.rio, lab.person("auditor-u"), lab.run_a)).to_json()
    assert status["peak_connections_per_second"] == 2


def test_run_status_peak_counts_an_nmap_batch_at_its_traced_sends(lab: Lab) -> None:
    # One probe of cost 3 whose sends nmap traced 0, 1.5 and 1.6 s after the first: the
    # fullest second holds two of them, not three.
    _log_probes(lab, [(0.2, (0, 1_500_000, 1_600_000))])
    status = asyncio.run(runs.run_figures(lab.rio, lab.person("auditor-u"), lab.run_a)).to_json()
    assert status["peak_connections_per_second"] == 2
