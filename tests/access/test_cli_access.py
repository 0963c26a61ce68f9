"""The access commands prove identity from --key / RIO_KEY_FILE and leak no evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from orchestrator.errors import AccessDeniedError, StateError
from orchestrator.interfaces.cli_access import register
from tests.access.test_lab import SENTINEL, Lab, build_lab, copy_lab


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


@pytest.fixture
def app() -> typer.Typer:
    # A bare app with only these commands: other groups are other modules' business.
    root = typer.Typer(pretty_exceptions_enable=False)
    register(root)
    return root


def _run(app: typer.Typer, lab: Lab, who: str, *args: str) -> Result:
    env = {"RIO_HOME": str(lab.home), "RIO_KEY_FILE": str(lab.keys[who])}
    return CliRunner().invoke(app, list(args), env=env)


def test_evidence_show_prints_evidence_for_an_officer(app: typer.Typer, lab: Lab) -> None:
    fid = lab.findings[lab.run_a][0]
    result = _run(app, lab, "officer-a", "evidence", "show", fid, "--reason", "record")
    assert result.exit_code == 0, result.output
    assert (SENTINEL + fid.encode()).decode() in result.output


def test_evidence_show_refused_for_auditor_without_grant_then_allowed(
    app: typer.Typer, lab: Lab
) -> None:
    fid = lab.findings[lab.run_a][0]
    refused = _run(app, lab, "auditor-u", "evidence", "show", fid, "--reason", "audit")
    assert isinstance(refused.exception, AccessDeniedError)
    assert SENTINEL.decode() not in refused.output
    granted = _run(app, lab, "officer-a", "evidence", "grant", lab.run_a, "--auditor", "auditor-u")
    assert "auditor-u may read the evidence" in granted.output
    allowed = _run(app, lab, "auditor-u", "evidence", "show", fid, "--reason", "audit")
    assert SENTINEL.decode() in allowed.output


def test_claimed_identity_must_match_the_key(app: typer.Typer, lab: Lab) -> None:
    fid = lab.findings[lab.run_a][0]
    result = _run(app, lab, "tech-b", "evidence", "show", fid, "--reason", "x", "--as", "officer-a")
    assert isinstance(result.exception, AccessDeniedError)


def test_access_log_lists_refused_attempts_as_json(app: typer.Typer, lab: Lab) -> None:
    fid = lab.findings[lab.run_b][0]
    _run(app, lab, "tech-a", "evidence", "show", fid, "--reason", "peek")
    result = _run(app, lab, "auditor-u", "access", "log", "--run", lab.run_b, "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [(e["person"], e["allowed"]) for e in entries] == [("tech-a", False)]


def test_access_log_refused_to_a_technician_for_all_runs(app: typer.Typer, lab: Lab) -> None:
    result = _run(app, lab, "tech-a", "access", "log")
    assert isinstance(result.exception, AccessDeniedError)


def test_purge_command_refuses_an_open_run(app: typer.Typer, lab: Lab) -> None:
    result = _run(app, lab, "officer-a", "purge", "--before", "2026-09-05")
    assert isinstance(result.exception, StateError)
    assert lab.evidence_blob(lab.findings[lab.run_a][0]) is not None


def test_purge_command_shreds_a_closed_archived_run(
    app: typer.Typer, lab: Lab, tmp_path: Path
) -> None:
    archive = lab.write_archive(lab.run_a, lab.close_record(lab.run_a), tmp_path / "a.tar")
    result = _run(
        app, lab, "officer-a", "purge", "--before", "2026-09-05", "--archive", str(archive)
    )
    assert result.exit_code == 0, result.output
    assert "purged the evidence of 1 run created before" in result.output
    assert lab.evidence_blob(lab.findings[lab.run_a][0]) is None
