"""Audit as operations: verify a run's archive, verify an uploaded archive."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from orchestrator.access.roles import Action, authorize
from orchestrator.audit import AuditReport
from orchestrator.audit.verify import verify_archive
from orchestrator.context import Rio
from orchestrator.errors import StateError
from orchestrator.intake.registry import Person
from orchestrator.record.archive import export_archive
from orchestrator.store.models import RecordRow

__all__ = ["verify_run_archive", "verify_uploaded_archive"]

MAX_UPLOAD = 256 * 1024 * 1024
"""The largest archive the API verifies (bytes)."""


def verify_run_archive(rio: Rio, person: Person, run_id: str, *, now: datetime) -> AuditReport:
    """Export the closed run's archive and verify it offline, pinned to this home's key.

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        StateError: The run's record is not closed (no archive exists yet).
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
        closed = s.scalar(
            select(RecordRow.closed_at).where(
                RecordRow.run_id == run_id, RecordRow.closed_at.is_not(None)
            )
        )
    if closed is None:
        raise StateError(f"run {run_id}: the record is not closed, so there is no archive yet")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{run_id}.tar"
        export_archive(rio.db, run_id, out, signing_key=rio.signing_key)
        return verify_archive(out, trusted_key_id=rio.signing_key_id)


def verify_uploaded_archive(rio: Rio, person: Person, data: bytes, *, now: datetime) -> AuditReport:
    """Verify an archive someone brings, pinned to this home's orchestrator key.

    Raises:
        AccessDeniedError: The person may not read ledgers (auditors and officers may).
    """
    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, now=now)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "uploaded.tar"
        path.write_bytes(data)
        return verify_archive(path, trusted_key_id=rio.signing_key_id)
