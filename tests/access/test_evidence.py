"""Evidence stays confidential: encrypted, authorised, logged at every attempt, never leaked."""

from __future__ import annotations

import base64
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from orchestrator.access.evidence import access_log, grant_evidence, read_evidence
from orchestrator.context import Rio
from orchestrator.errors import (
    AccessDeniedError,
    DecryptionError,
    InputError,
    RioError,
    StoreError,
)
from orchestrator.intake.notices import announce
from orchestrator.run.runs import create_run
from orchestrator.settings import load_settings
from orchestrator.store.evidence import rotate_master
from orchestrator.store.models import AccessEntry
from tests.access.test_lab import (
    ANNOUNCED_AT,
    POLICY,
    RUN_A_AT,
    SCOPE,
    SENTINEL,
    VENDOR_A,
    Lab,
    _seal_findings,
    build_lab,
    copy_lab,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    built = build_lab(tmp_path_factory.mktemp("template"))
    built.rio.close()
    return built


@pytest.fixture
def lab(template: Lab, tmp_path: Path) -> Iterator[Lab]:
    built = copy_lab(template, tmp_path)
    try:
        yield built
    finally:
        built.rio.close()


def _assert_no_leak(exc: BaseException, caplog: pytest.LogCaptureFixture, *secrets: bytes) -> None:
    # Plain and with every frame's locals (as a "show locals" traceback printer would).
    with_locals = traceback.TracebackException.from_exception(exc, capture_locals=True)
    text = "".join(traceback.format_exception(exc)) + "".join(with_locals.format()) + caplog.text
    for secret in (SENTINEL, *secrets):
        assert secret.decode("latin-1") not in text
        assert base64.b64encode(secret).decode() not in text
        assert secret.hex() not in text


def test_officer_reads_evidence_and_the_read_is_logged(lab: Lab) -> None:
    fid = lab.findings[lab.run_a][0]
    data = read_evidence(lab.rio, lab.login("officer-a"), fid, reason="prepare the record")
    assert data == SENTINEL + fid.encode()
    with lab.rio.db.session() as s:
        [entry] = access_log(s, person="officer-a")
    assert (entry.action, entry.run_id, entry.subject, entry.allowed) == (
        "read_evidence",
        lab.run_a,
        f"finding {fid}",
        True,
    )
    assert entry.reason == "prepare the record"


def test_reason_is_required(lab: Lab) -> None:
    with pytest.raises(InputError, match="reason"):
        read_evidence(lab.rio, lab.login("officer-a"), lab.findings[lab.run_a][0], reason="  ")


def test_technician_of_vendor_a_cannot_read_vendor_b_evidence_and_is_logged(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fid = lab.findings[lab.run_b][0]
    with pytest.raises(AccessDeniedError, match="tech-a .*not entrusted") as info:
        read_evidence(lab.rio, lab.login("tech-a"), fid, reason="curious")
    _assert_no_leak(info.value, caplog)
    with lab.rio.db.session() as s:
        [entry] = access_log(s, run_id=lab.run_b)
    assert (entry.person, entry.allowed) == ("tech-a", False)
    # Their own vendor's evidence they may read.
    own = lab.findings[lab.run_a][0]
    assert (
        read_evidence(lab.rio, lab.login("tech-a"), own, reason="co-sign")
        == SENTINEL + own.encode()
    )


def test_auditor_without_grant_refused_and_attempt_logged(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fid = lab.findings[lab.run_a][0]
    with pytest.raises(AccessDeniedError, match="no grant in force") as info:
        read_evidence(lab.rio, lab.login("auditor-u"), fid, reason="audit 2026-Q3")
    _assert_no_leak(info.value, caplog)
    with lab.rio.db.session() as s:
        entries = access_log(s, person="auditor-u")
    assert [(e.action, e.run_id, e.allowed) for e in entries] == [
        ("read_evidence", lab.run_a, False)
    ]
    assert entries[0].reason.startswith("audit 2026-Q3 [refused:")


def test_auditor_with_grant_reads_that_run_only(lab: Lab) -> None:
    auditor = lab.login("auditor-u")
    info = grant_evidence(lab.rio, lab.login("officer-b"), "auditor-u", lab.run_a)
    assert info.created
    fid = lab.findings[lab.run_a][1]
    assert read_evidence(lab.rio, auditor, fid, reason="audit") == SENTINEL + fid.encode()
    with pytest.raises(AccessDeniedError):
        read_evidence(lab.rio, auditor, lab.findings[lab.run_b][0], reason="audit")
    again = grant_evidence(lab.rio, lab.login("officer-b"), "auditor-u", lab.run_a)
    assert not again.created


def test_only_officers_grant_and_only_to_auditors(lab: Lab) -> None:
    with pytest.raises(AccessDeniedError, match="tech-a"):
        grant_evidence(lab.rio, lab.login("tech-a"), "auditor-u", lab.run_a)
    with pytest.raises(InputError, match="grants are for auditors"):
        grant_evidence(lab.rio, lab.login("officer-a"), "admin-m", lab.run_a)
    with lab.rio.db.session() as s:
        refused = [e for e in access_log(s, person="tech-a") if not e.allowed]
    assert [e.action for e in refused] == ["grant_evidence"]


def test_administrator_cannot_read_evidence(lab: Lab) -> None:
    with pytest.raises(AccessDeniedError, match=r"admin-m \(admin\)"):
        read_evidence(lab.rio, lab.login("admin-m"), lab.findings[lab.run_a][0], reason="x")


def test_wrong_master_key_refused_without_leak(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = os.urandom(32)
    other = Rio(
        load_settings(
            {"RIO_HOME": str(lab.home), "RIO_MASTER_KEY": base64.b64encode(wrong).decode()}
        )
    )
    try:
        with pytest.raises(DecryptionError, match="wrong master key") as info:
            read_evidence(other, lab.login("officer-a"), lab.findings[lab.run_a][0], reason="x")
    finally:
        other.close()
    _assert_no_leak(info.value, caplog, wrong, lab.rio.master_key.key)


def test_tampered_ciphertext_refused_without_leak(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fid = lab.findings[lab.run_a][0]
    blob = bytearray(lab.evidence_blob(fid) or b"")
    blob[-1] ^= 0x01
    lab.set_evidence_blob(fid, bytes(blob))
    with pytest.raises(DecryptionError, match=f"row {fid}: cannot decrypt") as info:
        read_evidence(lab.rio, lab.login("officer-a"), fid, reason="x")
    _assert_no_leak(info.value, caplog, lab.rio.master_key.key)


def test_ciphertext_moved_between_rows_refused(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    first, second = lab.findings[lab.run_a]
    lab.set_evidence_blob(second, lab.evidence_blob(first))
    with pytest.raises(DecryptionError, match="moved from another") as info:
        read_evidence(lab.rio, lab.login("officer-a"), second, reason="x")
    _assert_no_leak(info.value, caplog)
    # The original row still opens: the blob is bound to its own place only.
    assert (
        read_evidence(lab.rio, lab.login("officer-a"), first, reason="x")
        == SENTINEL + first.encode()
    )


def test_master_rotation_keeps_every_evidence_readable(lab: Lab, tmp_path: Path) -> None:
    new_file = tmp_path / "master-2.key"
    assert rotate_master(lab.rio, new_file) == 2
    rotated = Rio(load_settings({"RIO_HOME": str(lab.home), "RIO_MASTER_KEY_FILE": str(new_file)}))
    officer = lab.login("officer-a")
    try:
        for ids in lab.findings.values():
            for fid in ids:
                assert read_evidence(rotated, officer, fid, reason="x") == SENTINEL + fid.encode()
    finally:
        rotated.close()
    with pytest.raises(DecryptionError, match="wrong master key"):
        read_evidence(lab.rio, officer, lab.findings[lab.run_a][0], reason="x")


def test_unknown_finding_attempt_logged(lab: Lab) -> None:
    with pytest.raises(RioError, match="F-404"):
        read_evidence(lab.rio, lab.login("officer-a"), "F-404", reason="x")
    with lab.rio.db.session() as s:
        [entry] = access_log(s)
    assert (entry.subject, entry.allowed) == ("finding F-404", False)


def test_access_log_is_append_only(lab: Lab) -> None:
    read_evidence(lab.rio, lab.login("officer-a"), lab.findings[lab.run_a][0], reason="x")
    with pytest.raises(StoreError, match="append-only"), lab.rio.db.session() as s:
        s.execute(update(AccessEntry).values(allowed=False))


def test_leak_check_itself_catches_a_leak(caplog: pytest.LogCaptureFixture) -> None:
    # Guards the guard: the no-leak assertion above must fail when the sentinel is present.
    def leaky() -> None:
        evidence = SENTINEL  # only a captured local, not in the message
        raise DecryptionError(f"cannot decrypt {len(evidence)} bytes")

    with pytest.raises(DecryptionError) as info:
        leaky()
    with pytest.raises(AssertionError):
        _assert_no_leak(info.value, caplog)


def test_auditor_grant_ends_when_it_expires_or_is_revoked(lab: Lab) -> None:
    from datetime import UTC, datetime, timedelta

    from orchestrator.access.evidence import revoke_evidence_grant

    auditor = lab.login("auditor-u")
    officer = lab.login("officer-b")
    fid = lab.findings[lab.run_a][1]
    past = datetime.now(UTC) - timedelta(days=2)
    grant_evidence(
        lab.rio, officer, "auditor-u", lab.run_a, now=past, expires_at=past + timedelta(days=1)
    )
    with pytest.raises(AccessDeniedError, match="no grant in force"):
        read_evidence(lab.rio, auditor, fid, reason="expired grant")
    grant_evidence(lab.rio, officer, "auditor-u", lab.run_a)
    assert read_evidence(lab.rio, auditor, fid, reason="fresh grant") == SENTINEL + fid.encode()
    assert revoke_evidence_grant(lab.rio, officer, "auditor-u", lab.run_a) == 1
    with pytest.raises(AccessDeniedError, match="no grant in force"):
        read_evidence(lab.rio, auditor, fid, reason="after revocation")
    with pytest.raises(AccessDeniedError):
        revoke_evidence_grant(lab.rio, auditor, "auditor-u", lab.run_a)


# -- Art. 17: the technician's access is a policy setting ----------------------------------------


def test_technician_reads_own_evidence_only_while_the_run_is_open_by_default(lab: Lab) -> None:
    fid = lab.findings[lab.run_a][0]
    tech = lab.login("tech-a")
    assert read_evidence(lab.rio, tech, fid, reason="check before co-signing")
    lab.close_record(lab.run_a)
    with pytest.raises(AccessDeniedError, match="only while the run is open"):
        read_evidence(lab.rio, tech, fid, reason="after closure")
    with lab.rio.db.session() as s:
        entries = access_log(s, person="tech-a", run_id=lab.run_a)
    assert [e.allowed for e in entries] == [True, False]
    # Officers still read it.
    assert read_evidence(lab.rio, lab.login("officer-a"), fid, reason="rectification")


def _run_under(lab: Lab, setting: str) -> tuple[str, str]:
    """A run of vendor A under a policy with ``evidence: {technician: setting}``, its finding."""
    policy = POLICY.read_bytes() + f"\nevidence:\n  technician: {setting}\n".encode()
    with lab.rio.db.session() as s:
        notice = announce(
            s,
            scope_bytes=SCOPE.read_bytes(),
            scope_name="scopes/demo-loopback.yaml",
            policy_bytes=policy,
            policy_name=f"evidence-{setting}.yaml",
            vendor=VENDOR_A,
            now=ANNOUNCED_AT,
        ).id
        run = create_run(s, notice, "tech-a", now=RUN_A_AT).id
    return run, _seal_findings(lab.rio, run, 1)[0]


def test_policy_can_keep_every_technician_from_evidence(lab: Lab) -> None:
    _, fid = _run_under(lab, "never")
    with pytest.raises(AccessDeniedError, match=r"evidence.technician: never"):
        read_evidence(lab.rio, lab.login("tech-a"), fid, reason="curious")
    with lab.rio.db.session() as s:
        [entry] = access_log(s, person="tech-a")
    assert not entry.allowed


def test_policy_can_let_the_technician_read_after_closure(lab: Lab) -> None:
    run, fid = _run_under(lab, "always")
    lab.close_record(run)
    assert read_evidence(lab.rio, lab.login("tech-a"), fid, reason="vendor retention")


def test_default_policies_say_while_open() -> None:
    from orchestrator.intake.policy import TechnicianEvidence, load_policy

    for path in sorted((POLICY.parent).glob("*.yaml")):
        assert load_policy(path)[0].evidence.technician is TechnicianEvidence.WHILE_OPEN
