"""The ``rio audit`` and ``rio report`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from orchestrator.interfaces.cli_audit import register
from tests.audit import archive_builder as ab


def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _main() -> None:
        """rio"""

    register(root)
    return root


def test_verify_exits_zero_on_a_clean_archive_and_six_on_a_forged_one(tmp_path: Path) -> None:
    clean = ab.build_archive(tmp_path / "a.tar")
    result = CliRunner().invoke(app(), ["audit", "verify", str(clean), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    forged = ab.rewrite(clean, tmp_path / "f.tar", {"scope.yaml": ab.SCOPE_YAML + b"# edited\n"})
    result = CliRunner().invoke(app(), ["audit", "verify", str(forged)])
    assert result.exit_code == 6
    assert "FAIL documents" in result.output


def test_log_and_transparency_commands(tmp_path: Path) -> None:
    clean = ab.build_archive(tmp_path / "a.tar")
    result = CliRunner().invoke(app(), ["audit", "log", str(clean), "--refused", "--json"])
    assert result.exit_code == 0, result.output
    assert [e["kind"] for e in json.loads(result.output)["leaves"]] == ["refusal"]
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app(), ["report", "transparency", str(clean), "--object", "demo-isp", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Probes that touched your hosts (24)" in out.read_text()


def test_audit_package_exports_what_it_means_to() -> None:
    import orchestrator.audit as audit

    assert sorted(audit.__all__) == sorted(
        ["CHECK_NAMES", "AuditReport", "CheckResult", "Offence", "verify_archive"]
    )
