"""`rio findings list|diff|export`: where each finding is, what two runs changed, exports tools read."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from orchestrator.errors import InputError, RioError
from orchestrator.interfaces.cli import app
from orchestrator.record.export import CSV_COLUMNS, ExportContext, render
from orchestrator.record.findings import FindingView
from probes.findings import Location

from .conftest import Lab, add_sealed_run

SCHEMA = Path(__file__).parent / "sarif" / "sarif-schema-2.1.0.json"


def _rio(lab: Lab, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=lab.env)
    if isinstance(result.exception, RioError):
        return result.exception.exit_code, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def _sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def test_findings_list_names_where_each_finding_is(lab: Lab) -> None:
    code, out = _rio(lab, "findings", "list", lab.run_id, "--json")
    assert code == 0, out
    found = json.loads(out)
    assert [(f["rule"], f["location"]["port"], f["where"]) for f in found] == [
        ("RIO-PORT-TELNET", 23, "127.0.10.5:23/tcp via 127.0.10.0/27"),
        ("RIO-PORT-FTP", 21, "127.0.10.5:21/tcp via 127.0.10.0/27"),
    ]
    code, text = _rio(lab, "findings", "list", lab.run_id)
    assert "at  127.0.10.5:23/tcp via 127.0.10.0/27" in text and "2 findings" in text


def test_findings_diff_of_two_runs_says_fixed_still_present_and_new(lab: Lab) -> None:
    add_sealed_run(lab, "R-20260903-b2", [("RIO-PORT-TELNET", 23), ("RIO-PORT-RDP", 3389)])
    code, out = _rio(lab, "findings", "diff", lab.run_id, "R-20260903-b2", "--json")
    assert code == 0, out
    diff = json.loads(out)
    assert [i["rule"] for i in diff["fixed"]] == ["RIO-PORT-FTP"]
    assert [(i["rule"], i["finding"]) for i in diff["still_present"]] == [
        ("RIO-PORT-TELNET", "R-20260903-b2-F1")
    ]
    assert [i["rule"] for i in diff["new"]] == ["RIO-PORT-RDP"]
    code, text = _rio(lab, "findings", "diff", lab.run_id, "R-20260903-b2")
    assert "1 fixed, 1 still present, 1 new" in text


def test_findings_diff_refuses_one_run_named_twice(lab: Lab) -> None:
    code, out = _rio(lab, "findings", "diff", lab.run_id, lab.run_id)
    assert code == 2 and "named twice" in out


def test_sarif_export_validates_against_the_sarif_2_1_0_schema(lab: Lab) -> None:
    code, out = _rio(lab, "findings", "export", lab.run_id, "--format", "sarif")
    assert code == 0, out
    doc = json.loads(out)
    errors = list(_sarif_validator().iter_errors(doc))
    assert errors == [], [e.message for e in errors[:3]]
    (run,) = doc["runs"]
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["RIO-PORT-TELNET", "RIO-PORT-FTP"]
    assert results[0]["partialFingerprints"] == {"rioFindingKey/v1": "RIO-PORT-TELNET:23"}
    uri = results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "tcp://127.0.10.5:23"


def test_sarif_validation_catches_a_malformed_log() -> None:
    # The check is real: the schema refuses a result without a message.
    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "rio"}}, "results": [{}]}]}
    assert list(_sarif_validator().iter_errors(bad))


def test_json_and_csv_exports_carry_key_location_and_references(lab: Lab, tmp_path: Path) -> None:
    out_file = tmp_path / "f.json"
    code, out = _rio(
        lab, "findings", "export", lab.run_id, "--format", "json", "--out", str(out_file)
    )
    assert code == 0, out
    doc = json.loads(out_file.read_text(encoding="utf-8"))
    assert doc["format"] == "rio.findings-export/v1" and doc["run"] == lab.run_id
    assert doc["findings"][0]["key"] == "RIO-PORT-TELNET:23"
    assert doc["findings"][0]["uri"] == "tcp://127.0.10.5:23"
    code, out = _rio(lab, "findings", "export", lab.run_id, "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[CSV_COLUMNS.index("port")] for r in rows[1:]] == ["23", "21"]


def test_export_refuses_an_unknown_format_and_writes_nothing(lab: Lab, tmp_path: Path) -> None:
    out_file = tmp_path / "f.xml"
    code, out = _rio(
        lab, "findings", "export", lab.run_id, "--format", "xml", "--out", str(out_file)
    )
    assert code == 2 and "'xml' is not one of json, csv, sarif, html" in out
    assert not out_file.exists()


def _hostile() -> FindingView:
    return FindingView(
        id="R-1/F1.0",
        key="RIO-HTTP-BANNER-VERSION:00",
        run_id="R-1",
        rule="RIO-HTTP-BANNER-VERSION",
        title="<script>alert(1)</script>",
        severity="info",
        kind="risk",
        probe="http",
        location=Location(
            target='host:"><img src=x>',
            ip="127.0.10.2",
            port=80,
            transport="tcp",
            scheme="http",
            server_name="a&b.test",
            path="/<x>",
        ),
        seen_as=(('host:"><img src=x>', "a&b.test"),),
        leaf_seq=3,
        digest="0" * 64,
        remediation="<b>remove</b>",
        refs=(),
        has_evidence=True,
    )


def test_html_report_escapes_every_value() -> None:
    ctx = ExportContext(
        run_id="R-1",
        notice_id="N-1",
        object_id="o",
        object_name="<i>Object</i>",
        state="sealed",
        generated_at="2026-12-03T00:00:00+00:00",
    )
    html = render(
        "html", ctx, [_hostile()], {"R-1/F1.0": '{"read": "</pre><script>x</script>"}'}
    ).decode()
    for raw in ("<script>", "<img src=x>", "<b>remove</b>", "<i>Object</i>", "</pre><script>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b.test" in html
    assert "Evidence</strong> (confidential" in html


def test_render_refuses_an_unknown_format() -> None:
    ctx = ExportContext(
        run_id="R", notice_id="N", object_id="o", object_name="o", state="sealed", generated_at=""
    )
    with pytest.raises(InputError, match="--format"):
        render("pdf", ctx, [])


def test_record_show_says_where_each_finding_is(lab: Lab) -> None:
    code, out = _rio(lab, "record", "show", lab.run_id)
    assert code == 0, out
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if "RIO-PORT-TELNET title" in line)
    assert lines[i + 1].split() == ["at", "127.0.10.5:23/tcp", "via", "127.0.10.0/27"]
    code, out = _rio(lab, "record", "show", lab.run_id, "--json")
    entries = json.loads(out)["record"]["findings"]
    assert [(e["key"], e["location"]["port"]) for e in entries] == [
        ("RIO-PORT-TELNET:23", 23),
        ("RIO-PORT-FTP:21", 21),
    ]
