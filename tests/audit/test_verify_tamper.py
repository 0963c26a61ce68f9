"""The tamper matrix: every alteration of a reference archive fails with the right check named."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.audit import (
    CHECK_NAMES,
    AuditReport,
    Offence,
    load_trusted_keys,
    verify_archive,
)
from orchestrator.audit._docs import KeysDoc
from orchestrator.ledger.checkpoint import Checkpoint, checkpoint_body, parse_checkpoint_note
from orchestrator.ledger.merkle import root_from_leaves
from orchestrator.record.dsse import Envelope
from tests.audit import archive_builder as ab


def verify(path: Path) -> AuditReport:
    """Verify as an auditor who pinned the reference orchestrator key."""
    return verify_archive(path, trusted_key_id=ab.orchestrator_key_id(), now=ab.AUDITED_AT)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return ab.build_archive(tmp_path / "clean.tar")


def first(report: AuditReport, name: str) -> Offence:
    offence = report.check(name).first_offence
    assert offence is not None, report.to_json()
    return offence


def failed(path: Path) -> set[str]:
    return {c.name for c in verify(path).failed}


def lines_of(path: Path) -> list[bytes]:
    return ab.read_members(path)["ledger/leaves.jsonl"].splitlines()


def test_untouched_archive_passes_every_check(archive: Path) -> None:
    report = verify(archive)
    assert bool(report), report.to_json()
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert json.loads(report.to_json())["ok"] is True


def test_one_byte_of_a_leaf_changed_fails_merkle_and_names_the_leaf(
    archive: Path, tmp_path: Path
) -> None:
    lines = lines_of(archive)
    lines[7] = lines[7].replace(b'"port":null', b'"port":8080', 1)
    assert lines[7] != lines_of(archive)[7]
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"ledger/leaves.jsonl": b"\n".join(lines) + b"\n"}
    )
    report = verify(forged)
    assert {"manifest", "merkle", "consistency"} <= failed(forged)
    assert report.check("merkle").first_offence is not None
    assert first(report, "merkle").subject == "checkpoint 0"


def test_deleted_leaf_fails_merkle_and_sequence(archive: Path, tmp_path: Path) -> None:
    lines = lines_of(archive)
    del lines[5]
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"ledger/leaves.jsonl": b"\n".join(lines) + b"\n"}
    )
    report = verify(forged)
    assert {"merkle", "sequence"} <= failed(forged)
    assert first(report, "sequence").seq == 5


def test_swapped_leaves_fail_merkle_and_sequence(archive: Path, tmp_path: Path) -> None:
    lines = lines_of(archive)
    lines[3], lines[4] = lines[4], lines[3]
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"ledger/leaves.jsonl": b"\n".join(lines) + b"\n"}
    )
    assert {"merkle", "sequence"} <= failed(forged)
    assert first(verify(forged), "sequence").seq == 3


def test_leaf_appended_after_last_checkpoint_fails_merkle(archive: Path, tmp_path: Path) -> None:
    lines = lines_of(archive)
    at = ab.WINDOW_START + timedelta(hours=2)
    extra = ab.leaf_lines([("state", at, {"state": "running", "reason": None})] * (len(lines) + 1))[
        -1
    ]
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"ledger/leaves.jsonl": b"\n".join([*lines, extra]) + b"\n"}
    )
    report = verify(forged)
    assert "merkle" in failed(forged)
    assert first(report, "merkle").seq == len(lines)
    assert report.check("consistency").ok and report.check("sequence").ok


def test_replaced_checkpoint_signature_fails_checkpoint_signatures(
    archive: Path, tmp_path: Path
) -> None:
    members = ab.read_members(archive)
    cps = json.loads(members["ledger/checkpoints.json"])
    body, _, sig = cps[2]["note"].rpartition("\n\n")
    name, blob = sig.rstrip("\n").split(" ")[1:]
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1
    cps[2]["note"] = f"{body}\n\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    forged = ab.rewrite(archive, tmp_path / "f.tar", {"ledger/checkpoints.json": ab._cb(cps)})
    report = verify(forged)
    assert "checkpoint-signatures" in failed(forged)
    assert first(report, "checkpoint-signatures").subject.startswith("checkpoint 2")
    assert report.check("merkle").ok


def test_altered_scope_document_fails_documents(archive: Path, tmp_path: Path) -> None:
    scope = ab.SCOPE_YAML.replace(b"127.0.10.0/27", b"127.0.10.0/24")
    forged = ab.rewrite(archive, tmp_path / "f.tar", {"scope.yaml": scope})
    assert {"manifest", "documents"} <= failed(forged)
    first = verify(forged).check("documents").first_offence
    assert first is not None and first.subject == "member scope.yaml"


def test_record_edited_after_signing_fails_record(archive: Path, tmp_path: Path) -> None:
    members = ab.read_members(archive)
    record = json.loads(members["record.json"])
    record["conclusions"] = {"summary": "nothing found"}
    forged = ab.rewrite(archive, tmp_path / "f.tar", {"record.json": ab._cb(record)})
    assert {"manifest", "record"} <= failed(forged)
    # Even with the envelope's payload swapped too, no signature covers the new bytes.
    envelope = Envelope.loads(members["record.dsse.json"], source="t")
    swapped = Envelope(
        payload_type=envelope.payload_type, payload=ab._cb(record), signatures=envelope.signatures
    )
    forged2 = ab.rewrite(
        archive,
        tmp_path / "g.tar",
        {"record.json": ab._cb(record), "record.dsse.json": swapped.dumps()},
    )
    report = verify(forged2)
    assert "record" in failed(forged2)
    assert first(report, "record").subject.startswith("signature 0")


def test_dropped_officer_signature_fails_record(archive: Path, tmp_path: Path) -> None:
    members = ab.read_members(archive)
    envelope = Envelope.loads(members["record.dsse.json"], source="t")
    fewer = Envelope(
        payload_type=envelope.payload_type,
        payload=envelope.payload,
        signatures=envelope.signatures[1:],
    )
    times = json.loads(members["record.signatures.json"])
    times["signatures"] = times["signatures"][1:]
    forged = ab.rewrite(
        archive,
        tmp_path / "f.tar",
        {"record.dsse.json": fewer.dumps(), "record.signatures.json": ab._cb(times)},
    )
    assert {"manifest", "record"} <= failed(forged)
    assert "1 distinct officer" in verify(forged).check("record").detail


def test_officer_signing_twice_counts_once(tmp_path: Path) -> None:
    keys = ab.Keys()
    li = keys.officers["officer-li"]
    members = ab.members_for(ab.default_leaves(), keys, signers=[li, keys.technician[1]])
    # A second key of the same officer: distinct keys, one person.
    from orchestrator.record.dsse import sign_envelope

    envelope = Envelope.loads(members["record.dsse.json"], source="t")
    people = json.loads(members["keys.json"])
    second = ab._key("li-2")
    from orchestrator.intake.keys import key_id, public_pem

    people["people"][0]["keys"].append(
        {
            "key_id": key_id(second.public_key()),
            "public_pem": public_pem(second),
            "created_at": None,
            "expires_at": None,
            "revoked_at": None,
        }
    )
    members["keys.json"] = ab._cb(people)
    members["record.dsse.json"] = sign_envelope(envelope, second).dumps()
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"record"}


def test_out_of_scope_probe_with_recomputed_tree_but_old_signature(
    archive: Path, tmp_path: Path
) -> None:
    members = ab.read_members(archive)
    lines = members["ledger/leaves.jsonl"].splitlines()
    at = ab.WINDOW_START + timedelta(hours=1, minutes=5)
    specs: list[ab.LeafSpec] = [("state", at, {})] * len(lines) + [
        ("intent", at, ab.intent(900, at, "127.0.11.9")),
        ("outcome", at, ab.outcome(len(lines))),
    ]
    lines += ab.leaf_lines(specs)[len(lines) :]
    cps = json.loads(members["ledger/checkpoints.json"])
    _, root = root_from_leaves(lines)
    old_sig = cps[-1]["note"].rpartition("\n\n")[2]
    body = checkpoint_body(Checkpoint(origin=f"rio/{ab.RUN}", size=len(lines), root=root)).decode()
    cps[-1] = {"size": len(lines), "note": f"{body}\n{old_sig}"}
    forged = ab.rewrite(
        archive,
        tmp_path / "f.tar",
        {"ledger/leaves.jsonl": b"\n".join(lines) + b"\n", "ledger/checkpoints.json": ab._cb(cps)},
    )
    report = verify(forged)
    assert {"checkpoint-signatures", "scope"} <= failed(forged)
    assert report.check("merkle").ok  # the tree was recomputed; only the signature betrays it
    assert first(report, "scope").seq == len(lines) - 2


def test_timestamp_shifted_outside_window_fails_windows(archive: Path, tmp_path: Path) -> None:
    leaves = ab.default_leaves()
    kind, _, data = leaves[5]
    assert kind == "intent"
    late = ab.WINDOW_END + timedelta(minutes=1)
    leaves[5] = (kind, late, {**data, "deadline": (late + timedelta(seconds=10)).isoformat()})
    # An outsider edits the leaf: the tree betrays it.
    lines = lines_of(archive)
    lines[5] = ab.leaf_lines(leaves)[5]
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"ledger/leaves.jsonl": b"\n".join(lines) + b"\n"}
    )
    assert {"merkle", "windows"} <= failed(forged)
    # An insider who re-signs everything is still caught by the replay.
    insider = ab.build_archive(tmp_path / "i.tar", leaves)
    report = verify(insider)
    assert first(report, "windows").seq == 5
    # The next intent now lies an hour "before" it: the rate replay says it cannot place it.
    assert failed(insider) == {"windows", "rates"}
    assert "cannot place" in first(report, "rates").reason


def test_deadline_past_window_end_fails_windows(tmp_path: Path) -> None:
    leaves = ab.default_leaves()
    kind, at, data = leaves[3]
    leaves[3] = (kind, at, {**data, "deadline": (ab.WINDOW_END + timedelta(seconds=1)).isoformat()})
    assert failed(ab.build_archive(tmp_path / "a.tar", leaves)) == {"windows"}


def test_compressed_timestamps_exceed_a_budget_and_fail_rates(
    archive: Path, tmp_path: Path
) -> None:
    leaves = ab.default_leaves()
    base = leaves[1][1]
    squeezed = []
    for i, (kind, at, data) in enumerate(leaves):
        if kind in ("intent", "outcome"):
            at = base + timedelta(milliseconds=10 * i)
            if kind == "intent":
                data = {
                    **data,
                    "ip": "127.0.10.1",
                    "deadline": (at + timedelta(seconds=10)).isoformat(),
                }
        squeezed.append((kind, at, data))
    insider = ab.build_archive(tmp_path / "i.tar", squeezed)
    report = verify(insider)
    assert failed(insider) == {"rates"}
    first = report.check("rates").first_offence
    # per_ip is 4: the fifth intent to 127.0.10.1 inside one second is the first offence.
    assert first is not None and first.seq == 9 and "per_ip" in first.reason
    lines = lines_of(archive)
    forged = ab.rewrite(
        archive,
        tmp_path / "f.tar",
        {"ledger/leaves.jsonl": b"".join(x + b"\n" for x in ab.leaf_lines(squeezed))},
    )
    assert len(lines) == len(ab.leaf_lines(squeezed))
    assert {"merkle", "rates"} <= failed(forged)


def test_probe_not_in_policy_fails_catalogue(tmp_path: Path) -> None:
    leaves = ab.default_leaves()
    kind, at, data = leaves[1]
    leaves[1] = (kind, at, {**data, "probe": "dns-axfr"})
    assert failed(ab.build_archive(tmp_path / "a.tar", leaves)) == {"catalogue"}


def test_intent_after_kill_fails_kill(tmp_path: Path) -> None:
    leaves = ab.default_leaves()
    at = leaves[10][1]
    leaves.insert(10, ("kill", at, {"by": "officer-li", "reason": "target distress"}))
    report = verify(ab.build_archive(tmp_path / "a.tar", leaves))
    assert {c.name for c in report.failed} == {"kill", "outcomes"}
    assert first(report, "kill").seq == 12  # the first intent after leaf 10


def test_intent_without_outcome_fails_outcomes(tmp_path: Path) -> None:
    leaves = ab.default_leaves()
    del leaves[4]  # the outcome of the intent at 3
    leaves = [
        (k, at, {**d, "intent": d["intent"] - 1} if k == "outcome" and d["intent"] > 4 else d)
        for k, at, d in leaves
    ]
    report = verify(ab.build_archive(tmp_path / "a.tar", leaves))
    assert {c.name for c in report.failed} == {"outcomes"}
    assert first(report, "outcomes").seq == 3


def test_excluded_address_fails_scope(tmp_path: Path) -> None:
    leaves = ab.default_leaves()
    kind, at, data = leaves[1]
    leaves[1] = (kind, at, {**data, "ip": "127.0.10.13"})
    report = verify(ab.build_archive(tmp_path / "a.tar", leaves))
    assert {c.name for c in report.failed} == {"scope"}
    assert "excluded" in first(report, "scope").reason


def test_probe_before_lead_time_fails_windows(tmp_path: Path) -> None:
    early = ab.ANNOUNCED_AT + timedelta(minutes=30)
    leaves = ab.default_leaves(start=early)
    assert "windows" in failed(ab.build_archive(tmp_path / "a.tar", leaves))


def test_archive_signed_by_another_orchestrator_fails_when_key_is_pinned(archive: Path) -> None:
    assert bool(verify(archive))
    report = verify_archive(archive, trusted_key_id="00" * 32, now=ab.AUDITED_AT)
    assert {c.name for c in report.failed} == {"trust"}
    assert report.verdict == "self-consistent, not authenticated"


def test_archive_without_trust_anchor_runs_every_check_but_is_not_authenticated(
    archive: Path,
) -> None:
    report = verify_archive(archive, now=ab.AUDITED_AT)
    assert not report
    assert {c.name for c in report.failed} == {"trust"}
    assert report.self_consistent
    assert report.verdict == "self-consistent, not authenticated"
    assert "not authenticated" in report.check("trust").detail
    assert json.loads(report.to_json())["ok"] is False


def test_archive_rebuilt_and_resigned_with_another_key_fails_against_trusted_keys(
    tmp_path: Path,
) -> None:
    trusted = _trusted(tmp_path, ab.Keys())
    # An insider rebuilds the whole archive with an orchestrator key of their own.
    rebuilt = ab.build_archive(tmp_path / "r.tar", keys=ab.Keys(orchestrator=ab._key("mallory")))
    report = verify_archive(rebuilt, trusted_keys=trusted, now=ab.AUDITED_AT)
    assert {c.name for c in report.failed} == {"trust"}
    assert "is not the trusted orchestrator key" in first(report, "trust").reason
    assert bool(
        verify_archive(
            ab.build_archive(tmp_path / "a.tar"), trusted_keys=trusted, now=ab.AUDITED_AT
        )
    )


def test_signature_by_key_outside_trusted_keys_does_not_count(tmp_path: Path) -> None:
    # The archive's keys.json names a third officer key the auditor's trusted keys never held.
    keys = ab.Keys()
    trusted = _trusted(tmp_path, keys)
    forged_keys = ab.Keys(
        officers={"officer-li": keys.officers["officer-li"], "officer-wang": ab._key("wang-2")}
    )
    path = ab.build_archive(tmp_path / "a.tar", keys=forged_keys)
    assert bool(verify_archive(path, trusted_key_id=ab.orchestrator_key_id(), now=ab.AUDITED_AT))
    report = verify_archive(path, trusted_keys=trusted, now=ab.AUDITED_AT)
    assert {c.name for c in report.failed} == {"record"}
    assert "trusted keys do not hold" in first(report, "record").reason


def test_keys_json_disagreeing_with_trusted_keys_about_an_organisation_fails_trust(
    tmp_path: Path,
) -> None:
    keys = ab.Keys()
    trusted = _trusted(tmp_path, keys)
    members = ab.members_for(ab.default_leaves(), keys)
    doc = json.loads(members["keys.json"])
    doc["people"][0]["organisation"] = "Elsewhere PSB"
    members["keys.json"] = ab._cb(doc)
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    report = verify_archive(path, trusted_keys=trusted, now=ab.AUDITED_AT)
    assert "trust" in {c.name for c in report.failed}
    assert "the trusted keys say" in first(report, "trust").reason


def test_officer_of_an_organ_the_notice_does_not_name_is_ignored_by_the_audit(
    tmp_path: Path,
) -> None:
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    doc = json.loads(members["keys.json"])
    wang = next(p for p in doc["people"] if p["name"] == "officer-wang")
    wang["organisation"] = "Other PSB"
    members["keys.json"] = ab._cb(doc)
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    report = verify(path)
    assert {c.name for c in report.failed} == {"record"}
    detail = report.check("record").detail
    assert "1 distinct officer of PSB" in detail
    assert "ignored: officer-wang (an officer of Other PSB, not of the organ(s)" in detail


def test_notice_json_names_the_announcing_organ(archive: Path) -> None:
    notice = json.loads(ab.read_members(archive)["notice.json"])
    assert notice["organ"] == "PSB"
    members = ab.read_members(archive)
    del notice["organ"]
    members["notice.json"] = ab._cb(notice)
    del members["manifest.json"], members["manifest.sig"]
    path = ab.write_archive(archive.parent / "n.tar", members, ab.Keys().orchestrator)
    report = verify(path)
    assert {c.name for c in report.failed} == {"record"}
    assert "names no announcing organ" in report.check("record").detail


def _trusted(tmp_path: Path, keys: ab.Keys) -> KeysDoc:
    file = tmp_path / "trusted-keys.json"
    file.write_bytes(ab.trusted_keys_json(keys))
    return load_trusted_keys(file)


def test_not_a_tar_file_fails_every_check(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"not a tar" * 100)
    report = verify(path)
    assert not report and len(report.failed) == len(CHECK_NAMES)


def test_checkpoint_note_parses_with_old_signature(archive: Path) -> None:
    cps = json.loads(ab.read_members(archive)["ledger/checkpoints.json"])
    cp, sigs = parse_checkpoint_note(cps[-1]["note"])
    assert cp.size == len(lines_of(archive)) and len(sigs) == 1


def test_signature_made_after_the_key_was_revoked_fails_record(tmp_path: Path) -> None:
    # An insider with every key re-signs everything, but the officer's key had been revoked
    # before the signature was made: record.signatures.json says when, keys.json says since when.
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    doc = json.loads(members["keys.json"])
    revoked = ab.ns_timestamp(ab.SIGNED_AT - timedelta(minutes=5))
    doc["people"][0]["keys"][0]["revoked_at"] = revoked
    members["keys.json"] = ab._cb(doc)
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    report = verify(path)
    assert failed(path) == {"record"}
    assert "was not valid at" in first(report, "record").reason


def test_signature_dated_before_the_record_existed_fails_record(tmp_path: Path) -> None:
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    signers = [*keys.officers.values(), keys.technician[1]]
    members["record.signatures.json"] = ab.signature_times(signers, ab.WINDOW_START)
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"record"}
    assert "before the record existed" in first(verify(path), "record").reason


def _signers(keys: ab.Keys) -> list[Ed25519PrivateKey]:
    return [*keys.officers.values(), keys.technician[1]]


def test_signature_without_a_signing_time_fails_record(tmp_path: Path) -> None:
    # Dropping its entry used to judge the signature at the record's creation, so a key revoked
    # later still counted.
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    times = json.loads(members["record.signatures.json"])
    times["signatures"] = times["signatures"][1:]
    members["record.signatures.json"] = ab._cb(times)
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"record"}
    assert "has no signing time" in first(verify(path), "record").reason


def test_signing_time_after_the_closure_fails_record(tmp_path: Path) -> None:
    keys = ab.Keys()
    times = ab.signature_times(_signers(keys), datetime(2099, 1, 1, tzinfo=UTC))
    members = ab.members_for(ab.default_leaves(), keys)
    members["record.signatures.json"] = times
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"record"}
    assert "after the record was closed" in first(verify(path), "record").reason


def test_closure_and_signing_time_in_the_future_fail_record(tmp_path: Path) -> None:
    keys = ab.Keys()
    future = datetime(2099, 1, 1, tzinfo=UTC)
    times = ab.signature_times(_signers(keys), future, closed_at=future + timedelta(days=1))
    members = ab.members_for(ab.default_leaves(), keys)
    members["record.signatures.json"] = times
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"record"}
    assert "in the future" in first(verify(path), "record").reason


def test_signature_times_without_a_closure_time_fail_record(tmp_path: Path) -> None:
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    times = json.loads(members["record.signatures.json"])
    members["record.signatures.json"] = ab._cb(times["signatures"])  # the old list shape
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"record"}
    assert "closed_at and signatures" in first(verify(path), "record").reason


DIGEST = "ab" * 32
FINDING = {"id": "F-1", "rule": "open-port", "severity": "low", "digest": DIGEST}


def _with_finding(
    keys: ab.Keys, *, in_file: bool = True, in_record: bool = True, in_leaf: bool = True
) -> dict[str, bytes]:
    """An archive whose second outcome leaf found something, listed where asked."""
    leaves = ab.default_leaves()
    seq = next(i for i, (kind, _, _) in enumerate(leaves) if kind == "outcome")
    kind, at, data = leaves[seq]
    leaves[seq] = (kind, at, {**data, "findings": [DIGEST] if in_leaf else []})
    members = ab.members_for(leaves, keys)
    if in_file:
        members["findings.json"] = ab._cb([{**FINDING, "leaf_seq": seq, "title": "Open port"}])
    record = json.loads(members["record.json"])
    record["findings"] = [FINDING] if in_record else []
    members["record.json"] = ab._cb(record)
    members["record.dsse.json"] = ab.sign_record(members["record.json"], _signers(keys))
    return members


def test_findings_carried_by_the_ledger_and_listed_by_the_record_pass(tmp_path: Path) -> None:
    keys = ab.Keys()
    path = ab.write_archive(tmp_path / "a.tar", _with_finding(keys), keys.orchestrator)
    report = verify(path)
    assert report, report.failed
    assert "1 findings" in report.check("findings").detail


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ({"in_leaf": False}, "not among the findings of outcome leaf"),
        ({"in_file": False}, "which findings.json does not list"),
        ({"in_record": False}, "the signed record does not"),
    ],
)
def test_finding_missing_from_one_of_ledger_file_and_record_fails_findings(
    tmp_path: Path, where: dict[str, bool], says: str
) -> None:
    keys = ab.Keys()
    path = ab.write_archive(tmp_path / "a.tar", _with_finding(keys, **where), keys.orchestrator)
    assert "findings" in failed(path)
    assert says in first(verify(path), "findings").reason


def test_garbage_findings_json_fails_findings(tmp_path: Path) -> None:
    # The red team's 65 MiB of spaces passed; a few are enough to show it is parsed now.
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    members["findings.json"] = b"[]" + b" " * (1 << 20)
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"findings"}
    assert "canonical" in first(verify(path), "findings").reason


def test_rectification_order_naming_an_unknown_finding_fails_findings(tmp_path: Path) -> None:
    keys = ab.Keys()
    members = ab.members_for(ab.default_leaves(), keys)
    members["rectification.json"] = ab._cb([{"id": "RO-1", "findings": ["F-9"]}])
    path = ab.write_archive(tmp_path / "a.tar", members, keys.orchestrator)
    assert failed(path) == {"findings"}


def test_intent_for_a_name_resolving_through_an_excluded_name_fails_scope(
    tmp_path: Path,
) -> None:
    # An insider's run (or a gate of old) let www.demo.test -> admin.demo.test (excluded) pass.
    leaves = ab.default_leaves()
    seq = next(i for i, (kind, _, _) in enumerate(leaves) if kind == "intent")
    kind, at, data = leaves[seq]
    resolution = {
        "name": "www.demo.test",
        "addresses": [data["ip"]],
        "cname_chain": ["admin.demo.test"],
        "nameserver": "127.0.0.1",
        "answered_at": "2026-03-02T01:00:00.000000Z",
    }
    leaves[seq] = (kind, at, {**data, "resolution": resolution})
    report = verify(ab.build_archive(tmp_path / "a.tar", leaves))
    assert {c.name for c in report.failed} == {"scope"}
    assert "resolves through admin.demo.test" in first(report, "scope").reason
