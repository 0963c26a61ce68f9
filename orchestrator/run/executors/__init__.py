"""Executors: where a permitted probe is sent from (one protocol, three implementations).

- :class:`LocalExecutor`: in the runner's process (the embedded default, ``RIO_EXECUTOR=local``);
- ``CeleryExecutor`` (``orchestrator.run.executors._celery``): on ``rio worker`` processes over a
  broker (``RIO_EXECUTOR=celery``); imported only when chosen, so Celery loads only where used;
- :class:`FakeExecutor`: scripted, for runner tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.run.executors._base import Executor
from orchestrator.run.executors._fake import FakeExecutor, Sent
from orchestrator.run.executors._local import LocalExecutor
from orchestrator.run.executors._wire import (
    PermitWireError,
    WirePermit,
    idempotency_key,
    open_permit,
    wire_permit,
)

if TYPE_CHECKING:
    from orchestrator.settings import Settings

__all__ = [
    "Executor",
    "FakeExecutor",
    "LocalExecutor",
    "PermitWireError",
    "Sent",
    "WirePermit",
    "executor_for",
    "idempotency_key",
    "open_permit",
    "wire_permit",
]


def executor_for(settings: Settings) -> Executor:
    """The executor ``RIO_EXECUTOR`` names."""
    if settings.executor == "celery":
        from orchestrator.run.executors._celery import CeleryExecutor

        return CeleryExecutor(settings)
    return LocalExecutor()
