"""The record of a sealed run: what it holds, and that only a change makes a new version."""

from __future__ import annotations

import base64
import hashlib

import pytest

from orchestrator.errors import StateError
from orchestrator.ledger.log import read_checkpoints
from orchestrator.record.assemble import RECORD_FORMAT, assemble_record, ensure_record
from orchestrator.record.canonical import canonical_bytes
from orchestrator.store.models import RecordRow

from .conftest import POLICY, SCOPE, Lab, add_sealed_run


def test_record_holds_notice_hashes_counts_checkpoint_and_findings(lab: Lab) -> None:
    record = assemble_record(
        lab.rio.db, lab.run_id, checkpoint_key=lab.rio.verify_key, now=lab.rio.clock.now()
    )
    doc = record.document()
    assert doc["format"] == RECORD_FORMAT
    assert doc["run"] == lab.run_id
    assert doc["version"] == 1
    assert doc["notice"]["id"] == lab.notice_id
    assert doc["notice"]["scope_sha256"] == hashlib.sha256(SCOPE.read_bytes()).hexdigest()
    assert doc["notice"]["policy_sha256"] == hashlib.sha256(POLICY.read_bytes()).hexdigest()
    assert doc["object"]["id"] == "demo-isp"
    assert doc["vendor"] == {"name": "acme-sec", "organisation": "Acme Security Ltd"}
    assert doc["technicians"] == ["tech-t"]
    assert doc["span"] == {
        "start": "2026-09-02T02:00:00.000000000Z",
        "end": "2026-09-02T02:00:06.000000000Z",
    }
    assert doc["counts"]["leaves"] == 7
    assert doc["counts"]["intents"] == 2
    assert doc["counts"]["refusals"] == 1
    assert doc["counts"]["outcomes"] == {"ok": 2}
    final = read_checkpoints(lab.rio.db, lab.run_id)[-1]
    assert doc["ledger"]["size"] == final.size == 7
    assert base64.b64decode(doc["ledger"]["root"]) == final.root
    assert doc["ledger"]["checkpoint"] == final.note
    assert [f["id"] for f in doc["findings"]] == lab.findings[lab.run_id]
    assert all(len(f["digest"]) == 64 for f in doc["findings"])
    assert len(doc["conclusions"]["risks"]) == 2
    assert doc["signoff"] == {"officers": 2, "technicians": 1}


def test_record_body_is_its_own_canonical_form(lab: Lab) -> None:
    record = assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    assert canonical_bytes(record.document()) == record.body


def test_assembling_an_unchanged_record_keeps_its_version(lab: Lab) -> None:
    first = assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    again = assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    assert again.version == first.version == 1
    assert again.body == first.body
    assert ensure_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now()).version == 1


def test_record_refused_for_a_run_that_is_not_sealed(lab: Lab) -> None:
    add_sealed_run(lab, "R-20260903-c3", [("RIO-PORT-TELNET", 23)], state="completed")
    with pytest.raises(StateError, match="completed: a record can be assembled only for a sealed"):
        assemble_record(lab.rio.db, "R-20260903-c3", now=lab.rio.clock.now())
    with lab.rio.db.session() as s:
        assert s.get(RecordRow, ("R-20260903-c3", 1)) is None
