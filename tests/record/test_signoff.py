"""Art. 18: closing needs valid signatures of >= 2 distinct officers (+ a technician)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from orchestrator.errors import (
    AccessDeniedError,
    ClosureRefusedError,
    ConflictError,
    InputError,
    PolicyFileError,
    StateError,
    VerificationError,
)
from orchestrator.intake import registry
from orchestrator.intake.notices import Notice, announce
from orchestrator.intake.policy import parse_policy
from orchestrator.record.assemble import assemble_record, current_record
from orchestrator.record.dsse import PAYLOAD_TYPE, sign_payload
from orchestrator.record.rectify import order_rectification
from orchestrator.record.signoff import (
    TimedSignature,
    add_record_signature,
    close,
    sign_record,
    signoff_status,
)
from orchestrator.record.workdays import WorkingCalendar
from orchestrator.store.models import SignatureRow

from .conftest import POLICY, SCOPE, Lab, add_sealed_run


def _sign(lab: Lab, name: str, index: int = 0, run_id: str | None = None) -> None:
    sign_record(
        lab.rio.db,
        run_id or lab.run_id,
        name=name,
        signer=lab.signer(name, index),
        now=lab.rio.clock.now(),
    )


def _insert_signature(
    lab: Lab, run_id: str, payload: bytes, name: str, signed_at: datetime
) -> None:
    """Store a signature row directly, as a tampered or imported database would hold it."""
    version = current_record(lab.rio.db, run_id).version
    signature = sign_payload(PAYLOAD_TYPE, payload, lab.signer(name))
    with lab.rio.db.session() as s:
        s.add(
            SignatureRow(
                run_id=run_id,
                version=version,
                key_id=signature.keyid,
                sig=signature.sig,
                signed_at=signed_at,
            )
        )


@pytest.fixture
def record(lab: Lab) -> bytes:
    return assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now()).body


def test_closure_succeeds_with_two_officers_and_a_technician(lab: Lab, record: bytes) -> None:
    for name in ("officer-a", "officer-b", "tech-t"):
        _sign(lab, name)
    result = close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    assert result
    assert result.officers_signed == ("officer-a", "officer-b")
    assert result.technicians_signed == ("tech-t",)
    assert current_record(lab.rio.db, lab.run_id).closed


def test_closure_refused_when_one_officer_signs_twice_with_two_keys(
    lab: Lab, record: bytes
) -> None:
    _sign(lab, "officer-a", 0)
    _sign(lab, "officer-a", 1)
    _sign(lab, "tech-t")
    status = signoff_status(lab.rio.db, lab.run_id)
    assert not status
    assert status.officers_signed == ("officer-a",)
    assert status.missing == ("1 more officer",)
    with pytest.raises(ClosureRefusedError, match="1 more officer"):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    assert not current_record(lab.rio.db, lab.run_id).closed


def test_closure_refused_when_a_technician_signs_as_officer(lab: Lab, record: bytes) -> None:
    # The technician's key is not registered to the officer: the signature is refused.
    with pytest.raises(AccessDeniedError, match="not registered to officer-b"):
        sign_record(
            lab.rio.db,
            lab.run_id,
            name="officer-b",
            signer=lab.signer("tech-t"),
            now=lab.rio.clock.now(),
        )
    _sign(lab, "officer-a")
    _sign(lab, "tech-t")
    # A technician's own valid signature never counts as an officer's.
    status = signoff_status(lab.rio.db, lab.run_id)
    assert status.officers_signed == ("officer-a",)
    assert status.technicians_signed == ("tech-t",)
    with pytest.raises(ClosureRefusedError, match="officer"):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_closure_refused_with_one_officer_and_one_technician(lab: Lab, record: bytes) -> None:
    _sign(lab, "officer-a")
    _sign(lab, "tech-t")
    with pytest.raises(ClosureRefusedError, match="needs 1 more officer"):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_closure_refused_when_record_is_edited_after_the_first_signature(
    lab: Lab, record: bytes
) -> None:
    _sign(lab, "officer-a")
    # Ordering rectification edits the record's conclusions: version 2.
    order_rectification(
        lab.rio.db,
        lab.run_id,
        [lab.findings[lab.run_id][0]],
        calendar=WorkingCalendar(),
        deadline=datetime(2026, 12, 15).date(),
        now=datetime(2026, 11, 30, 2, tzinfo=UTC),
    )
    assert current_record(lab.rio.db, lab.run_id).version == 2
    _sign(lab, "officer-b")
    _sign(lab, "tech-t")
    status = signoff_status(lab.rio.db, lab.run_id)
    assert status.version == 2
    assert status.officers_signed == ("officer-b",)
    assert any("earlier versions are void" in note for note in status.ignored)
    with pytest.raises(ClosureRefusedError):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    # Signing the new version again is what makes it count.
    _sign(lab, "officer-a")
    assert close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_signing_refused_when_the_reviewed_version_is_not_current(lab: Lab, record: bytes) -> None:
    with pytest.raises(StateError, match="now version 1, not 7"):
        sign_record(
            lab.rio.db,
            lab.run_id,
            name="officer-a",
            signer=lab.signer("officer-a"),
            version=7,
            now=lab.rio.clock.now(),
        )


def test_closure_refused_when_the_key_was_revoked_before_signing(lab: Lab, record: bytes) -> None:
    revoked_at = datetime.now(UTC)
    with lab.rio.db.session() as s:
        registry.revoke_key(s, lab.key_id("officer-b"), when=revoked_at)
    with pytest.raises(AccessDeniedError, match="revoked"):
        _sign(lab, "officer-b")
    # Even a row that reached the database anyway does not count.
    _insert_signature(lab, lab.run_id, record, "officer-b", revoked_at + timedelta(seconds=1))
    _sign(lab, "officer-a")
    _sign(lab, "tech-t")
    status = signoff_status(lab.rio.db, lab.run_id)
    assert status.officers_signed == ("officer-a",)
    assert any("officer-b" in note and "revoked" in note for note in status.ignored)
    with pytest.raises(ClosureRefusedError):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_signature_made_before_key_revocation_still_counts(lab: Lab, record: bytes) -> None:
    for name in ("officer-a", "officer-b", "tech-t"):
        _sign(lab, name)
    with lab.rio.db.session() as s:
        registry.revoke_key(s, lab.key_id("officer-b"), when=datetime.now(UTC) + timedelta(1))
    assert close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_closure_refused_when_the_person_was_revoked_before_signing(
    lab: Lab, record: bytes
) -> None:
    with lab.rio.db.session() as s:
        registry.revoke_person(s, "officer-b", when=lab.rio.clock.now())
    with pytest.raises(AccessDeniedError, match="officer-b was revoked"):
        _sign(lab, "officer-b")


def test_signature_list_with_a_duplicate_key_id_is_rejected(lab: Lab, record: bytes) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    signatures = [
        TimedSignature(signature=sign_payload(PAYLOAD_TYPE, record, lab.signer(n)), signed_at=now)
        for n in ("officer-a", "officer-b", "tech-t", "officer-b")
    ]
    status = signoff_status(lab.rio.db, lab.run_id, signatures=signatures)
    assert not status
    assert "more than once" in status.why
    # Without the repeat the same list would be enough: the rejection is for the repeat.
    assert signoff_status(lab.rio.db, lab.run_id, signatures=signatures[:3])


def test_same_key_cannot_sign_the_same_version_twice(lab: Lab, record: bytes) -> None:
    _sign(lab, "officer-a")
    with pytest.raises(ConflictError, match="already signed"):
        _sign(lab, "officer-a")


def test_signature_over_another_runs_record_does_not_count(lab: Lab, record: bytes) -> None:
    add_sealed_run(lab, "R-20260903-b2", [("RIO-PORT-TELNET", 23)])
    other = assemble_record(lab.rio.db, "R-20260903-b2", now=lab.rio.clock.now()).body
    foreign = sign_payload(PAYLOAD_TYPE, other, lab.signer("officer-b"))
    with pytest.raises(VerificationError, match="does not verify"):
        add_record_signature(
            lab.rio.db, lab.run_id, name="officer-b", signature=foreign, now=lab.rio.clock.now()
        )
    _insert_signature(lab, lab.run_id, other, "officer-b", datetime.now(UTC))
    _sign(lab, "officer-a")
    _sign(lab, "tech-t")
    status = signoff_status(lab.rio.db, lab.run_id)
    assert status.officers_signed == ("officer-a",)
    assert any("does not verify" in note for note in status.ignored)
    with pytest.raises(ClosureRefusedError):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_policy_with_officer_threshold_below_two_is_refused_by_the_loader(lab: Lab) -> None:
    text = POLICY.read_text().replace("  officers: 2\n", "  officers: 1\n")
    assert "officers: 1" in text
    with pytest.raises(PolicyFileError, match=r"signoff\.officers.*two or more"):
        parse_policy(text.encode(), "weak.yaml")
    with lab.rio.db.session() as s, pytest.raises(PolicyFileError):
        announce(
            s,
            scope_bytes=SCOPE.read_bytes(),
            scope_name="scope.yaml",
            policy_bytes=text.encode(),
            policy_name="weak.yaml",
            vendor=None,
            now=lab.rio.clock.now(),
        )


def test_closure_refused_for_vendor_run_without_the_technicians_signature(
    lab: Lab, record: bytes
) -> None:
    for name in ("officer-a", "officer-b", "officer-c"):
        _sign(lab, name)
    with pytest.raises(ClosureRefusedError, match="technician of vendor acme-sec"):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def test_technician_of_another_vendor_cannot_sign(lab: Lab, record: bytes) -> None:
    with pytest.raises(AccessDeniedError, match="not of the vendor"):
        _sign(lab, "tech-other")


def test_admin_and_auditor_never_count(lab: Lab, record: bytes) -> None:
    with pytest.raises(AccessDeniedError, match="only officers and technicians"):
        _sign(lab, "admin-m")
    with pytest.raises(AccessDeniedError, match="only officers and technicians"):
        _sign(lab, "auditor-u")
    later = datetime.now(UTC) + timedelta(seconds=1)
    _insert_signature(lab, lab.run_id, record, "admin-m", later)
    _insert_signature(lab, lab.run_id, record, "auditor-u", later)
    _sign(lab, "officer-a")
    _sign(lab, "tech-t")
    status = signoff_status(lab.rio.db, lab.run_id)
    assert status.officers_signed == ("officer-a",)
    assert sum("never counts" in note for note in status.ignored) == 2
    assert not status


def test_run_without_vendor_closes_with_two_officers(lab_without_vendor: Lab) -> None:
    lab = lab_without_vendor
    assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    _sign(lab, "officer-a")
    _sign(lab, "officer-c")
    result = close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    assert result.threshold.technicians == 0
    assert result.threshold.vendor is None


def test_closed_record_is_final(lab: Lab, record: bytes) -> None:
    for name in ("officer-a", "officer-b", "tech-t"):
        _sign(lab, name)
    close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    with pytest.raises(StateError, match="closed"):
        _sign(lab, "officer-c")
    with pytest.raises(StateError, match="closed"):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    with pytest.raises(StateError, match="closed"):
        order_rectification(
            lab.rio.db,
            lab.run_id,
            [lab.findings[lab.run_id][0]],
            calendar=WorkingCalendar(),
            deadline=datetime(2026, 12, 15).date(),
            now=datetime(2026, 11, 30, 2, tzinfo=UTC),
        )
    assert current_record(lab.rio.db, lab.run_id).version == 1


def test_closure_refused_when_officer_of_other_organ_signs(lab: Lab, record: bytes) -> None:
    # officer-x (Other PSB) has a valid signature in the database: it must not count.
    now = datetime.now(UTC)
    for name in ("officer-a", "officer-x", "tech-t"):
        _insert_signature(lab, lab.run_id, record, name, now)
    status = signoff_status(lab.rio.db, lab.run_id)
    assert not status
    assert status.officers_signed == ("officer-a",)
    assert any(
        note.startswith("officer-x") and "officer of Other PSB, not of the organ(s)" in note
        for note in status.ignored
    ), status.ignored
    with pytest.raises(ClosureRefusedError, match="1 more officer"):
        close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    assert not current_record(lab.rio.db, lab.run_id).closed


def test_signing_refused_for_officer_of_organ_the_notice_does_not_name(
    lab: Lab, record: bytes
) -> None:
    with pytest.raises(AccessDeniedError, match="officer of Other PSB, not of an organ"):
        _sign(lab, "officer-x")


def _announce(lab: Lab, s: Session, **extra: Any) -> Notice:
    """Another notice of the lab's documents; ``extra`` says who announces and for which organs."""
    return announce(
        s,
        scope_bytes=SCOPE.read_bytes(),
        scope_name="scope.yaml",
        policy_bytes=POLICY.read_bytes(),
        policy_name="policy.yaml",
        vendor=lab.vendor,
        now=datetime(2026, 9, 1, tzinfo=UTC),
        **extra,
    )


