"""``rio record``, ``rio rectify`` and ``rio archive`` against a real home (RIO_HOME=tmp_path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.errors import CalendarFileError, RioError
from orchestrator.interfaces.cli import app
from orchestrator.record._zone import CALENDAR_ZONE
from orchestrator.record.workdays import (
    WorkingCalendar,
    add_calendar_file,
    calendar_files,
    load_operator_calendar,
)

from .conftest import REPO, Lab, add_sealed_run


def _rio(lab: Lab, *args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Invoke the CLI in-process; a RioError maps to its exit status as ``main`` does."""
    result = CliRunner().invoke(app, list(args), env={**lab.env, **(extra_env or {})})
    if isinstance(result.exception, RioError):
        return result.exception.exit_code, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def _rio_process(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a child process (exit codes and stderr as a user sees them)."""
    env = {**os.environ, **lab.env, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.interfaces.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _sign(lab: Lab, name: str) -> tuple[int, str]:
    return _rio(
        lab, "record", "sign", lab.run_id, "--as", name, "--key", str(lab.key_files[name][0])
    )


def test_cli_close_exits_3_with_the_reason_until_the_record_is_signed(lab: Lab) -> None:
    refused = _rio_process(lab, "record", "close", lab.run_id)
    assert refused.returncode == 3, refused.stderr
    assert "needs 2 more officers and 1 more technician of vendor acme-sec" in refused.stderr
    for name in ("officer-a", "officer-b", "tech-t"):
        code, out = _sign(lab, name)
        assert code == 0, out
        assert f"{name} (" in out
    closed = _rio_process(lab, "record", "close", lab.run_id)
    assert closed.returncode == 0, closed.stderr
    assert "closed" in closed.stdout


def test_cli_sign_refused_with_a_key_registered_to_someone_else(lab: Lab) -> None:
    code, message = _rio(
        lab, "record", "sign", lab.run_id, "--as", "officer-b", "--key",
        str(lab.key_files["tech-t"][0]),
    )  # fmt: skip
    assert code == 3
    assert "belongs to tech-t, not to officer-b" in message


def test_cli_status_lists_signers_and_what_is_missing(lab: Lab) -> None:
    _sign(lab, "officer-a")
    code, out = _rio(lab, "record", "status", lab.run_id, "--json")
    assert code == 0
    status = json.loads(out)
    assert status["closable"] is False
    assert status["officers_signed"] == ["officer-a"]
    assert status["missing"] == ["1 more officer", "1 more technician of vendor acme-sec"]
    assert [s["person"] for s in status["signatures"]] == ["officer-a"]
    code, out = _rio(lab, "record", "status", lab.run_id)
    assert "missing  1 more officer" in out


def test_cli_show_prints_the_record_readable_and_as_json(lab: Lab) -> None:
    code, out = _rio(lab, "record", "show", lab.run_id)
    assert code == 0
    assert f"record     run {lab.run_id} version 1 (open)" in out
    assert "risk       " in out
    code, out = _rio(lab, "record", "show", lab.run_id, "--json")
    assert json.loads(out)["record"]["ledger"]["size"] == 7


def test_cli_closed_record_refuses_another_signature_with_exit_5(lab: Lab) -> None:
    for name in ("officer-a", "officer-b", "tech-t"):
        _sign(lab, name)
    assert _rio(lab, "record", "close", lab.run_id)[0] == 0
    code, message = _sign(lab, "officer-c")
    assert code == 5
    assert "closed" in message


def _calendar_2099(tmp_path: Path) -> dict[str, str]:
    # A far year only an operator file covers, so these tests do not depend on today's date.
    file = tmp_path / "cn-2099.yaml"
    file.write_text(
        "format: rio.calendar/v1\nyear: 2099\nsource: test notice\n"
        "holidays: [2099-01-01]\nworkdays: []\n"
    )
    return {"RIO_CALENDAR_FILE": str(file)}


def test_cli_rectify_order_apply_recheck_and_status(lab: Lab, tmp_path: Path) -> None:
    env = _calendar_2099(tmp_path)
    telnet = lab.findings[lab.run_id][0]
    code, out = _rio(
        lab, "rectify", "order", lab.run_id, "--finding", telnet, "--deadline", "2099-03-02",
        "--json", extra_env=env,
    )  # fmt: skip
    assert code == 0, out
    order = json.loads(out)
    assert order["recheck_due"] == "2099-03-05"
    order_id = str(order["id"])
    code, out = _rio(lab, "rectify", "apply", order_id, "--on", "2099-02-27", extra_env=env)
    assert code == 0, out
    assert "re-check due 2099-03-04" in out  # Friday 02-27 + Mon, Tue, Wed
    add_sealed_run(
        lab, "R-20990303-rc", [], recheck_of=order["id"], start=datetime(2099, 3, 3, 2, tzinfo=UTC)
    )
    code, out = _rio(
        lab, "rectify", "recheck", order_id, "--run", "R-20990303-rc", "--json", extra_env=env
    )
    assert code == 0, out
    rechecked = json.loads(out)
    assert rechecked["feedback_due"] == "2099-03-06"
    assert [(i["rule"], i["ip"], i["port"]) for i in rechecked["diff"]["fixed"]] == [
        ("RIO-PORT-TELNET", "127.0.10.5", 23)
    ]
    code, out = _rio(lab, "rectify", "status", "--json")
    assert [(o["state"], o["overdue"]) for o in json.loads(out)] == [("resolved", [])]


def test_cli_rectify_refuses_an_uncovered_year_unless_a_calendar_file_covers_it(
    lab: Lab, tmp_path: Path
) -> None:
    telnet = lab.findings[lab.run_id][0]
    args = ("rectify", "order", lab.run_id, "--finding", telnet, "--deadline", "2099-03-02")
    code, message = _rio(lab, *args)
    assert code == 3
    assert "2099-03-02 is outside the working-day calendar" in message
    code, out = _rio(lab, *args, extra_env=_calendar_2099(tmp_path))
    assert code == 0, out
    assert "re-check due 2099-03-05" in out


def test_cli_archive_export_writes_the_same_bytes_twice(lab: Lab, tmp_path: Path) -> None:
    for name in ("officer-a", "officer-b", "tech-t"):
        _sign(lab, name)
    _rio(lab, "record", "close", lab.run_id)
    for out in ("a.tar", "b.tar"):
        code, text = _rio(lab, "archive", "export", lab.run_id, "--out", str(tmp_path / out))
        assert code == 0, text
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_cli_rectify_schedule_plans_the_recheck_in_the_covering_window(lab: Lab) -> None:
    telnet = lab.findings[lab.run_id][0]
    code, out = _rio(
        lab, "rectify", "order", lab.run_id, "--finding", telnet, "--working-days", "3", "--json"
    )
    assert code == 0, out
    order_id = str(json.loads(out)["id"])
    # The officer's key may not launch a vendor-entrusted run; the vendor's technician may.
    code, out = _rio(lab, "rectify", "schedule", order_id)
    assert code == 3, out
    code, out = _rio(lab, "rectify", "schedule", order_id, "--key", str(lab.key_files["tech-t"][0]))
    assert code == 0, out
    run_id = out.split()[0]
    assert run_id.startswith("R-") and f"rio rectify recheck {order_id} --run {run_id}" in out
    from orchestrator.store.models import RunRow

    with lab.rio.db.session() as s:
        row = s.get(RunRow, run_id)
        assert row is not None and row.recheck_of == int(order_id) and row.state == "scheduled"


def test_cli_rectify_order_into_next_year_works_today_and_says_provisional(lab: Lab) -> None:
    # #19: 18 working days from early December 2026 (the re-check even more so) reach 2027,
    # which has no State Council notice in the holidays package; the order is still given.
    telnet = lab.findings[lab.run_id][0]
    code, out = _rio(
        lab, "rectify", "order", lab.run_id, "--finding", telnet, "--working-days", "18", "--json"
    )
    assert code == 0, out
    order = json.loads(out)
    assert order["working_days"] == 18
    calendar = WorkingCalendar()
    assert order["provisional"] == bool(
        calendar.provisional_between(
            datetime.now(CALENDAR_ZONE).date(), date.fromisoformat(order["recheck_due"])
        )
    )
    code, out = _rio(lab, "rectify", "status")
    assert code == 0
    assert ("PROVISIONAL" in out) == order["provisional"]


def test_cli_calendar_status_schema_and_the_shipped_example(lab: Lab) -> None:
    code, out = _rio(lab, "calendar", "status", "--json")
    assert code == 0, out
    status = json.loads(out)
    assert 2026 in status["authoritative"]
    assert status["provisional"][0] == max(status["authoritative"]) + 1
    assert "provisional" in status["sources"][str(status["provisional"][0])]
    code, out = _rio(lab, "schema", "calendar")
    assert code == 0
    schema = json.loads(out)
    example = yaml.load(
        Path(status["example_file"]).read_text(encoding="utf-8"), Loader=yaml.BaseLoader
    )
    jsonschema.validate(example, schema | {"properties": {**schema["properties"], "year": {}}})
    assert load_operator_calendar(Path(status["example_file"])).year == 2026
    # Adding a calendar is an administrator's act; an officer is refused before anything.
    code, message = _rio(lab, "calendar", "add", status["example_file"])
    assert code == 3, message
    assert not (lab.home / "calendars").exists()


def test_calendar_file_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "cn-2027.yaml"
    bad.write_text(
        "format: rio.calendar/v1\nyear: 2027\nsource: x\nholidays: [2027-13-01]\nworkdays: []\n"
    )
    with pytest.raises(CalendarFileError) as caught:
        add_calendar_file(home, bad)
    assert str(bad) in str(caught.value) and "holidays[0]" in str(caught.value)
    assert calendar_files(home) == []
    good = tmp_path / "ok.yaml"
    good.write_text(
        "format: rio.calendar/v1\nyear: 2027\nsource: x\nholidays: [2027-01-01]\nworkdays: []\n"
    )
    stored = add_calendar_file(home, good)
    assert calendar_files(home) == [home / "calendars" / "2027.yaml"]
    assert stored.file == str(home / "calendars" / "2027.yaml")
    assert (home / "calendars" / "2027.yaml").stat().st_mode & 0o777 == 0o600
    assert 2027 in WorkingCalendar(extra_files=calendar_files(home)).covered_years


def test_cli_calendar_add_leaves_a_closed_record_as_signed_and_says_where_the_new_date_is(
    lab: Lab, tmp_path: Path
) -> None:
    # #19: a closed record is signed and final, so it keeps the provisional deadline it was
    # signed with; the order, `rectify status` and the archive's rectification.json carry
    # the date the year's notice gives, and rio says so instead of leaving a silent mismatch.
    from orchestrator.record import signoff
    from orchestrator.record.archive import export_archive
    from orchestrator.record.assemble import current_record
    from orchestrator.record.rectify import get_order, order_rectification

    last = max(WorkingCalendar().covered_years)
    ordered = datetime(last, 12, 14, 2, tzinfo=UTC)
    order = order_rectification(
        lab.rio.db, lab.run_id, lab.findings[lab.run_id][:1], calendar=WorkingCalendar(),
        working_days=18, now=ordered,
    )  # fmt: skip
    assert order.provisional
    signed_at = datetime(last, 12, 15, tzinfo=UTC)
    for name in ("officer-a", "officer-b", "tech-t"):
        signoff.sign_record(
            lab.rio.db, lab.run_id, name=name, signer=lab.signer(name), now=signed_at
        )
    signoff.close(lab.rio.db, lab.run_id, now=signed_at)
    body = current_record(lab.rio.db, lab.run_id).body
    extra = date(last + 1, 1, 4) if date(last + 1, 1, 4).weekday() < 5 else date(last + 1, 1, 6)
    notice = tmp_path / f"cn-{last + 1}.yaml"
    notice.write_text(
        f"format: rio.calendar/v1\nyear: {last + 1}\nsource: test notice\n"
        f"holidays: [{last + 1}-01-01, {extra.isoformat()}]\nworkdays: []\n"
    )
    admin = str(lab.key_files["admin-m"][0])
    code, out = _rio(lab, "calendar", "add", str(notice), "--key", admin)
    assert code == 0, out
    after = get_order(lab.rio.db, order.id)
    assert not after.provisional and after.deadline > order.deadline
    assert (
        f"the record of run {lab.run_id} is closed: it keeps the provisional deadline "
        f"{order.deadline.isoformat()} it was signed with; the order's deadline is now "
        f"{after.deadline.isoformat()}"
    ) in out
    record = current_record(lab.rio.db, lab.run_id)
    assert record.closed and record.body == body  # the signed bytes are untouched
    assert signoff.signoff_status(lab.rio.db, lab.run_id)  # and the signatures still count
    code, out = _rio(lab, "record", "show", lab.run_id)
    assert (
        f"deadline {order.deadline.isoformat()} (provisional) as signed; the order's deadline "
        f"is now {after.deadline.isoformat()}"
    ) in out
    code, out = _rio(lab, "rectify", "status", "--json")
    assert json.loads(out)[0]["deadline"] == after.deadline.isoformat()
    archive = tmp_path / "a.tar"
    export_archive(lab.rio.db, lab.run_id, archive, signing_key=lab.rio.signing_key, now=signed_at)
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile("rectification.json")
        assert member is not None
        assert json.loads(member.read())[0]["deadline"] == after.deadline.isoformat()
