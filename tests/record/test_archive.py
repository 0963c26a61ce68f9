"""Art. 20: the archive is deterministic, complete and its manifest matches its members."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.intake import registry
from orchestrator.record.archive import MANIFEST_PAYLOAD_TYPE, MEMBERS, export_archive
from orchestrator.record.assemble import assemble_record
from orchestrator.record.dsse import PAYLOAD_TYPE, Envelope, verified_keyids
from orchestrator.record.rectify import order_rectification, record_feedback, record_recheck
from orchestrator.record.signoff import close, sign_record
from orchestrator.record.workdays import WorkingCalendar

from .conftest import SCOPE, Lab, add_sealed_run


def _close(lab: Lab) -> None:
    assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    for name in ("officer-a", "officer-b", "tech-t"):
        sign_record(
            lab.rio.db, lab.run_id, name=name, signer=lab.signer(name), now=lab.rio.clock.now()
        )
    close(lab.rio.db, lab.run_id, now=lab.rio.clock.now())


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            out.append((info, handle.read()))
    return out


def test_archive_bytes_are_the_same_for_the_same_inputs(lab: Lab, tmp_path: Path) -> None:
    _close(lab)
    one = export_archive(
        lab.rio.db,
        lab.run_id,
        tmp_path / "one.tar",
        signing_key=lab.rio.signing_key,
        now=lab.rio.clock.now(),
    )
    two = export_archive(
        lab.rio.db,
        lab.run_id,
        tmp_path / "two.tar",
        signing_key=lab.rio.signing_key,
        now=lab.rio.clock.now(),
    )
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert one.sha256 == two.sha256


def test_archive_manifest_digests_match_its_members(lab: Lab, tmp_path: Path) -> None:
    _close(lab)
    out = tmp_path / "run.tar"
    export_archive(
        lab.rio.db, lab.run_id, out, signing_key=lab.rio.signing_key, now=lab.rio.clock.now()
    )
    members = _members(out.read_bytes())
    assert tuple(info.name for info, _ in members) == MEMBERS
    for info, _ in members:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (
            0,
            0,
            0,
            "",
            "",
            0o644,
        )
    content = {info.name: data for info, data in members}
    manifest = json.loads(content["manifest.json"])
    assert manifest["format"] == "rio.archive/v1"
    assert manifest["run"] == lab.run_id
    assert [f["name"] for f in manifest["files"]] == list(MEMBERS[2:])
    for entry in manifest["files"]:
        data = content[entry["name"]]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    sig = Envelope.loads(content["manifest.sig"], source="manifest.sig")
    assert sig.payload == content["manifest.json"]
    assert verified_keyids(sig, [lab.rio.verify_key], payload_type=MANIFEST_PAYLOAD_TYPE) == {
        lab.rio.signing_key_id
    }
    record = Envelope.loads(content["record.dsse.json"], source="record.dsse.json")
    assert record.payload_type == PAYLOAD_TYPE
    assert record.payload == content["record.json"]
    assert len(record.signatures) == 3
    assert content["scope.yaml"] == SCOPE.read_bytes()
    assert len(content["ledger/leaves.jsonl"].splitlines()) == 7
    keys = json.loads(content["keys.json"])
    assert [p["name"] for p in keys["people"]] == ["officer-a", "officer-b", "tech-t"]
    assert len(keys["people"][0]["keys"]) == 2
    findings = json.loads(content["findings.json"])
    assert [f["id"] for f in findings] == lab.findings[lab.run_id]
    assert "evidence" not in findings[0]


def test_archive_refused_while_the_record_is_open(lab: Lab, tmp_path: Path) -> None:
    assemble_record(lab.rio.db, lab.run_id, now=lab.rio.clock.now())
    out = tmp_path / "run.tar"
    with pytest.raises(StateError, match="not closed"):
        export_archive(
            lab.rio.db, lab.run_id, out, signing_key=lab.rio.signing_key, now=lab.rio.clock.now()
        )
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]


def test_archive_replaces_an_existing_file_and_leaves_no_temporary_file(
    lab: Lab, tmp_path: Path
) -> None:
    _close(lab)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "run.tar"
    out.write_bytes(b"old")
    export_archive(
        lab.rio.db, lab.run_id, out, signing_key=lab.rio.signing_key, now=lab.rio.clock.now()
    )
    assert list(folder.iterdir()) == [out]
    assert out.read_bytes()[:13] == b"manifest.json"


def test_archive_rectification_holds_the_order_and_its_recheck_diff(
    lab: Lab, tmp_path: Path
) -> None:
    calendar = WorkingCalendar()
    telnet, ftp = lab.findings[lab.run_id]
    order = order_rectification(
        lab.rio.db,
        lab.run_id,
        [telnet, ftp],
        calendar=calendar,
        deadline=date(2026, 9, 30),
        now=datetime(2026, 9, 29, 2, tzinfo=UTC),
    )
    _close(lab)
    add_sealed_run(
        lab,
        "R-20260930-rc",
        [("RIO-PORT-FTP", 21)],
        start=datetime(2026, 9, 30, 2, tzinfo=UTC),
    )
    record_recheck(lab.rio.db, order.id, recheck_run_id="R-20260930-rc", calendar=calendar)
    with lab.rio.db.session() as s:
        officer = registry.get_person(s, "officer-a")
    record_feedback(
        lab.rio.db,
        order.id,
        actor=officer,
        document_name="feedback.pdf",
        document=b"re-check result",
        now=datetime(2026, 10, 9, 3, tzinfo=UTC),
    )
    out = tmp_path / "run.tar"
    export_archive(
        lab.rio.db, lab.run_id, out, signing_key=lab.rio.signing_key, now=lab.rio.clock.now()
    )
    content = {info.name: data for info, data in _members(out.read_bytes())}
    rectification = json.loads(content["rectification.json"])
    assert rectification == [
        {
            "id": order.id,
            "findings": [telnet, ftp],
            "ordered_at": "2026-09-29T02:00:00.000000000Z",
            "deadline": "2026-09-30",
            "applied_on": None,
            "recheck_due": "2026-10-10",
            "recheck_run": "R-20260930-rc",
            "feedback_due": "2026-10-10",
            "feedback": {
                "at": "2026-10-09T03:00:00.000000000Z",
                "by": "officer-a",
                "document": "feedback.pdf",
                "sha256": hashlib.sha256(b"re-check result").hexdigest(),
            },
            "state": "unresolved",
            "diff": rectification[0]["diff"],
        }
    ]
    diff = rectification[0]["diff"]
    assert [(i["rule"], i["ip"], i["port"], i["key"]) for i in diff["fixed"]] == [
        ("RIO-PORT-TELNET", "127.0.10.5", 23, "RIO-PORT-TELNET:23")
    ]
    assert [(i["rule"], i["ip"], i["port"]) for i in diff["still_present"]] == [
        ("RIO-PORT-FTP", "127.0.10.5", 21)
    ]
    assert diff["new"] == []
    assert diff["fixed"][0]["where"] == "127.0.10.5:23/tcp via 127.0.10.0/27"
