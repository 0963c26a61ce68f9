"""Runs: the state machine and its one writer (lifecycle), the runner, leases, the scheduler.

Names resolve on first use (:mod:`orchestrator._facade`): importing the package loads nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator._facade import lazy_exports

if TYPE_CHECKING:
    from orchestrator.run.lease import RunLease, recover_crashed, runner_alive
    from orchestrator.run.lifecycle import RunLifecycle, abort_idle, adopt_logged_end
    from orchestrator.run.progress import Progress
    from orchestrator.run.runner import Runner
    from orchestrator.run.runs import create_run, get_run, list_runs, request_kill, run_launcher
    from orchestrator.run.scheduler import RioScheduler, ScheduledRun
    from orchestrator.run.state import (
        ACTIVE,
        ALLOWED,
        FINAL,
        PauseReason,
        RunState,
        check_transition,
        describe_state,
    )

__all__ = [
    "ACTIVE",
    "ALLOWED",
    "FINAL",
    "PauseReason",
    "Progress",
    "RioScheduler",
    "RunLease",
    "RunLifecycle",
    "RunState",
    "Runner",
    "ScheduledRun",
    "abort_idle",
    "adopt_logged_end",
    "check_transition",
    "create_run",
    "describe_state",
    "get_run",
    "list_runs",
    "recover_crashed",
    "request_kill",
    "run_launcher",
    "runner_alive",
]

_EXPORTS = {
    "ACTIVE": "orchestrator.run.state",
    "ALLOWED": "orchestrator.run.state",
    "FINAL": "orchestrator.run.state",
    "PauseReason": "orchestrator.run.state",
    "RunState": "orchestrator.run.state",
    "check_transition": "orchestrator.run.state",
    "describe_state": "orchestrator.run.state",
    "RunLifecycle": "orchestrator.run.lifecycle",
    "abort_idle": "orchestrator.run.lifecycle",
    "adopt_logged_end": "orchestrator.run.lifecycle",
    "create_run": "orchestrator.run.runs",
    "get_run": "orchestrator.run.runs",
    "list_runs": "orchestrator.run.runs",
    "request_kill": "orchestrator.run.runs",
    "run_launcher": "orchestrator.run.runs",
    "RunLease": "orchestrator.run.lease",
    "recover_crashed": "orchestrator.run.lease",
    "runner_alive": "orchestrator.run.lease",
    "Progress": "orchestrator.run.progress",
    "Runner": "orchestrator.run.runner",
    "RioScheduler": "orchestrator.run.scheduler",
    "ScheduledRun": "orchestrator.run.scheduler",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