def test_officer_of_co_inspecting_organ_counts(lab: Lab) -> None:
    with lab.rio.db.session() as s:
        announcer = registry.get_person(s, "officer-a")
        notice = _announce(lab, s, announced_by=announcer.id, co_inspecting=["Other PSB"])
    assert notice.organ == "PSB"
    assert notice.organs == {"PSB", "Other PSB"}
    assert notice.to_json()["co_inspecting"] == ["Other PSB"]
    lab.notice_id = notice.id
    add_sealed_run(lab, "R-20260902-co", [("RIO-PORT-TELNET", 23)])
    assemble_record(lab.rio.db, "R-20260902-co", now=lab.rio.clock.now())
    for name in ("officer-a", "officer-x", "tech-t"):
        _sign(lab, name, run_id="R-20260902-co")
    result = close(lab.rio.db, "R-20260902-co", now=lab.rio.clock.now())
    assert result.officers_signed == ("officer-a", "officer-x")


def test_notice_refuses_an_organ_other_than_its_announcers(lab: Lab) -> None:
    with lab.rio.db.session() as s, pytest.raises(InputError, match="cannot announce for"):
        _announce(lab, s, announced_by=registry.get_person(s, "officer-x").id, organ="PSB")


def test_no_officer_counts_on_a_notice_that_names_no_organ(lab: Lab) -> None:
    with lab.rio.db.session() as s:
        notice = _announce(lab, s)
    assert notice.organ is None
    lab.notice_id = notice.id
    add_sealed_run(lab, "R-20260902-no", [("RIO-PORT-TELNET", 23)])
    body = assemble_record(lab.rio.db, "R-20260902-no", now=lab.rio.clock.now()).body
    for name in ("officer-a", "officer-b", "tech-t"):
        _insert_signature(lab, "R-20260902-no", body, name, datetime.now(UTC))
    status = signoff_status(lab.rio.db, "R-20260902-no")
    assert not status
    assert any("names no announcing organ" in note for note in status.ignored)
