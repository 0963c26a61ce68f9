"""The transparency report (Art. 5, 7) as an operation: what the inspected object is told
about every probe that touched its announced networks, with inclusion proofs, built from the
closed run's archive exactly as ``rio report transparency ARCHIVE`` builds it offline."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.documents._format import Format
from orchestrator.errors import NotFoundError, StateError
from orchestrator.intake.registry import Person

__all__ = ["render_transparency_report", "transparency_report"]


def transparency_report(rio: Rio, person: Person, run_id: str, *, now: datetime) -> dict[str, Any]:
    """The transparency report of the run's inspected object (JSON-ready, with proofs).

    Raises:
        AccessDeniedError: The person may not read the run's ledger.
        NotFoundError: No such run.
        StateError: The run's record is not closed (no archive exists yet).
        VerificationError: The archive's final checkpoint or root does not verify.
    """
    from orchestrator.audit.transparency import build_transparency_report
    from orchestrator.intake.notices import get_notice
    from orchestrator.record.archive import export_archive
    from orchestrator.record.assemble import current_record
    from orchestrator.run.runs import get_run

    with rio.db.session() as s:
        authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
        object_id = get_notice(s, get_run(s, run_id).notice_id).object_id
    try:
        closed = current_record(rio.db, run_id).closed
    except NotFoundError:
        closed = False
    if not closed:
        raise StateError(
            f"run {run_id}: the record is not closed, so there is no archive to report from yet"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{run_id}.tar"
        export_archive(rio.db, run_id, out, signing_key=rio.signing_key, now=now)
        return build_transparency_report(out, object_id)


def render_transparency_report(report: dict[str, Any], fmt: Format) -> bytes:
    """The report as a page for people: HTML or PDF, Chinese and English, every value escaped.

    Raises:
        ToolError: PDF was asked for and cannot be laid out here.
    """
    from orchestrator.audit.transparency import render_html
    from orchestrator.documents._render import to_bytes

    return to_bytes(render_html(report), fmt)
