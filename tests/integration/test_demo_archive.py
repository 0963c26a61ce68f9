"""`rio demo` end to end, and the tamper matrix on the archive it really produced.

The demo runs once per module in a subprocess with its own RIO_HOME (loopback farm on
127.0.10.0/27, everything through the gate). Each tamper edits that archive as an outsider would
(the manifest left as it was) and must fail with the right check named; the untouched archive
passes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.audit import AuditReport, load_trusted_keys, verify_archive
from orchestrator.ledger.checkpoint import Checkpoint, checkpoint_body
from orchestrator.ledger.leaves import canonical_json, format_instant, parse_instant
from orchestrator.ledger.merkle import root_from_leaves
from tests.audit import archive_builder as ab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("demo") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env.update({"RIO_HOME": str(home), "PYTHONPATH": str(ROOT)})
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.interfaces.cli", "demo", "--quiet"],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    archives = sorted((home / "archives").glob("*.tar"))
    assert len(archives) == 1
    _DEMO_HOME[:] = [home]
    return archives[0], proc.stdout


def _lines(archive: Path) -> list[bytes]:
    return ab.read_members(archive)["ledger/leaves.jsonl"].splitlines()


def _leaves_member(lines: list[bytes]) -> dict[str, bytes]:
    return {"ledger/leaves.jsonl": b"".join(line + b"\n" for line in lines)}


def _verify(path: Path) -> AuditReport:
    """Verify as the auditor does: against the trusted-keys file the demo exported."""
    home = _DEMO_HOME[0]
    return verify_archive(
        path, trusted_keys=load_trusted_keys(home / "trusted-keys.json"), now=datetime.now(UTC)
    )


_DEMO_HOME: list[Path] = []


def _failed(path: Path) -> set[str]:
    return {c.name for c in _verify(path).failed}


def _edit_leaf(line: bytes, change: Callable[[dict[str, object]], None]) -> bytes:
    doc = json.loads(line)
    change(doc)
    return canonical_json(doc)


def _intent_indexes(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if json.loads(line)["kind"] == "intent"]


def test_demo_ends_with_a_verified_archive(demo: tuple[Path, str]) -> None:
    archive, out = demo
    assert "audit verify: PASS" in out
    assert "record " in out and " closed" in out
    report = _verify(archive)
    assert bool(report), report.to_json()
    assert {c.name for c in verify_archive(archive, now=datetime.now(UTC)).failed} == {"trust"}


def test_demo_run_touched_only_announced_loopback_addresses(demo: tuple[Path, str]) -> None:
    archive, _ = demo
    for i in _intent_indexes(_lines(archive)):
        ip = json.loads(_lines(archive)[i])["data"]["ip"]
        assert ip.startswith("127.0.10.") and ip != "127.0.10.13"


def test_one_byte_changed_in_a_leaf_fails_merkle(demo: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = demo
    lines = _lines(archive)
    i = _intent_indexes(lines)[3]
    lines[i] = lines[i].replace(b'"ip":"127.0.10.', b'"ip":"127.0.11.', 1)
    forged = ab.rewrite(archive, tmp_path / "f.tar", _leaves_member(lines))
    assert {"manifest", "merkle"} <= _failed(forged)


def test_deleted_leaf_fails_merkle_and_sequence(demo: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = demo
    lines = _lines(archive)
    del lines[10]
    forged = ab.rewrite(archive, tmp_path / "f.tar", _leaves_member(lines))
    assert {"merkle", "sequence"} <= _failed(forged)


def test_swapped_leaves_fail_merkle_and_sequence(demo: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = demo
    lines = _lines(archive)
    lines[10], lines[11] = lines[11], lines[10]
    forged = ab.rewrite(archive, tmp_path / "f.tar", _leaves_member(lines))
    assert {"merkle", "sequence"} <= _failed(forged)


def test_leaf_appended_after_the_last_checkpoint_fails_merkle(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    archive, _ = demo
    lines = _lines(archive)
    extra = _edit_leaf(lines[-1], lambda d: d.update(seq=len(lines)))
    forged = ab.rewrite(archive, tmp_path / "f.tar", _leaves_member([*lines, extra]))
    assert "merkle" in _failed(forged)


def test_replaced_checkpoint_signature_fails_checkpoint_signatures(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    archive, _ = demo
    cps = json.loads(ab.read_members(archive)["ledger/checkpoints.json"])
    body, _, sig_line = cps[0]["note"].rpartition("\n\n")
    prefix, _, b64 = sig_line.strip().rpartition(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    cps[0]["note"] = f"{body}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    forged = ab.rewrite(archive, tmp_path / "f.tar", {"ledger/checkpoints.json": ab._cb(cps)})
    assert "checkpoint-signatures" in _failed(forged)


def test_altered_scope_document_fails_documents(demo: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = demo
    scope = ab.read_members(archive)["scope.yaml"].replace(b"127.0.10.0/27", b"127.0.0.0/8")
    forged = ab.rewrite(archive, tmp_path / "f.tar", {"scope.yaml": scope})
    assert "documents" in _failed(forged)


def test_record_edited_after_signing_fails_record(demo: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = demo
    record = json.loads(ab.read_members(archive)["record.json"])
    record["findings"] = record["findings"][1:]
    forged = ab.rewrite(archive, tmp_path / "f.tar", {"record.json": canonical_json(record)})
    assert "record" in _failed(forged)


def test_dropped_officer_signature_fails_record(demo: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = demo
    members = ab.read_members(archive)
    envelope = json.loads(members["record.dsse.json"])
    keys = json.loads(members["keys.json"])
    officer_keys = {
        k["key_id"] for p in keys["people"] if p["role"] == "officer" for k in p["keys"]
    }
    kept = [s for s in envelope["signatures"] if s["keyid"] not in officer_keys]
    kept += [s for s in envelope["signatures"] if s["keyid"] in officer_keys][:1]
    envelope["signatures"] = kept
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"record.dsse.json": json.dumps(envelope).encode()}
    )
    assert "record" in _failed(forged)


def test_out_of_scope_probe_with_recomputed_tree_but_old_signature_fails(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    archive, _ = demo
    members = ab.read_members(archive)
    lines = _lines(archive)
    i = _intent_indexes(lines)[0]
    lines[i] = _edit_leaf(lines[i], lambda d: d["data"].update(ip="127.0.99.9"))  # type: ignore[union-attr]
    cps = json.loads(members["ledger/checkpoints.json"])
    origin = f"rio/{json.loads(lines[0])['run']}"
    for cp in cps:
        _, root = root_from_leaves(lines[: cp["size"]])
        old_sig = cp["note"].rpartition("\n\n")[2]
        body = checkpoint_body(Checkpoint(origin=origin, size=cp["size"], root=root)).decode()
        cp["note"] = f"{body}\n{old_sig}"
    forged = ab.rewrite(
        archive,
        tmp_path / "f.tar",
        {**_leaves_member(lines), "ledger/checkpoints.json": ab._cb(cps)},
    )
    failed = _failed(forged)
    assert {"checkpoint-signatures", "scope"} <= failed


def test_timestamp_shifted_outside_the_window_fails_windows(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    archive, _ = demo
    lines = _lines(archive)
    i = _intent_indexes(lines)[5]
    late = datetime(2031, 1, 1, tzinfo=UTC)  # after the announced window (ends 2030-12-31)

    def shift(d: dict[str, object]) -> None:
        d["at"] = format_instant(late)
        d["data"]["deadline"] = (late + timedelta(seconds=10)).isoformat()  # type: ignore[index]

    lines[i] = _edit_leaf(lines[i], shift)
    forged = ab.rewrite(archive, tmp_path / "f.tar", _leaves_member(lines))
    assert {"merkle", "windows"} <= _failed(forged)


def test_compressed_timestamps_exceeding_a_budget_fail_rates(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    archive, _ = demo
    lines = _lines(archive)
    first_at = parse_instant(json.loads(lines[_intent_indexes(lines)[0]])["at"])

    def squeeze(d: dict[str, object]) -> None:
        d["at"] = format_instant(first_at)
        data = d["data"]
        assert isinstance(data, dict)
        if data.get("sent_at"):  # the send times are what the rate replay reads
            data["sent_at"] = format_instant(first_at)

    lines = [
        _edit_leaf(line, squeeze) if json.loads(line)["kind"] in ("intent", "outcome") else line
        for line in lines
    ]
    forged = ab.rewrite(archive, tmp_path / "f.tar", _leaves_member(lines))
    assert {"merkle", "rates"} <= _failed(forged)


def test_demo_findings_name_where_and_a_service_reached_two_ways_is_one_finding(
    demo: tuple[Path, str],
) -> None:
    archive, _ = demo
    findings = json.loads(ab.read_members(archive)["findings.json"])
    keys = [f["key"] for f in findings]
    assert len(keys) == len(set(keys)), "a key appears twice in one run"
    for f in findings:
        assert {"target", "ip", "port", "transport", "scheme", "server_name", "path"} <= set(
            f["location"]
        )
        assert f["sightings"][0]["leaf_seq"] == f["leaf_seq"]
        assert f["sightings"][0]["target"] == f["target"]
    # portal.demo.test (url:) and www.demo.test (host:) resolve into the announced /27: a
    # service reached by name and by address is one finding that names both targets.
    both = [f for f in findings if len({s["target"] for s in f["sightings"]}) >= 2]
    assert both, sorted({s["target"] for f in findings for s in f["sightings"]})
    record = json.loads(ab.read_members(archive)["record.json"])
    assert [f["key"] for f in record["findings"]] == keys


def test_every_sighting_digest_is_in_the_findings_of_its_outcome_leaf(
    demo: tuple[Path, str],
) -> None:
    archive, _ = demo
    leaves = {json.loads(line)["seq"]: json.loads(line) for line in _lines(archive)}
    findings = json.loads(ab.read_members(archive)["findings.json"])
    for f in findings:
        for sighting in f["sightings"]:
            leaf = leaves[sighting["leaf_seq"]]
            assert leaf["kind"] == "outcome"
            assert sighting["digest"] in leaf["data"]["findings"]
