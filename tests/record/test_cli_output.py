"""What the command line prints: no Python reprs anywhere, times in the reader's timezone,
``--json`` that parses on every command that reports, lists that say when they are empty (#19).

One walk through a home with a sealed run (the record lab) runs the commands people and scripts
use, text and ``--json``, as the officer, the second officer, the technician and the auditor
would, and scans everything they print; every command's ``--help`` is scanned as well.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from orchestrator.errors import RioError
from orchestrator.interfaces.cli import app
from orchestrator.record._zone import CALENDAR_ZONE

from .conftest import Lab

TIMEZONE = "Asia/Shanghai"

# What a Python value looks like when it leaks into output instead of being formatted.
REPRS = {
    "a dict repr": re.compile(r"\{'"),
    "a datetime repr": re.compile(r"datetime\.|\bdatetime\("),
    "a timedelta": re.compile(r"timedelta|\b\d+ days?, \d+:\d\d:\d\d"),
    "a bool type in help": re.compile(r"<bool>"),
    "None as a number": re.compile(r"\bNone s\b|\bNone (?:ms|bytes|leaves)\b"),
    "a plural after 1": re.compile(
        r"(?<![\d.])1 (?:technicians|officers|runs|jobs|findings|grants|keys|signers|targets|"
        r"windows|excludes|leaves|probes|orders|people)\b"
    ),
    "str() of a datetime": re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"),
    "a class repr": re.compile(r"<[A-Za-z_.]+ object at 0x|\b[A-Z][A-Za-z]+\([a-z_]+="),
}


def forbidden(text: str) -> list[str]:
    """What in ``text`` is a Python repr rather than output written for a reader."""
    return [f"{name}: {m.group(0)!r}" for name, rx in REPRS.items() for m in rx.finditer(text)]


def test_the_scan_catches_each_kind_of_repr() -> None:
    # The scan must be able to fail: each pattern against the leak it is for.
    leaks = [
        "{'ok': 2}",
        "lead 3 days, 0:00:00",
        "datetime.datetime(2026, 12, 4, 2, 50)",
        "--json  <bool>  Machine-readable output.",
        "outcome ok in None s",
        "1 technicians signed",
        "revoked at 2026-12-04 02:50:00.123456+00:00",
        "KillResult(runs=('R-1',), removed_jobs=())",
    ]
    for leak in leaks:
        assert forbidden(leak), leak
    for fine in ("1 technician, 2 officers", "at 2026-12-04T10:50:00+08:00", '{"ok": 2}'):
        assert not forbidden(fine), fine


class Session:
    """The CLI in-process against the lab's home, with everything it printed kept."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.printed: list[tuple[str, str]] = []

    def __call__(self, *args: str, who: str = "officer-a") -> str:
        env = {**self.lab.env, "RIO_TIMEZONE": TIMEZONE}
        env["RIO_KEY_FILE"] = str(self.lab.key_files[who][0])
        result = CliRunner().invoke(app, list(args), env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            if isinstance(result.exception, RioError):
                raise AssertionError(f"rio {' '.join(args)}: {result.exception}")
            raise result.exception
        assert result.exit_code == 0, f"rio {' '.join(args)} -> {result.exit_code}\n{result.output}"
        self.printed.append((" ".join(args), result.output))
        if "--json" in args:
            json.loads(result.stdout)  # one JSON document, nothing else on stdout
        return result.output


@pytest.fixture
def walk(lab: Lab, tmp_path: Path) -> Session:
    """Every reporting command once as text and once as --json, in the order of a case."""
    rio = Session(lab)
    run, notice = lab.run_id, lab.notice_id
    telnet = lab.findings[run][0]
    for args in (
        ("notice", "list"),
        ("notice", "show", notice),
        ("person", "list"),
        ("vendor", "list"),
        ("run", "list"),
        ("run", "status", run),
        ("record", "show", run),
        ("record", "status", run),
        ("record", "findings", run),
        ("findings", "list", run),
        ("rectify", "status"),
    ):
        rio(*args)
        rio(*args, "--json")
    rio("rectify", "order", run, "--finding", telnet, "--working-days", "3", "--json")
    rio("rectify", "status")
    order = str(json.loads(rio("rectify", "status", "--json"))[0]["id"])
    rio("rectify", "schedule", order, "--json", who="tech-t")
    china_today = datetime.now(CALENDAR_ZONE).date().isoformat()  # the day the service judges by
    applied = json.loads(rio("rectify", "apply", order, "--on", china_today, "--json"))
    assert applied["state"] == "applied" and applied["id"] == int(order)
    rio("run", "jobs")
    rio("run", "jobs", "--json")
    rio("kill", "--all")  # the scheduled re-check: its job is removed
    rio("kill", "--all", "--json")  # nothing left to kill
    rio("run", "jobs")  # empty now
    rio("record", "sign", run)
    rio("record", "sign", run, "--json", who="officer-b")
    rio("record", "sign", run, who="tech-t")
    rio("record", "status", run)
    rio("record", "close", run, "--json")
    rio("record", "show", run)
    rio("archive", "export", run, "--out", str(tmp_path / "a.tar"))
    rio("archive", "export", run, "--out", str(tmp_path / "b.tar"), "--json")
    rio("audit", "log", str(tmp_path / "a.tar"))
    rio("audit", "log", str(tmp_path / "a.tar"), "--target", "127.0.99.99")
    rio("evidence", "grant", run, "--auditor", "auditor-u", "--days", "30")
    rio("evidence", "grant", run, "--auditor", "auditor-u", "--days", "30", "--json")
    rio("access", "log")
    rio("access", "log", "--json")
    rio("evidence", "revoke", run, "--auditor", "auditor-u", "--json")
    rio("evidence", "revoke", run, "--auditor", "auditor-u")  # nothing left: "0 grants"
    rio("calendar", "status")
    rio("scope", "check", "scopes/demo-loopback.yaml")
    rio("policy", "check", "policies/demo.yaml")
    return rio


def test_no_command_prints_a_python_repr(walk: Session) -> None:
    problems = [f"rio {cmd}: {p}" for cmd, out in walk.printed for p in forbidden(out)]
    assert not problems, "\n".join(problems)


def test_people_read_times_in_their_timezone_with_the_offset(walk: Session) -> None:
    text = [(cmd, out) for cmd, out in walk.printed if "--json" not in cmd]
    utc = [cmd for cmd, out in text if "+00:00" in out]
    assert not utc, f"times in UTC where a person reads them (RIO_TIMEZONE={TIMEZONE}): {utc}"
    shown = "\n".join(out for _, out in text)
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?([+-]\d\d:\d\d|Z)?", shown)
    assert stamps and set(stamps) == {"+08:00"}, set(stamps)


def test_json_times_carry_their_offset(walk: Session) -> None:
    data = "\n".join(out for cmd, out in walk.printed if "--json" in cmd)
    stamps = re.findall(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?([^"]*)"', data)
    # "Z" is how the record and the ledger write UTC (their bytes are signed: left as they are).
    assert stamps and all(re.fullmatch(r"Z|[+-]\d\d:\d\d", s) for s in stamps), set(stamps)


def test_reporting_commands_answer_in_json(walk: Session) -> None:
    def answer(prefix: str) -> dict[str, Any]:
        outs = [o for c, o in walk.printed if c.startswith(prefix) and c.endswith("--json")]
        assert len(outs) == 1, prefix
        data = json.loads(outs[0])
        assert isinstance(data, dict)
        return data

    close = answer("record close")
    assert close["closed"] is True and close["officers_signed"] == ["officer-a", "officer-b"]
    sign = answer("record sign")
    assert sign["person"] == "officer-b" and sign["role"] == "officer" and sign["version"] >= 1
    export = answer("archive export")
    assert export["path"].endswith("b.tar") and len(export["sha256"]) == 64
    assert answer("evidence grant")["grant"]["auditor"] == "auditor-u"
    schedule = answer("rectify schedule")
    assert schedule["run_id"].startswith("R-") and schedule["start"].endswith("+00:00")
    kill = answer("kill --all")
    assert kill["runs"] == [] and kill["removed_jobs"] == []


def test_lists_have_a_header_and_say_when_they_are_empty(walk: Session) -> None:
    outputs = [out for cmd, out in walk.printed if cmd == "run jobs"]
    assert outputs[0].splitlines()[0] == "next run\tkind\tsubject\tjob"
    assert "no scheduled jobs" in outputs[-1]
    first_status = next(out for cmd, out in walk.printed if cmd == "rectify status")
    assert "no rectification orders" in first_status
    later = [out for cmd, out in walk.printed if cmd == "rectify status"][-1]
    assert later.splitlines()[0].startswith("order\trun\tstate\tdeadline")
    none = next(out for cmd, out in walk.printed if cmd.endswith("--target 127.0.99.99"))
    assert none.strip().endswith("no leaves match")
    people = next(out for cmd, out in walk.printed if cmd == "person list")
    assert people.splitlines()[0] == "person\trole\torganisation\tkeys\trevoked"


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += _commands(sub, (*path, name))
    return found


def test_no_help_page_shows_a_python_type_or_repr() -> None:
    problems = []
    for path in _commands(get_command(app)):
        out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        problems += [f"rio {' '.join(path)} --help: {p}" for p in forbidden(out)]
    assert not problems, "\n".join(problems)
