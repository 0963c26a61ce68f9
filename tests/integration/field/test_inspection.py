"""A whole announced inspection of the field lab, through the README's commands.

Officers announce a scope that names the lab's loopback addresses, names and domain, under a
policy of standard ports; the vendor's technician runs it; the record lists the findings. Every
planted flaw that rio's catalogue claims to detect must be found where it was planted; the sound
site must have no finding at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store.db import Database
from orchestrator.store.models import FindingRow
from tests.integration.field.conftest import CONTACT, LabRio, People, announce_and_run
from tests.integration.field.lab import Flaw, Lab

pytestmark = pytest.mark.slow


@dataclass(frozen=True, kw_only=True, slots=True)
class Seen:
    """One finding as the record and the store give it."""

    id: str
    rule: str
    target: str
    ip: str
    port: int | None
    targets: tuple[str, ...]
    """every target as announced that saw it (one finding per place, however reached)"""
    has_evidence: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Inspection:
    notice: str
    run: str
    summary: str
    status: Mapping[str, Any]
    record: Mapping[str, Any]
    findings: tuple[Seen, ...]


def _stored_findings(home: Path, run: str) -> tuple[Seen, ...]:
    db = Database(f"sqlite:///{home / 'rio.db'}")
    try:
        with db.session() as s:
            rows = s.query(FindingRow).filter(FindingRow.run_id == run).all()
            return tuple(
                Seen(
                    id=r.id,
                    rule=r.rule,
                    target=r.target,
                    ip=r.ip,
                    port=r.port,
                    targets=tuple(str(x["target"]) for x in r.sightings),
                    has_evidence=r.evidence is not None,
                )
                for r in rows
            )
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def inspection(field_lab: Lab, lab_rio: LabRio, lab_people: People, lab_home: Path) -> Inspection:
    launched = announce_and_run(
        lab_rio, lab_people, lab_home, scope=field_lab.scope_text(), policy=field_lab.policy_text()
    )
    notice, run = launched.notice, launched.run
    status = json.loads(lab_rio("run", "status", run, "--json", key=lab_people.key("li")).stdout)
    record = json.loads(lab_rio("record", "show", run, "--json", key=lab_people.key("li")).stdout)
    return Inspection(
        notice=notice,
        run=run,
        summary=launched.summary,
        status=status,
        record=record,
        findings=_stored_findings(lab_home / "home", run),
    )


def _target(lab: Lab, flaw: Flaw) -> str:
    return f"ip:{lab.ip(flaw.server)}" if flaw.target == "ip" else flaw.target


def _found(lab: Lab, flaw: Flaw, findings: tuple[Seen, ...]) -> bool:
    return any(
        f.rule == flaw.rule
        and f.ip == lab.ip(flaw.server)
        and f.port == flaw.port
        and _target(lab, flaw) in f.targets
        for f in findings
    )


def test_inspection_of_the_lab_is_sealed_with_every_probe_decided(
    inspection: Inspection,
) -> None:
    assert inspection.status["state"] == "sealed", inspection.summary
    assert inspection.status["decided"] == inspection.status["planned"] > 0


def test_every_http_probe_was_sent_on_the_standard_ports(inspection: Inspection) -> None:
    # Defect 1 of #12: every HTTP probe to 80/443 used to be refused before it was sent.
    outcomes = inspection.status["outcomes"]
    assert inspection.status["refused"] == 0, inspection.summary
    assert outcomes.get("error", 0) == 0, outcomes


def test_every_planted_flaw_the_catalogue_claims_is_found_where_it_was_planted(
    field_lab: Lab, inspection: Inspection
) -> None:
    claimed = [f for f in field_lab.flaws() if f.rule is not None]
    missed = [f"{f.id} ({f.rule} at {_target(field_lab, f)} port {f.port})"
              for f in claimed if not _found(field_lab, f, inspection.findings)]  # fmt: skip
    seen = sorted(f"{s.rule} {s.target} {s.ip}:{s.port}" for s in inspection.findings)
    assert not missed, "missed:\n  " + "\n  ".join(missed) + "\nseen:\n  " + "\n  ".join(seen)


def test_the_sound_site_has_no_finding(field_lab: Lab, inspection: Inspection) -> None:
    sound = field_lab.ip("nginx-sound")
    wrong = [f for f in inspection.findings if f.ip == sound]
    assert not wrong, wrong


def test_the_record_lists_every_finding(inspection: Inspection) -> None:
    listed = {r["finding"] for r in inspection.record["record"]["conclusions"]["risks"]}
    listed |= {v["finding"] for v in inspection.record["record"]["conclusions"]["violations"]}
    assert listed == {f.id for f in inspection.findings}


def test_a_defender_reading_the_access_log_learns_who_scans_under_which_notice(
    field_lab: Lab, inspection: Inspection
) -> None:
    # (other tests of this session probe the same nginx under a test notice)
    log = field_lab.log("nginx-weak").splitlines()
    lines = [line for line in log if f"+notice {inspection.notice};" in line]
    assert lines, "nginx logged no request of this inspection:\n" + "\n".join(log)
    for line in lines:
        assert "remote inspection by Acme Security for PSB" in line
        assert f'"{CONTACT}"' in line  # the From header
        assert "noc@lab.test" not in line  # the inspected object's own contact is not ours


def test_every_finding_names_where_and_carries_evidence(inspection: Inspection) -> None:
    entries = {f["id"]: f for f in inspection.record["record"]["findings"]}
    assert set(entries) == {f.id for f in inspection.findings}
    for f in inspection.findings:
        location = entries[f.id]["location"]
        assert (location["target"], location["ip"], location["port"]) == (f.target, f.ip, f.port)
        assert location["transport"] in ("tcp", "udp")
        assert f.has_evidence, f"{f.id} {f.rule} has no evidence"
    keys = [e["key"] for e in entries.values()]
    assert len(keys) == len(set(keys))


def test_evidence_of_a_lab_finding_is_what_the_server_sent(
    inspection: Inspection, lab_rio: LabRio, lab_people: People
) -> None:
    tls = [f for f in inspection.findings if f.rule.startswith("RIO-TLS-")]
    assert tls, "the lab plants TLS flaws"
    shown = lab_rio(
        "evidence", "show", tls[0].id, "--reason", "field lab test", key=lab_people.key("li")
    ).stdout
    evidence = json.loads(shown)
    assert evidence["rule"] == tls[0].rule
    assert evidence["certificate"]["subject"] and evidence["certificate"]["issuer"]
    assert evidence["protocol"].startswith("TLS")
