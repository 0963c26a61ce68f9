"""What a worker does with one delivered permit: verify, claim, send once, answer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.clock import Clock, SystemClock
from orchestrator.run.executors._base import Executor
from orchestrator.run.executors._local import LocalExecutor
from orchestrator.run.executors._results import result_to_json
from orchestrator.run.executors._wire import PermitWireError, WirePermit, open_permit
from orchestrator.workers._claims import ClaimStore, Seen
from orchestrator.workers._kill import KillListener
from probes.base import ProbeResult
from probes.errors import ProbeError
from probes.registry import probe_class

__all__ = ["WorkerDeps", "handle_permit"]

log = logging.getLogger("rio.worker")


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerDeps:
    """What one worker process holds: the permit key, the claim store, the kill listener, and
    the executor that finally sends (the in-process one; a fake in tests)."""

    permit_key: bytes
    claims: ClaimStore
    kills: KillListener
    nmap_path: str | None = None
    name: str = "worker"
    executor: Executor = field(default_factory=LocalExecutor)
    egress: str | None = None
    """the source address this worker is pinned to (``rio worker --egress``), if any"""
    clock: Clock = field(default_factory=SystemClock)


def _answer(body: Any, outcome: str, error: str) -> dict[str, Any]:
    permit = body.get("permit", {}) if isinstance(body, dict) else {}
    probe = str(permit.get("probe", "?")) if isinstance(permit, dict) else "?"
    ip = str(permit.get("ip", "?")) if isinstance(permit, dict) else "?"
    return result_to_json(ProbeResult(probe=probe, ip=ip, outcome=outcome, error=error))


def _refuse(deps: WorkerDeps, doc: Any, task_id: str, why: str) -> dict[str, Any]:
    body = doc.get("body") if isinstance(doc, dict) else None
    permit = body.get("permit", {}) if isinstance(body, dict) else {}
    entry = {
        "at": deps.clock.now().isoformat(),
        "worker": deps.name,
        "task": task_id,
        "run": permit.get("run") if isinstance(permit, dict) else None,
        "intent": permit.get("decision") if isinstance(permit, dict) else None,
        "why": why,
    }
    log.warning("refused a permit: %s", entry)
    deps.claims.note_refusal(entry)
    # The runner writes this into the run's outcome leaf: the refusal is in the ledger.
    return _answer(body, "error", f"worker {deps.name} {why}")


def _source_problem(wp: WirePermit, deps: WorkerDeps) -> str | None:
    """Why this worker must not send ``wp`` from where it stands, or ``None``.

    A probe leaves only from a source address its notice announced: a pinned worker sends only
    permits routed to its own egress, only if the notice announced that address, and only
    probes that bind their connections to it; an unpinned worker sends no permit that names a
    source.
    """
    source, probe = wp.ctx.source_address, wp.permit.probe
    if deps.egress is None:
        if source is not None:
            return f"it is for egress {source}; this worker is not pinned to one"
        return None
    if source != deps.egress:
        return f"it is for egress {source or 'none'}; this worker is pinned to {deps.egress}"
    if source not in wp.ctx.sources:
        announced = ", ".join(wp.ctx.sources) or "none"
        return f"source {source} is not announced by notice {wp.permit.notice_id} ({announced})"
    if not getattr(probe_class(probe), "binds_source", False):
        return f"the {probe} probe cannot bind its connections to the egress {source}"
    return None


async def handle_permit(doc: Any, task_id: str, deps: WorkerDeps) -> dict[str, Any]:
    """Act on one delivery of a wire permit; the answer is a probe result as JSON.

    Nothing is sent unless the tag and deadline verify, this delivery owns the permit's claim,
    and no kill for its run (or for the permit) was broadcast.
    """
    try:
        wp = open_permit(doc, key=deps.permit_key, now=deps.clock.now(), nmap_path=deps.nmap_path)
    except PermitWireError as exc:
        return _refuse(deps, doc, task_id, str(exc))
    permit = wp.permit
    wrong_source = _source_problem(wp, deps)
    if wrong_source is not None:
        return _refuse(deps, doc, task_id, f"permit refused: {wrong_source}")
    claim = deps.claims.claim(wp.key, task_id)
    if claim.seen is Seen.REPLAY:
        return _refuse(deps, doc, task_id, "permit refused: replayed (another delivery owns it)")
    if claim.seen is Seen.DONE and claim.result is not None:
        log.info("redelivered %s: answered from its stored outcome, not sent again", wp.key)
        return claim.result
    if claim.seen is Seen.IN_DOUBT:
        log.info("redelivered %s after its worker began sending: not sent again", wp.key)
        return _answer(doc["body"], "unknown", "worker lost while sending; not sent again")
    if deps.kills.killed(permit.run_id, wp.key):
        result = result_to_json(
            ProbeResult(probe=permit.probe, ip=permit.ip, outcome="killed", error="kill switch")
        )
        deps.claims.done(wp.key, result)
        return result
    started = time.monotonic()
    deps.claims.sending(wp.key)
    probe_result: ProbeResult | None = None
    outcome, error = "error", "no result"
    try:
        with deps.kills.flight(permit.run_id, wp.key):
            async with asyncio.timeout(max(0.0, permit.seconds_left())):
                probe_result = await deps.executor.execute(permit, wp.ctx, granted_at=wp.granted_at)
    except TimeoutError:
        outcome, error = "timeout", "stopped at the permit's deadline"
    except asyncio.CancelledError:
        outcome, error = "killed", "kill switch (broadcast)"
    except ProbeError as exc:
        outcome, error = exc.outcome, str(exc)
    if probe_result is None:
        probe_result = ProbeResult(
            probe=permit.probe,
            ip=permit.ip,
            outcome=outcome,
            error=error,
            started=started,
            elapsed=time.monotonic() - started,
        )
    answer = result_to_json(probe_result)
    deps.claims.done(wp.key, answer)
    return answer
