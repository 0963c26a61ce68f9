"""The access log as an operation: who read (or was refused) a run's evidence."""

from __future__ import annotations

from datetime import datetime

from orchestrator.access.evidence import AccessRecord, access_log
from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.intake.registry import Person

__all__ = ["read_access_log", "run_access_log"]


def run_access_log(rio: Rio, person: Person, run_id: str, *, now: datetime) -> list[AccessRecord]:
    """The run's access log, oldest first.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
        return access_log(s, run_id=run_id)


def read_access_log(
    rio: Rio,
    reader: Person,
    *,
    run_id: str | None = None,
    person: str | None = None,
    now: datetime,
) -> list[AccessRecord]:
    """The access log, oldest first: every entry, or one run's, or one person's.

    Raises:
        AccessDeniedError: The reader may not read ledgers (of that run, when one is given).
    """
    with rio.db.session() as s:
        authorize(s, reader, Action.READ_LEDGER, run_id=run_id, now=now)
        return access_log(s, person=person, run_id=run_id)
