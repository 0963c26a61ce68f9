"""The access log as an operation: who read (or was refused) a run's evidence."""

from __future__ import annotations

from datetime import datetime

from orchestrator.access.evidence import AccessRecord, access_log
from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.intake.registry import Person

__all__ = ["run_access_log"]


def run_access_log(rio: Rio, person: Person, run_id: str, *, now: datetime) -> list[AccessRecord]:
    """The run's access log, oldest first.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
        return access_log(s, run_id=run_id)
