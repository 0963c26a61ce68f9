"""`rio run start|list|status|kill` through the real command line, identities from keys."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.demo.farm import Farm, FarmSpec
from tests.cli.conftest import ROOT, Rio

POLICY = ROOT / "policies" / "demo.yaml"


def _scope(tmp_path: Path, network: str) -> Path:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).replace(tzinfo=None).isoformat(timespec="seconds")
    end = (now + timedelta(hours=2)).replace(tzinfo=None).isoformat(timespec="seconds")
    path = tmp_path / "scope.yaml"
    path.write_text(f"""
format: rio.scope/v1
object: {{id: cli-lab, name: CLI lab, services: [access]}}
contact: {{name: Lab, email: lab@rio.invalid}}
targets: [{{cidr: {network}}}]
windows: [{{start: "{start}", end: "{end}", timezone: UTC}}]
sources: [127.0.0.1]
""")
    return path


def test_technician_runs_a_notice_and_only_their_vendor_sees_it(rio: Rio, tmp_path: Path) -> None:
    rio("init")
    for vendor in ("acme", "other"):
        rio("vendor", "add", vendor, "--organisation", vendor.title())
    for name, role, extra in (
        ("li", "officer", ["--organisation", "PSB"]),
        ("zhang", "technician", ["--vendor", "acme"]),
        ("wu", "technician", ["--vendor", "other"]),
    ):
        rio("keys", "generate", name, "--out", str(tmp_path))
        rio(
            "person",
            "add",
            name,
            "--role",
            role,
            *extra,
            "--public-key",
            str(tmp_path / f"{name}.pub"),
        )
    spec = FarmSpec(
        network="127.0.24.0/28", count=6, open_ports=(22,), weak=(), dns_ip=None, lifetime=120.0
    )
    with Farm(spec):
        notice = rio(
            "notice",
            "announce",
            "--scope",
            str(_scope(tmp_path, "127.0.24.0/29")),
            "--policy",
            str(POLICY),
            "--vendor",
            "acme",
            "--key",
            str(tmp_path / "li.key"),
        ).stdout.strip()
        # The lead-time refusal is asked of a notice whose policy wants a day's lead: a refusal
        # that cannot depend on how fast a second process starts on a loaded machine.
        long_lead = tmp_path / "long-lead.yaml"
        long_lead.write_text(
            POLICY.read_text().replace("min_notice_lead: 2s", "min_notice_lead: 1d")
        )
        unripe = rio(
            "notice",
            "announce",
            "--scope",
            str(_scope(tmp_path, "127.0.24.0/29")),
            "--policy",
            str(long_lead),
            "--vendor",
            "acme",
            "--key",
            str(tmp_path / "li.key"),
        ).stdout.strip()
        early = rio(
            "run", "start", unripe, "--key", str(tmp_path / "zhang.key"), "--quiet", check=False
        )
        assert early.returncode == 5 and "lead time" in early.stderr
        time.sleep(2.1)  # the demo policy's 2 s lead for `notice`
        refused = rio(
            "run", "start", notice, "--key", str(tmp_path / "wu.key"), "--quiet", check=False
        )
        assert refused.returncode == 3 and "not entrusted to their vendor other" in refused.stderr
        started = rio("run", "start", notice, "--key", str(tmp_path / "zhang.key"), "--quiet")
        # --json: no live display, only the run's figures when it ends (one JSON document).
        figures = json.loads(
            rio("run", "start", notice, "--key", str(tmp_path / "zhang.key"), "--json").stdout
        )
    assert ": sealed" in started.stdout
    run_id = started.stdout.split()[1]
    assert figures["state"] == "sealed" and figures["resumed"] is False
    assert figures["decided"] == figures["planned"] > 0 and figures["id"] != run_id
    assert figures["started_at"].endswith("+00:00") and figures["checkpoint"]["size"] > 0
    assert sorted(
        r["id"]
        for r in json.loads(rio("run", "list", "--json", "--key", str(tmp_path / "li.key")).stdout)
    ) == sorted([run_id, figures["id"]])
    assert json.loads(rio("run", "list", "--json", "--key", str(tmp_path / "wu.key")).stdout) == []
    status = json.loads(
        rio("run", "status", run_id, "--json", "--key", str(tmp_path / "zhang.key")).stdout
    )
    assert status["state"] == "sealed" and status["decided"] == status["planned"] > 0
    hidden = rio("run", "status", run_id, "--key", str(tmp_path / "wu.key"), check=False)
    assert hidden.returncode == 3
    late_kill = rio("run", "kill", run_id, "--key", str(tmp_path / "li.key"), check=False)
    assert late_kill.returncode == 5 and "nothing to kill" in late_kill.stderr
    verified = rio("audit", "verify", run_id, "--key", str(tmp_path / "li.key"))
    assert "verified" in verified.stdout
    log = rio("audit", "log", run_id, "--key", str(tmp_path / "li.key"), "--json")
    assert json.loads(log.stdout)
