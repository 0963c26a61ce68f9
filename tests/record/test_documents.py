"""Art. 16 notice letter and Art. 18 record print: HTML and PDF, with the text people rely on."""

from __future__ import annotations

import hashlib
import io
import re
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pypdf
import pytest

from orchestrator.documents._render import Format, write_document
from orchestrator.documents.letter import notice_digest, notice_letter
from orchestrator.documents.record_print import print_record
from orchestrator.errors import AccessDeniedError, InputError
from orchestrator.intake import registry
from orchestrator.intake.notices import announce, get_notice
from orchestrator.intake.registry import Person
from orchestrator.record.assemble import assemble_record
from orchestrator.record.signoff import sign_record

from .conftest import POLICY, SCOPE, Lab

ROOT = Path(__file__).resolve().parents[2]


def _person(lab: Lab, name: str) -> Person:
    with lab.rio.db.session() as s:
        return registry.get_person(s, name)


def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_notice_letter_html_says_who_when_what_and_from_where(lab: Lab) -> None:
    page = notice_letter(lab.rio, _person(lab, "officer-a"), lab.notice_id, Format.HTML).decode()
    with lab.rio.db.session() as s:
        notice = get_notice(s, lab.notice_id)
    for text in (
        "PSB",  # the announcing organ
        "acme",  # the entrusted vendor
        "Acme Security Ltd",
        "Asia/Shanghai",
        "2026-01-01T00:00:00+08:00 (Asia/Shanghai)",  # the window in the object's timezone
        "cidr:127.0.10.0/27",
        "ip:127.0.10.13",  # excluded
        "127.0.0.1",  # scanner source
        "TCP port reachability test",
        "Demo NOC",
        "noc@demo.test",
        notice_digest(notice),
        notice.scope_sha256,
        f"+notice {lab.notice_id}",  # the User-Agent staff will see
        "远程检查通知书",
    ):
        assert text in page, text


def test_notice_letter_points_to_the_public_check_when_a_base_url_is_set(lab: Lab) -> None:
    from orchestrator.context import Rio
    from orchestrator.settings import load_settings

    officer = _person(lab, "officer-a")
    plain = notice_letter(lab.rio, officer, lab.notice_id, Format.HTML).decode()
    assert "/verify/" not in plain
    served = Rio(
        load_settings({"RIO_HOME": str(lab.home), "RIO_PUBLIC_BASE_URL": "https://rio.psb.example"})
    )
    try:
        page = notice_letter(served, officer, lab.notice_id, Format.HTML).decode()
    finally:
        served.close()
    url = f"https://rio.psb.example/verify/{lab.notice_id}"
    assert f'href="{url}"' in page  # the line the object's staff follow
    assert f"; +{url})</code>" in page  # and the User-Agent their logs show


def test_notice_letter_pdf_renders_chinese_and_the_digest(lab: Lab) -> None:
    data = notice_letter(lab.rio, _person(lab, "officer-a"), lab.notice_id, Format.PDF)
    text = _pdf_text(data)
    with lab.rio.db.session() as s:
        digest = notice_digest(get_notice(s, lab.notice_id))
    assert "远程检查通知书" in text
    assert "检查机关" in text and "PSB" in text
    assert digest[:32] in text.replace("\n", "")
    assert lab.notice_id in text


def test_notice_letter_escapes_what_the_scope_says(lab: Lab) -> None:
    hostile = SCOPE.read_bytes().replace(
        b"name: Demo Loopback ISP (lab)", b'name: "<script>alert(1)</script> & Co"'
    )
    with lab.rio.db.session() as s:
        officer = registry.get_person(s, "officer-a")
        notice = announce(
            s,
            scope_bytes=hostile,
            scope_name="hostile.yaml",
            policy_bytes=POLICY.read_bytes(),
            policy_name="policy.yaml",
            vendor=lab.vendor,
            announced_by=officer.id,
            now=datetime(2026, 9, 1, tzinfo=UTC),
        )
    page = notice_letter(lab.rio, officer, notice.id, Format.HTML).decode()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page


def test_notice_letter_refused_to_a_technician_of_another_vendor(lab: Lab) -> None:
    with pytest.raises(AccessDeniedError, match="may not see notice"):
        notice_letter(lab.rio, _person(lab, "tech-other"), lab.notice_id, Format.HTML)


def test_record_print_names_signers_versions_and_the_signed_digest(lab: Lab) -> None:
    record = assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    for name in ("officer-a", "tech-t"):
        sign_record(
            lab.rio.db, lab.run_id, name=name, signer=lab.signer(name), now=lab.rio.clock.now()
        )
    page = print_record(lab.rio, _person(lab, "auditor-u"), lab.run_id, Format.HTML).decode()
    assert hashlib.sha256(record.body).hexdigest() in page
    for text in ("officer-a", "tech-t", "RIO-PORT-TELNET", "RIO-PORT-FTP", "needs 1 more officer"):
        assert text in page, text
    assert "v1" in page and lab.run_id in page
    # One time format, in the reader's timezone (RIO_TIMEZONE, Asia/Shanghai by default).
    stamps = set(re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?([+-]\d\d:\d\d|Z)?", page))
    assert stamps == {"+08:00"}, stamps
    pdf = _pdf_text(print_record(lab.rio, _person(lab, "officer-a"), lab.run_id, Format.PDF))
    assert "互联网安全远程检查记录" in pdf
    assert hashlib.sha256(record.body).hexdigest()[:32] in pdf.replace("\n", "")
    assert "officer-a" in pdf


def test_record_print_refused_to_a_technician_of_another_vendor(lab: Lab) -> None:
    assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    with pytest.raises(AccessDeniedError):
        print_record(lab.rio, _person(lab, "tech-other"), lab.run_id, Format.HTML)


def test_templates_are_package_data_for_a_non_editable_install() -> None:
    package = resources.files("orchestrator.documents")
    shipped = {p.name for p in package.joinpath("templates").iterdir() if p.name.endswith(".html")}
    assert {"base.html", "notice_letter.html", "record.html"} <= shipped
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["orchestrator"]
    assert "documents/templates/*.html" in globs and "documents/*.yaml" in globs


def test_document_is_not_written_into_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_document(b"x", tmp_path / "nope" / "letter.html")
    assert not (tmp_path / "nope").exists()


def test_cli_writes_the_letter_and_the_record_print(lab: Lab, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.interfaces.cli import app

    assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    env = {"RIO_HOME": str(lab.home), "RIO_KEY_FILE": str(lab.key_files["officer-a"][0])}
    runner = CliRunner()
    letter = tmp_path / "notice.pdf"
    result = runner.invoke(
        app, ["notice", "letter", lab.notice_id, "--format", "pdf", "--out", str(letter)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "远程检查通知书" in _pdf_text(letter.read_bytes())
    printed = tmp_path / "record.html"
    result = runner.invoke(app, ["record", "print", lab.run_id, "--out", str(printed)], env=env)
    assert result.exit_code == 0, result.output
    assert lab.run_id in printed.read_text(encoding="utf-8")
    result = runner.invoke(
        app, ["record", "print", lab.run_id, "--format", "docx", "--out", str(printed)], env=env
    )
    assert result.exit_code == 2
