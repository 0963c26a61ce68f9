"""Reading a record stores nothing (issue #14: read paths never write). A sealed run with no record
stored yet is shown as the version 1 its first signature will store, byte for byte, so a
signature made over what the reader was shown (in their browser, say) verifies."""

from __future__ import annotations

from sqlalchemy import func, select

from orchestrator.intake import registry
from orchestrator.intake.registry import Person
from orchestrator.record.dsse import Ed25519Signer, sign_payload
from orchestrator.services.records import submit_signature, view_record
from orchestrator.store.models import RecordRow

from .conftest import Lab


def _records(lab: Lab) -> int:
    with lab.rio.db.session() as s:
        return int(
            s.scalar(
                select(func.count()).select_from(RecordRow).where(RecordRow.run_id == lab.run_id)
            )
            or 0
        )


def _person(lab: Lab, name: str) -> Person:
    with lab.rio.db.session() as s:
        return registry.get_person(s, name)


def test_viewing_a_record_twice_stores_nothing_and_shows_the_same_bytes(lab: Lab) -> None:
    auditor, now = _person(lab, "auditor-u"), lab.rio.clock.now()
    assert _records(lab) == 0
    first = view_record(lab.rio, auditor, lab.run_id, now=now)
    again = view_record(lab.rio, auditor, lab.run_id, now=now)
    assert _records(lab) == 0
    assert first.version == 1 and first.payload == again.payload
    assert first.signatures == () and not first.status
    assert first.document["version"] == 1 and first.closed_at is None


def test_a_signature_over_the_viewed_version_verifies_when_it_is_stored(lab: Lab) -> None:
    officer, now = _person(lab, "officer-a"), lab.rio.clock.now()
    shown = view_record(lab.rio, officer, lab.run_id, now=now)
    signer = Ed25519Signer.from_file(lab.key_files["officer-a"][0])
    info = submit_signature(
        lab.rio,
        officer,
        lab.run_id,
        sign_payload(shown.payload_type, shown.payload, signer),
        version=shown.version,
        now=now,
    )
    assert info.version == 1 and _records(lab) == 1
    stored = view_record(lab.rio, officer, lab.run_id, now=now)
    assert stored.payload == shown.payload
    assert [s.person for s in stored.signatures] == ["officer-a"]
