"""``rio worker``: Celery worker processes that send probes on wire permits.

A worker verifies each permit's tag and deadline (``run.executors._wire``), claims it in the shared
claim store so a permit is sent at most once across all workers (``_claims``), listens for the kill
broadcast (``_kill``), and answers on Redis. It decides nothing: no permit, no packet.
"""

from __future__ import annotations

from orchestrator.run.executors._broker import PROBE_TASK, celery_app, publish_kill
from orchestrator.workers._app import check_egress, register_probe_task, worker_deps
from orchestrator.workers._claims import Claim, ClaimStore, Seen
from orchestrator.workers._handle import WorkerDeps, handle_permit
from orchestrator.workers._kill import KillListener

__all__ = [
    "PROBE_TASK",
    "Claim",
    "ClaimStore",
    "KillListener",
    "Seen",
    "WorkerDeps",
    "celery_app",
    "check_egress",
    "handle_permit",
    "publish_kill",
    "register_probe_task",
    "worker_deps",
]
