"""The transparency report tells the object's engineer what they need, from a real closed run's
archive: findings and rectification items on their hosts, the organ and vendor, what outcomes
and order states mean, every time in the stated timezone, and how to check the proofs, which
`rio report check` then does offline (#19)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.interfaces.cli import app
from orchestrator.record import signoff
from orchestrator.record.archive import export_archive
from orchestrator.record.rectify import order_rectification
from orchestrator.record.workdays import WorkingCalendar

from .conftest import Lab

DEADLINE = date.today() + timedelta(days=40)  # a future date, whenever the test runs


def _rio(lab: Lab, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={**lab.env, "RIO_TIMEZONE": "UTC"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def archive(lab: Lab, tmp_path: Path) -> Path:
    telnet = lab.findings[lab.run_id][0]
    now = datetime.now(UTC)  # the lab's keys were registered a moment ago
    later = now + timedelta(minutes=5)  # signed after the version with the order exists
    order_rectification(
        lab.rio.db, lab.run_id, [telnet], calendar=WorkingCalendar(),
        deadline=DEADLINE, now=now,
    )  # fmt: skip
    for name in ("officer-a", "officer-b", "tech-t"):
        signoff.sign_record(lab.rio.db, lab.run_id, name=name, signer=lab.signer(name), now=later)
    signoff.close(lab.rio.db, lab.run_id, now=later)
    out = tmp_path / "run.tar"
    export_archive(lab.rio.db, lab.run_id, out, signing_key=lab.rio.signing_key, now=now)
    return out


def _report(lab: Lab, archive: Path, out: Path) -> str:
    code, text = _rio(lab, "report", "transparency", str(archive), "--object", "demo-isp",
                      "--out", str(out))  # fmt: skip
    assert code == 0, text
    return text


def test_the_page_names_findings_orders_organ_vendor_and_meanings(
    lab: Lab, archive: Path, tmp_path: Path
) -> None:
    _report(lab, archive, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for text in (
        "RIO-PORT-TELNET title",  # the finding on the object's host ...
        "127.0.10.5:23/tcp",  # ... where it is ...
        "close port 23",  # ... and what to do
        DEADLINE.isoformat(),  # the order's deadline
        "ordered; re-checked after the deadline",  # what the order's state means
        "PSB",
        "acme-sec",
        "no answer within the time limit",
        "rio report check report.json",
    ):
        assert text in page, text
    assert "RIO-PORT-FTP title" in page  # both findings lie in the object's announced network


def test_every_time_on_the_page_is_in_the_stated_timezone_with_its_offset(
    lab: Lab, archive: Path, tmp_path: Path
) -> None:
    # The demo scope states Asia/Shanghai; the operator's RIO_TIMEZONE (UTC here) is not asked.
    _report(lab, archive, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?([+-]\d\d:\d\d|Z)?", page)
    assert stamps and set(stamps) == {"+08:00"}, set(stamps)
    assert "2026-09-02T10:00:01+08:00" in page  # the first probe, sent 02:00:01 UTC


def test_the_pdf_carries_the_same_content_in_chinese_and_english(
    lab: Lab, archive: Path, tmp_path: Path
) -> None:
    pypdf = pytest.importorskip("pypdf")
    _report(lab, archive, tmp_path / "report.pdf")
    reader = pypdf.PdfReader(io.BytesIO((tmp_path / "report.pdf").read_bytes()))
    text = "\n".join(page.extract_text() for page in reader.pages)
    squeezed = re.sub(r"\s+", "", text)
    for wanted in ("远程检查透明度报告", "整改事项", "RIO-PORT-TELNETtitle", DEADLINE.isoformat()):
        assert wanted in squeezed, wanted


def test_report_check_verifies_the_proofs_against_the_key_the_object_trusts(
    lab: Lab, archive: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    _report(lab, archive, report)
    trust = tmp_path / "trusted-keys.json"
    code, out = _rio(lab, "keys", "export-trust", "--out", str(trust))
    assert code == 0, out
    code, out = _rio(lab, "report", "check", str(report), "--trust", str(trust))
    assert code == 0, out
    assert "verified against the key you trust" in out and "2 inclusion proofs" in out
    code, out = _rio(lab, "report", "check", str(report), "--trust", str(trust), "--json")
    assert code == 0 and json.loads(out)["authenticated"] is True
    # Without a key of its own the object learns only that the file is self-consistent.
    code, out = _rio(lab, "report", "check", str(report))
    assert code == 6 and "not authenticated" in out
    data = json.loads(report.read_text(encoding="utf-8"))
    data["probes"][0]["ip"] = "127.0.10.6"  # a probe shown at another address than logged
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(data), encoding="utf-8")
    code, out = _rio(lab, "report", "check", str(forged), "--trust", str(trust))
    assert code == 6 and "FAIL probe" in out and "NOT verified" in out
