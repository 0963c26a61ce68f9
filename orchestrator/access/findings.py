"""Reading a run's findings for a person: list, compare two runs, export.

Each function takes the acting person and authorises itself: reading findings is reading the
run's record (:attr:`~orchestrator.access.roles.Action.READ_LEDGER`: officers of the announcing
organ, the run's vendor's technicians, auditors). Evidence enters an export only when asked,
with a reason, through :func:`~orchestrator.access.evidence.read_evidence` (one logged read per
finding, refused reads included), so an export never discloses more than ``rio evidence show``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from orchestrator.access.evidence import read_evidence
from orchestrator.access.roles import Action, authorize
from orchestrator.errors import InputError, NotFoundError
from orchestrator.intake.notices import get_notice
from orchestrator.intake.registry import Person
from orchestrator.record.export import FORMATS, ExportContext, render
from orchestrator.record.findings import FindingDiff, FindingView, finding_diff, load_findings
from orchestrator.store.models import InspectedObjectRow, RunRow

if TYPE_CHECKING:
    from orchestrator.context import Rio

__all__ = ["diff_runs", "export_findings", "run_findings"]


def _readable_run(s: Session, person: Person, run_id: str, *, now: datetime) -> RunRow:
    run = s.get(RunRow, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id!r} is not known")
    authorize(s, person, Action.READ_LEDGER, run_id=run_id, now=now)
    return run


def run_findings(rio: Rio, person: Person, run_id: str) -> list[FindingView]:
    """The findings of ``run_id``, in the order they were first seen.

    Raises:
        NotFoundError: no such run.
        AccessDeniedError: ``person`` may not read the run.
    """
    with rio.db.session() as s:
        _readable_run(s, person, run_id, now=rio.clock.now())
        return load_findings(s, run_id)


def diff_runs(rio: Rio, person: Person, old_run: str, new_run: str) -> FindingDiff:
    """What ``new_run`` fixed, still found and newly found compared with ``old_run``.

    Raises:
        NotFoundError: either run is unknown.
        AccessDeniedError: ``person`` may not read one of the runs.
        InputError: the runs inspected different objects (their keys can never match), or
            the same run is named twice.
    """
    if old_run == new_run:
        raise InputError(f"findings diff: run {old_run} is named twice; name two runs")
    now = rio.clock.now()
    with rio.db.session() as s:
        objects = [
            get_notice(s, _readable_run(s, person, run_id, now=now).notice_id).object_id
            for run_id in (old_run, new_run)
        ]
        if objects[0] != objects[1]:
            raise InputError(
                f"findings diff: run {old_run} inspected {objects[0]!r} and run {new_run} "
                f"inspected {objects[1]!r}; only runs of one object can be compared"
            )
        return finding_diff(load_findings(s, old_run), load_findings(s, new_run))


def export_findings(
    rio: Rio,
    person: Person,
    run_id: str,
    fmt: str,
    *,
    evidence_reason: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """The findings of ``run_id`` as ``json``, ``csv``, ``sarif`` or ``html``.

    Args:
        rio: the opened home.
        person: who exports.
        run_id: the run.
        fmt: one of :data:`~orchestrator.record.export.FORMATS`.
        evidence_reason: when given, each finding's evidence is read (and logged) with this
            reason and included; a refused read stops the export.
        now: the report's time (default: the app's clock).

    Raises:
        InputError: unknown format, or an empty reason.
        NotFoundError: no such run.
        AccessDeniedError: ``person`` may not read the run (or, with ``evidence_reason``, its
            evidence; the attempt is logged).
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    now = now or rio.clock.now()
    with rio.db.session() as s:
        run = _readable_run(s, person, run_id, now=now)
        notice = get_notice(s, run.notice_id)
        obj = s.get(InspectedObjectRow, notice.object_id)
        ctx = ExportContext(
            run_id=run.id,
            notice_id=notice.id,
            object_id=notice.object_id,
            object_name=obj.name if obj is not None else notice.object_id,
            state=run.state,
            generated_at=now.isoformat(),
        )
        findings = load_findings(s, run_id)
    evidence: dict[str, str] = {}
    if evidence_reason is not None:
        for f in findings:
            if f.has_evidence:
                data = read_evidence(rio, person, f.id, reason=evidence_reason)
                evidence[f.id] = data.decode("utf-8", errors="replace")
    return render(fmt, ctx, findings, evidence)
