"""The run lifecycle, an explicit state machine.

::

    scheduled --> waiting --> running <--> paused
        |            |          |            |
        |            +--> missed|            |
        +---------------------->+--> completed --> sealed
        |            |          |            |
        +------------+----------+------------+--> aborted --> sealed

A call that does not fit the current state raises :class:`~orchestrator.errors.TransitionError`
(a :class:`~orchestrator.errors.StateError`) naming the run, its state and what was asked;
nothing is changed. :mod:`orchestrator.run.lifecycle` is the only code that moves a run.
"""

from __future__ import annotations

import enum

from orchestrator.errors import TransitionError

__all__ = [
    "ACTIVE",
    "ALLOWED",
    "FINAL",
    "PauseReason",
    "RunState",
    "check_transition",
    "describe_state",
]


class RunState(enum.StrEnum):
    SCHEDULED = "scheduled"
    """created; waits for its scheduled start"""
    WAITING = "waiting"
    """started, but outside every window (or before the lead time): waits for the next window"""
    RUNNING = "running"
    """probes are being sent"""
    PAUSED = "paused"
    """stopped for a while (window closed, targets unhealthy, operator); resumes later"""
    COMPLETED = "completed"
    """every planned probe was decided; the log is flushed"""
    ABORTED = "aborted"
    """killed by an operator; nothing more is sent"""
    MISSED = "missed"
    """every announced window passed before the run could start"""
    SEALED = "sealed"
    """the final checkpoint is signed; the record can be assembled"""


class PauseReason(enum.StrEnum):
    WINDOW = "window"
    """the window closed"""
    HEALTH = "health"
    """every remaining target is paused by the health breaker"""
    OPERATOR = "operator"
    """an operator paused the run"""
    CRASH = "crash"
    """the process stopped; found on restart"""
    STORE = "store"
    """the rate-budget store (Redis) failed: no probe could be granted; resume when it is back"""


ALLOWED: dict[RunState, frozenset[RunState]] = {
    RunState.SCHEDULED: frozenset(
        {RunState.WAITING, RunState.RUNNING, RunState.ABORTED, RunState.MISSED}
    ),
    RunState.WAITING: frozenset({RunState.RUNNING, RunState.ABORTED, RunState.MISSED}),
    RunState.RUNNING: frozenset({RunState.PAUSED, RunState.COMPLETED, RunState.ABORTED}),
    RunState.PAUSED: frozenset(
        {RunState.RUNNING, RunState.WAITING, RunState.ABORTED, RunState.MISSED}
    ),
    RunState.COMPLETED: frozenset({RunState.SEALED}),
    RunState.ABORTED: frozenset({RunState.SEALED}),
    RunState.MISSED: frozenset({RunState.SEALED}),
    RunState.SEALED: frozenset(),
}

ACTIVE = frozenset({RunState.RUNNING})
FINAL = frozenset({RunState.COMPLETED, RunState.ABORTED, RunState.MISSED, RunState.SEALED})


def check_transition(run_id: str, current: RunState, target: RunState) -> None:
    """Raise TransitionError unless ``current -> target`` is a transition of the machine."""
    if target not in ALLOWED[current]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED[current])) or "nothing (final)"
        raise TransitionError(
            f"run {run_id} is {current.value}: cannot become {target.value} (allowed: {allowed})"
        )


def describe_state(state: str, pause_reason: str | None) -> str:
    """A run's state in words: ``paused (crash)`` when a crash paused it, else the state."""
    if state == RunState.PAUSED.value and pause_reason == PauseReason.CRASH.value:
        return f"{state} ({pause_reason})"
    return state
