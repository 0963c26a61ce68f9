"""Findings are read, compared and exported only by those who may read the run; evidence only
with a reason, through the logged evidence read."""

from __future__ import annotations

import json

import pytest

from orchestrator.access.evidence import access_log
from orchestrator.access.findings import diff_runs, export_findings, run_findings
from orchestrator.errors import AccessDeniedError
from tests.access.test_lab import SENTINEL, Lab


def test_export_without_a_reason_holds_no_evidence_and_reads_none(lab: Lab) -> None:
    data = export_findings(lab.rio, lab.login("officer-a"), lab.run_a, "json")
    assert SENTINEL not in data
    doc = json.loads(data)
    assert [f["id"] for f in doc["findings"]] == lab.findings[lab.run_a]
    assert all(f["evidence"] is True for f in doc["findings"])
    with lab.rio.db.session() as s:
        assert access_log(s, person="officer-a") == []


def test_export_with_a_reason_includes_evidence_and_logs_each_read(lab: Lab) -> None:
    data = export_findings(
        lab.rio, lab.login("officer-a"), lab.run_a, "html", evidence_reason="report to the organ"
    )
    assert SENTINEL in data
    with lab.rio.db.session() as s:
        entries = access_log(s, person="officer-a")
    assert sorted(e.subject for e in entries) == sorted(
        f"finding {fid}" for fid in lab.findings[lab.run_a]
    )
    assert all(e.allowed and e.reason == "report to the organ" for e in entries)


def test_auditor_without_grant_lists_findings_but_export_with_evidence_is_refused_and_logged(
    lab: Lab,
) -> None:
    auditor = lab.login("auditor-u")
    assert [f.id for f in run_findings(lab.rio, auditor, lab.run_a)] == lab.findings[lab.run_a]
    with pytest.raises(AccessDeniedError, match="no grant in force"):
        export_findings(lab.rio, auditor, lab.run_a, "sarif", evidence_reason="audit")
    with lab.rio.db.session() as s:
        entries = access_log(s, person="auditor-u")
    assert [(e.action, e.allowed) for e in entries] == [("read_evidence", False)]


def test_technician_of_another_vendor_can_neither_list_nor_diff_the_run(lab: Lab) -> None:
    tech = lab.login("tech-a")
    with pytest.raises(AccessDeniedError):
        run_findings(lab.rio, tech, lab.run_b)
    with pytest.raises(AccessDeniedError):
        diff_runs(lab.rio, tech, lab.run_a, lab.run_b)
