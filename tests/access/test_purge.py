"""Purge crypto-shreds evidence of closed, archived runs only; ledgers and records stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from orchestrator.access.evidence import access_log, read_evidence
from orchestrator.access.purge import purge
from orchestrator.errors import AccessDeniedError, NotFoundError, StateError, VerificationError
from orchestrator.store.models import RecordRow, RunKeyRow
from tests.access.test_lab import Lab, build_lab, copy_lab

BEFORE_B = date(2026, 9, 5)  # after run A (2026-09-02), before run B (2026-09-10)


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


def _untouched(lab: Lab, run_id: str) -> bool:
    with lab.rio.db.session() as s:
        has_key = s.get(RunKeyRow, run_id) is not None
    return has_key and all(lab.evidence_blob(f) is not None for f in lab.findings[run_id])


def test_purge_refuses_an_open_run_before_deleting_anything(lab: Lab) -> None:
    with pytest.raises(StateError, match=f"run {lab.run_a}: its record is not closed"):
        purge(lab.rio, lab.login("officer-a"), BEFORE_B)
    lab.close_record(lab.run_a, closed=False)
    with pytest.raises(StateError, match="nothing deleted"):
        purge(lab.rio, lab.login("officer-a"), BEFORE_B)
    assert _untouched(lab, lab.run_a)


def test_purge_refuses_a_closed_run_without_its_archive(lab: Lab) -> None:
    lab.close_record(lab.run_a)
    with pytest.raises(StateError, match="no archive given holds its closed record"):
        purge(lab.rio, lab.login("officer-a"), BEFORE_B)
    assert _untouched(lab, lab.run_a)


def test_purge_refuses_all_when_one_run_is_not_archived(lab: Lab, tmp_path: Path) -> None:
    record_a = lab.close_record(lab.run_a)
    archive_a = lab.write_archive(lab.run_a, record_a, tmp_path / "a.tar")
    with pytest.raises(StateError, match=f"run {lab.run_b}"):
        purge(lab.rio, lab.login("officer-a"), date(2026, 12, 1), archives=[archive_a])
    assert _untouched(lab, lab.run_a) and _untouched(lab, lab.run_b)


def test_purge_shreds_closed_archived_run_and_keeps_record(lab: Lab, tmp_path: Path) -> None:
    record_a = lab.close_record(lab.run_a)
    archive = lab.write_archive(lab.run_a, record_a, tmp_path / "a.tar")
    officer = lab.login("officer-a")
    assert purge(lab.rio, officer, BEFORE_B, archives=[archive]) == 1
    assert all(lab.evidence_blob(f) is None for f in lab.findings[lab.run_a])
    with lab.rio.db.session() as s:
        assert s.get(RunKeyRow, lab.run_a) is None
        assert s.scalar(select(RecordRow.body).where(RecordRow.run_id == lab.run_a)) == record_a
        entries = [e for e in access_log(s, run_id=lab.run_a) if e.action == "purge"]
    assert [e.allowed for e in entries] == [True]
    assert _untouched(lab, lab.run_b)  # created after the cutoff
    with pytest.raises(NotFoundError, match="purged"):
        read_evidence(lab.rio, officer, lab.findings[lab.run_a][0], reason="x")
    # Nothing left to purge: a second call is a no-op.
    assert purge(lab.rio, officer, BEFORE_B) == 0


def test_purge_refuses_a_tampered_archive(lab: Lab, tmp_path: Path) -> None:
    record_a = lab.close_record(lab.run_a)
    archive = lab.write_archive(lab.run_a, record_a, tmp_path / "a.tar", tamper=True)
    with pytest.raises(VerificationError, match="notice.json"):
        purge(lab.rio, lab.login("officer-a"), BEFORE_B, archives=[archive])
    assert _untouched(lab, lab.run_a)


def test_purge_refuses_an_archive_signed_by_another_key(lab: Lab, tmp_path: Path) -> None:
    record_a = lab.close_record(lab.run_a)
    archive = lab.write_archive(
        lab.run_a, record_a, tmp_path / "a.tar", signer=Ed25519PrivateKey.generate()
    )
    with pytest.raises(VerificationError, match="manifest.sig"):
        purge(lab.rio, lab.login("officer-a"), BEFORE_B, archives=[archive])


def test_purge_refuses_an_archive_of_another_run(lab: Lab, tmp_path: Path) -> None:
    record_a = lab.close_record(lab.run_a)
    archive = lab.write_archive(lab.run_a, record_a, tmp_path / "a.tar", manifest_run=lab.run_b)
    with pytest.raises(StateError, match=f"run {lab.run_a}: no archive"):
        purge(lab.rio, lab.login("officer-a"), BEFORE_B, archives=[archive])


def test_only_officers_purge_and_refusals_are_logged(lab: Lab, tmp_path: Path) -> None:
    record_a = lab.close_record(lab.run_a)
    archive = lab.write_archive(lab.run_a, record_a, tmp_path / "a.tar")
    for name in ("admin-m", "auditor-u", "tech-a"):
        with pytest.raises(AccessDeniedError, match=f"{name} .* may not purge"):
            purge(lab.rio, lab.login(name), BEFORE_B, archives=[archive])
    assert _untouched(lab, lab.run_a)
    with lab.rio.db.session() as s:
        refused = [(e.person, e.action) for e in access_log(s) if not e.allowed]
    assert refused == [("admin-m", "purge"), ("auditor-u", "purge"), ("tech-a", "purge")]
