"""The ``rio audit`` and ``rio report`` commands."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import typer
from typer.testing import CliRunner

from orchestrator.errors import InputError
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
    pin = ["--key-id", ab.orchestrator_key_id()]
    result = CliRunner().invoke(app(), ["audit", "verify", str(clean), "--json", *pin])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    forged = ab.rewrite(clean, tmp_path / "f.tar", {"scope.yaml": ab.SCOPE_YAML + b"# edited\n"})
    result = CliRunner().invoke(app(), ["audit", "verify", str(forged), *pin])
    assert result.exit_code == 6
    assert "FAIL documents" in result.output


def test_verify_without_trust_anchor_exits_six_saying_not_authenticated(tmp_path: Path) -> None:
    clean = ab.build_archive(tmp_path / "a.tar")
    result = CliRunner().invoke(
        app(), ["audit", "verify", str(clean)], env={"RIO_TRUSTED_KEYS": ""}
    )
    assert result.exit_code == 6, result.output
    assert "self-consistent, not authenticated" in result.output
    assert "FAIL trust" in result.output
    assert "ok   record" in result.output  # every other check still ran


def test_verify_against_trusted_keys_file_from_option_or_environment(tmp_path: Path) -> None:
    clean = ab.build_archive(tmp_path / "a.tar")
    trusted = tmp_path / "trusted-keys.json"
    trusted.write_bytes(ab.trusted_keys_json(ab.Keys()))
    result = CliRunner().invoke(app(), ["audit", "verify", str(clean), "--trust", str(trusted)])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("verified")
    result = CliRunner().invoke(
        app(), ["audit", "verify", str(clean)], env={"RIO_TRUSTED_KEYS": str(trusted)}
    )
    assert result.exit_code == 0, result.output
    other = tmp_path / "other.json"
    other.write_bytes(ab.trusted_keys_json(ab.Keys(orchestrator=ab._key("someone-else"))))
    result = CliRunner().invoke(app(), ["audit", "verify", str(clean), "--trust", str(other)])
    assert result.exit_code == 6
    assert "not authenticated" in result.output
    assert "is not the trusted orchestrator key" in result.output


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
        [
            "CHECK_NAMES",
            "AuditReport",
            "CheckResult",
            "Offence",
            "load_trusted_keys",
            "verify_archive",
        ]
    )


def test_transparency_report_tells_the_engineer_what_they_need_in_html_and_pdf(
    tmp_path: Path,
) -> None:
    import io

    import pypdf

    clean = ab.build_archive(tmp_path / "a.tar")
    html_out, pdf_out = tmp_path / "report.html", tmp_path / "report.pdf"
    for out in (html_out, pdf_out):
        result = CliRunner().invoke(
            app(), ["report", "transparency", str(clean), "--object", "demo-isp", "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
    page = html_out.read_text(encoding="utf-8")
    for text in (
        "检查机关",
        "PSB",  # the inspecting organ
        "acme",  # the vendor
        "What each outcome means",
        "no answer within the time limit",
        "How to check the proofs",
        "Asia/Shanghai",
        "Findings on your hosts",
        "Rectification items",
    ):
        assert text in page, text
    text = "\n".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf_out.read_bytes())).pages
    )
    assert "远程检查透明度报告" in text and "demo-isp" in text


def test_verify_accepts_the_16_digit_key_id_rio_prints_and_refuses_a_shorter_one(
    tmp_path: Path,
) -> None:
    clean = ab.build_archive(tmp_path / "a.tar")
    printed = ab.orchestrator_key_id()[:16]
    result = CliRunner().invoke(app(), ["audit", "verify", str(clean), "--key-id", printed])
    assert result.exit_code == 0, result.output
    short = ab.orchestrator_key_id()[:8]
    result = CliRunner().invoke(app(), ["audit", "verify", str(clean), "--key-id", short])
    assert result.exit_code == 6


def test_verify_of_what_is_not_an_archive_is_one_error_naming_the_path(tmp_path: Path) -> None:
    # #19: a directory, a log, a key, a tar of something else: one clear error, not 13 FAILs.
    log = tmp_path / "serve.log"
    log.write_text("2026-12-04T01:00:00+08:00 INFO rio serve started\n")
    pub = tmp_path / "li.pub"
    pub.write_text("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")
    other_tar = tmp_path / "other.tar"
    with tarfile.open(other_tar, "w") as tar:
        tar.add(log, arcname="serve.log")
    cases = {
        tmp_path: "is a directory",
        log: "a file, not a tar archive",
        pub: "a public key (PEM), not a tar archive",
        other_tar: "a tar archive without manifest.json",
        tmp_path / "missing.tar": "no such file",
    }
    for path, words in cases.items():
        result = CliRunner().invoke(app(), ["audit", "verify", str(path)])
        assert isinstance(result.exception, InputError), (path, result.output)
        message = str(result.exception)
        assert message.startswith(f"{path}: {words}; expected a rio archive"), message
        assert "rio archive export" in message
        assert "FAIL" not in result.output and "run None" not in result.output
        assert InputError.exit_code != 0
