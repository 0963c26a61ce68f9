"""Checks over the archive's documents: manifest, checkpoints' signatures, record, documents."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.audit._archive import (
    ARCHIVE_FORMAT,
    MANIFEST,
    MANIFEST_PAYLOAD_TYPE,
    MANIFEST_SIG,
    MEMBER_ORDER,
    RECORD_SIGNATURES,
    Archive,
)
from orchestrator.audit._docs import CheckpointEntry, KeysDoc, NoticeDoc, parse_time
from orchestrator.audit._report import CheckResult
from orchestrator.audit._tally import Tally
from orchestrator.errors import RecordFileError, VerificationError
from orchestrator.intake.policy import Policy
from orchestrator.intake.scope import Scope
from orchestrator.ledger.checkpoint import Checkpoint, run_origin, verify_checkpoint
from orchestrator.record.canonical import canonical_bytes, loads_strict
from orchestrator.record.closure_rule import Threshold, why_not_counted
from orchestrator.record.dsse import PAYLOAD_TYPE, Envelope, verify_signature

__all__ = [
    "Manifest",
    "SignedCheckpoint",
    "check_checkpoint_signatures",
    "check_documents",
    "check_manifest",
    "check_record",
    "check_trust",
    "parse_manifest",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    """``manifest.json``: the run and every other member's digest and size."""

    run: str
    files: tuple[tuple[str, str, int], ...]
    raw: bytes


def parse_manifest(data: bytes) -> Manifest:
    """Read ``manifest.json`` strictly (it must be canonical JSON).

    Raises:
        RecordFileError: Malformed or not canonical.
    """
    doc = loads_strict(data, source=MANIFEST)
    if not isinstance(doc, dict) or set(doc) != {"format", "run", "files"}:
        raise RecordFileError(MANIFEST, "", "expected exactly format, run and files")
    if canonical_bytes(doc, source=MANIFEST) != data:
        raise RecordFileError(MANIFEST, "", "is not canonical JSON (RFC 8785)")
    if doc["format"] != ARCHIVE_FORMAT:
        raise RecordFileError(MANIFEST, "format", f"{doc['format']!r}: expected {ARCHIVE_FORMAT!r}")
    run = doc["run"]
    if not isinstance(run, str) or not run:
        raise RecordFileError(MANIFEST, "run", "expected a run id")
    files: list[tuple[str, str, int]] = []
    if not isinstance(doc["files"], list):
        raise RecordFileError(MANIFEST, "files", "expected an array")
    for i, item in enumerate(doc["files"]):
        if not isinstance(item, dict) or set(item) != {"name", "sha256", "size"}:
            raise RecordFileError(MANIFEST, f"files[{i}]", "expected name, sha256 and size")
        name, sha, size = item["name"], item["sha256"], item["size"]
        if not (isinstance(name, str) and isinstance(sha, str) and isinstance(size, int)):
            raise RecordFileError(MANIFEST, f"files[{i}]", "wrong field types")
        files.append((name, sha, size))
    return Manifest(run=run, files=tuple(files), raw=data)


def check_manifest(
    archive: Archive,
    manifest: Manifest | None,
    manifest_error: str | None,
    keys: KeysDoc | None,
    keys_error: str | None,
) -> CheckResult:
    """Members in order, their digests as listed, the manifest signed by the orchestrator key
    that ``keys.json`` names (whether that key is trusted is the ``trust`` check's business)."""
    tally = Tally("manifest")
    names = archive.names
    if list(names) != list(MEMBER_ORDER):
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                tally.offend(f"member {name}", "appears twice")
            elif name not in MEMBER_ORDER:
                tally.offend(f"member {name}", "is not an archive member")
            elif i >= len(MEMBER_ORDER) or MEMBER_ORDER[i] != name:
                tally.offend(f"member {name}", f"is out of order (position {i})")
            seen.add(name)
        for name in MEMBER_ORDER:
            if name not in seen:
                tally.offend(f"member {name}", "is missing")
    if manifest is None:
        tally.offend(f"member {MANIFEST}", manifest_error or "unreadable")
        return tally.result("")
    listed = {name: (sha, size) for name, sha, size in manifest.files}
    expected = [n for n in MEMBER_ORDER if n not in (MANIFEST, MANIFEST_SIG)]
    if [name for name, _, _ in manifest.files] != expected:
        tally.offend(f"member {MANIFEST}", "files does not list every other member in order")
    for name in expected:
        if name not in listed or not archive.has(name):
            continue
        sha, size = archive.digest(name)
        if (sha, size) != listed[name]:
            tally.offend(f"member {name}", "SHA-256 or size differs from the manifest")
    if keys is None:
        tally.offend("member keys.json", keys_error or "unreadable")
        return tally.result("")
    try:
        envelope = Envelope.loads(archive.read(MANIFEST_SIG), source=MANIFEST_SIG)
    except RecordFileError as exc:
        tally.offend(f"member {MANIFEST_SIG}", str(exc))
        return tally.result("")
    if envelope.payload_type != MANIFEST_PAYLOAD_TYPE:
        tally.offend(f"member {MANIFEST_SIG}", f"payload type {envelope.payload_type!r}")
    elif envelope.payload != manifest.raw:
        tally.offend(f"member {MANIFEST_SIG}", "payload is not manifest.json")
    elif not any(
        verify_signature(envelope.payload_type, envelope.payload, s, keys.orchestrator_key)
        for s in envelope.signatures
    ):
        tally.offend(
            f"member {MANIFEST_SIG}",
            f"no valid signature by the orchestrator key {keys.orchestrator_key_id[:16]}",
        )
    return tally.result(
        f"{len(manifest.files)} members as listed, signed by {keys.orchestrator_key_id[:16]}"
    )


NOT_AUTHENTICATED = (
    "no trust anchor given: the archive is self-consistent, not authenticated (pin the "
    "orchestrator key with --key-id, or give a trusted-keys file with --trust FILE or "
    "RIO_TRUSTED_KEYS; `rio keys export-trust` writes one)"
)


def check_trust(
    keys: KeysDoc | None,
    keys_error: str | None,
    *,
    pinned: str | None,
    trusted: KeysDoc | None,
) -> CheckResult:
    """The archive's orchestrator key is the one the auditor trusts, and the people's keys
    in ``keys.json`` say of their holders what the trusted-keys file says.

    Without an anchor (neither ``pinned`` nor ``trusted``) the check fails: an archive that
    carries its own key proves only that it is self-consistent.
    """
    tally = Tally("trust")
    if pinned is None and trusted is None:
        tally.offend("archive", NOT_AUTHENTICATED)
        return tally.result("")
    if keys is None:
        tally.offend("member keys.json", keys_error or "unreadable")
        return tally.result("")
    kid = keys.orchestrator_key_id
    # rio prints key ids shortened to 16 hex digits; a pin of at least that many is a prefix.
    if pinned is not None and not (len(pinned) >= 16 and kid.lower().startswith(pinned.lower())):
        tally.offend("member keys.json", f"orchestrator key {kid} is not the pinned key {pinned}")
    if trusted is not None:
        if kid != trusted.orchestrator_key_id:
            tally.offend(
                "member keys.json",
                f"orchestrator key {kid} is not the trusted orchestrator key "
                f"{trusted.orchestrator_key_id}",
            )
        for person in keys.people:
            for entry in person.keys:
                found = trusted.key(entry.key_id)
                if found is None:
                    continue  # the record check refuses signatures by keys nobody vouches for
                held = found[0]
                said = (person.name, person.role, person.organisation, person.vendor)
                vouched = (held.name, held.role, held.organisation, held.vendor)
                if said != vouched:
                    tally.offend(
                        f"key {entry.key_id[:16]}",
                        f"keys.json says it is {_holder(*said)}; the trusted keys say "
                        f"{_holder(*vouched)}",
                    )
    anchor = "the pinned key" if trusted is None else "the trusted orchestrator key"
    people = "" if trusted is None else f"; people's keys agree with {len(trusted.people)} trusted"
    return tally.result(f"orchestrator key {kid[:16]} is {anchor}{people}")


def _holder(name: str, role: str, organisation: str, vendor: str | None) -> str:
    return f"{name} ({role}, {organisation or '-'}{', vendor ' + vendor if vendor else ''})"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as its note states it, and whether its signature verified."""

    index: int
    checkpoint: Checkpoint | None
    verified: bool
    note: str


def check_checkpoint_signatures(
    entries: tuple[CheckpointEntry, ...], keys: KeysDoc, run: str
) -> tuple[CheckResult, list[SignedCheckpoint]]:
    """Verify every checkpoint note's signature, origin and stated size, and their order.

    Returns:
        The verdict and every checkpoint as parsed (for the merkle and consistency checks,
        which compare the stated roots whether or not the signature held).
    """
    from orchestrator.ledger.checkpoint import parse_checkpoint_note

    tally = Tally("checkpoint-signatures")
    origin = run_origin(run)
    out: list[SignedCheckpoint] = []
    previous = -1
    if not entries:
        tally.offend("member ledger/checkpoints.json", "holds no checkpoint")
    for entry in entries:
        subject = f"checkpoint {entry.index} (size {entry.size})"
        try:
            cp, _ = parse_checkpoint_note(entry.note)
        except RecordFileError as exc:
            tally.offend(subject, f"malformed note: {exc}")
            out.append(
                SignedCheckpoint(
                    index=entry.index, checkpoint=None, verified=False, note=entry.note
                )
            )
            continue
        verified = True
        try:
            verify_checkpoint(
                entry.note, keys.orchestrator_key, keys.orchestrator_name, origin=origin
            )
        except VerificationError as exc:
            verified = False
            tally.offend(subject, str(exc))
        if cp.size != entry.size:
            tally.offend(subject, f"note states size {cp.size}")
        if cp.size <= previous:
            tally.offend(subject, f"size {cp.size} does not follow {previous}")
        previous = max(previous, cp.size)
        out.append(
            SignedCheckpoint(index=entry.index, checkpoint=cp, verified=verified, note=entry.note)
        )
    return tally.result(f"{len(entries)} checkpoints signed by {keys.orchestrator_name}"), out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_documents(
    *,
    notice: NoticeDoc,
    scope_bytes: bytes,
    policy_bytes: bytes,
    scope: Scope | None,
    scope_error: str | None,
    policy: Policy | None,
    policy_error: str | None,
    record: dict[str, Any] | None,
) -> CheckResult:
    """The announced documents are the ones the notice and the record name."""
    tally = Tally("documents")
    if _sha256(scope_bytes) != notice.scope_sha256:
        tally.offend("member scope.yaml", f"SHA-256 differs from notice {notice.id}'s")
    if _sha256(policy_bytes) != notice.policy_sha256:
        tally.offend("member policy.yaml", f"SHA-256 differs from notice {notice.id}'s")
    if scope is None:
        tally.offend("member scope.yaml", scope_error or "does not parse")
    else:
        if scope.object.id != notice.object:
            tally.offend("member notice.json", f"object {notice.object!r} is not the scope's")
        if tuple(scope.sources) != notice.sources:
            tally.offend("member notice.json", "sources differ from the scope's")
        windows = tuple((w.start_utc, w.end_utc) for w in scope.windows)
        if windows != notice.windows:
            tally.offend("member notice.json", "windows differ from the scope's")
    if policy is None:
        tally.offend("member policy.yaml", policy_error or "does not parse")
    if record is not None:
        stated = record.get("notice")
        if not isinstance(stated, dict):
            tally.offend("member record.json", "names no notice")
        else:
            for field, want in (
                ("id", notice.id),
                ("scope_sha256", notice.scope_sha256),
                ("policy_sha256", notice.policy_sha256),
            ):
                if stated.get(field) != want:
                    tally.offend("member record.json", f"notice.{field} is not notice.json's")
            try:
                announced = parse_time(
                    stated.get("announced_at"), "record.json", "notice.announced_at"
                )
            except RecordFileError as exc:
                tally.offend("member record.json", str(exc))
            else:
                if announced != notice.announced_at:
                    tally.offend("member record.json", "notice.announced_at is not notice.json's")
    return tally.result(f"scope and policy are those announced by notice {notice.id}")


def _signature_times(
    tally: Tally, data: bytes | None
) -> tuple[dict[str, datetime], datetime | None]:
    """``record.signatures.json``: key id -> when that signature was made; when it was closed."""
    member = f"member {RECORD_SIGNATURES}"
    if data is None:
        tally.offend(member, "is missing: no signature has a signing time")
        return {}, None
    try:
        doc = loads_strict(data, source=RECORD_SIGNATURES)
    except RecordFileError as exc:
        tally.offend(member, str(exc))
        return {}, None
    if not isinstance(doc, dict) or set(doc) != {"closed_at", "signatures"}:
        tally.offend(member, "expected exactly closed_at and signatures")
        return {}, None
    closed_at: datetime | None = None
    try:
        closed_at = parse_time(doc["closed_at"], RECORD_SIGNATURES, "closed_at")
    except RecordFileError as exc:
        tally.offend(member, str(exc))
    items = doc["signatures"]
    out: dict[str, datetime] = {}
    if not isinstance(items, list):
        tally.offend(member, "signatures is not a list")
        return {}, closed_at
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("keyid"), str):
            tally.offend(member, f"signatures[{i}] has no keyid")
            continue
        try:
            out[item["keyid"]] = parse_time(
                item.get("signed_at"), RECORD_SIGNATURES, f"signatures[{i}].signed_at"
            )
        except RecordFileError as exc:
            tally.offend(member, str(exc))
    return out, closed_at


def _signing_time_problem(
    when: datetime | None, created: datetime | None, closed: datetime | None, now: datetime
) -> str | None:
    """Why a signing time cannot be true: it must lie between creation and closure, not ahead."""
    if when is None:
        return f"has no signing time in {RECORD_SIGNATURES} (it would be judged at no moment)"
    if created is not None and when < created:
        return f"dated {when.isoformat()}, before the record existed"
    if closed is not None and when > closed:
        return f"dated {when.isoformat()}, after the record was closed at {closed.isoformat()}"
    if when > now:
        return f"dated {when.isoformat()}, in the future"
    return None


def check_record(
    *,
    record_bytes: bytes,
    envelope_bytes: bytes,
    signature_times: bytes | None = None,
    run: str,
    final: SignedCheckpoint | None,
    keys: KeysDoc,
    notice: NoticeDoc,
    policy: Policy | None,
    now: datetime,
    trusted: KeysDoc | None = None,
) -> tuple[CheckResult, dict[str, Any] | None]:
    """The record is what was signed, names the final checkpoint, and carries enough valid
    signatures of distinct officers (of the organs the notice names) and entrusted technicians
    per the policy. With ``trusted``, every signer's key must be in it too, valid there at
    signing time, and the holder's role, organisation and vendor are taken from it.

    Every signature has a signing time in ``record.signatures.json``, between the record's
    creation and its closure (which is not after ``now``, the time of the audit); each key and
    signer is judged at that moment.

    Returns:
        The verdict and the parsed record (``None`` if it does not parse).
    """
    tally = Tally("record")
    try:
        record = loads_strict(record_bytes, source="record.json")
    except RecordFileError as exc:
        tally.offend("member record.json", str(exc))
        return tally.result(""), None
    if not isinstance(record, dict):
        tally.offend("member record.json", "is not an object")
        return tally.result(""), None
    try:
        if canonical_bytes(record, source="record.json") != record_bytes:
            tally.offend("member record.json", "is not canonical JSON (RFC 8785)")
    except RecordFileError as exc:
        tally.offend("member record.json", str(exc))
    if record.get("format") != "rio.record/v1":
        tally.offend("member record.json", f"format {record.get('format')!r}")
    if record.get("run") != run:
        tally.offend("member record.json", f"run {record.get('run')!r} is not {run!r}")
    _check_ledger(tally, record.get("ledger"), run, final)
    created_at: datetime | None = None
    try:
        created_at = parse_time(record.get("created_at"), "record.json", "created_at")
    except RecordFileError as exc:
        tally.offend("member record.json", str(exc))
    try:
        envelope = Envelope.loads(envelope_bytes, source="record.dsse.json")
    except RecordFileError as exc:
        tally.offend("member record.dsse.json", str(exc))
        return tally.result(""), record
    if envelope.payload_type != PAYLOAD_TYPE:
        tally.offend("member record.dsse.json", f"payload type {envelope.payload_type!r}")
        return tally.result(""), record
    if envelope.payload != record_bytes:
        tally.offend("member record.dsse.json", "payload is not record.json's bytes")
    signed_at, closed_at = _signature_times(tally, signature_times)
    audit_time = now
    if closed_at is not None and created_at is not None and closed_at < created_at:
        tally.offend(f"member {RECORD_SIGNATURES}", "closed_at is before the record existed")
    if closed_at is not None and closed_at > audit_time:
        tally.offend(
            f"member {RECORD_SIGNATURES}", f"closed_at {closed_at.isoformat()} is in the future"
        )
    listed = {signature.keyid for signature in envelope.signatures}
    for keyid in sorted(set(signed_at) - listed):
        tally.offend(f"member {RECORD_SIGNATURES}", f"dates {keyid[:16]}, which did not sign")
    officers: set[str] = set()
    technicians: set[str] = set()
    ignored: list[str] = []
    for i, signature in enumerate(envelope.signatures):
        subject = f"signature {i} (keyid {signature.keyid[:16]})"
        # Valid when it signed, and only a recorded moment inside the record's life counts.
        when = signed_at.get(signature.keyid)
        problem = _signing_time_problem(when, created_at, closed_at, audit_time)
        if problem is not None or when is None:
            tally.offend(subject, problem or "has no signing time")
            continue
        found = keys.key(signature.keyid)
        if found is None:
            tally.offend(subject, "by a key not in keys.json")
            continue
        person, key = found
        if not verify_signature(envelope.payload_type, envelope.payload, signature, key.public_key):
            tally.offend(subject, f"by {person.name} does not verify over the record")
            continue
        if not key.valid_at(when):
            tally.offend(subject, f"{person.name}'s key was not valid at {when.isoformat()}")
            continue
        if not person.active_at(when):
            tally.offend(subject, f"{person.name} was revoked before {when.isoformat()}")
            continue
        if trusted is not None:
            vouched = trusted.key(signature.keyid)
            if vouched is None:
                tally.offend(subject, f"by {person.name}'s key, which the trusted keys do not hold")
                continue
            person, key = vouched
            if when is not None and not (key.valid_at(when) and person.active_at(when)):
                tally.offend(
                    subject,
                    f"the trusted keys say {person.name}'s key was not valid at {when.isoformat()}",
                )
                continue
        reason = why_not_counted(
            role=person.role,
            organisation=person.organisation,
            vendor=person.vendor,
            threshold=Threshold(
                officers=0, technicians=0, vendor=notice.vendor, organs=notice.organs
            ),
        )
        if reason is not None:
            ignored.append(f"{person.name} ({reason})")
        elif person.role == "officer":
            officers.add(person.name)
        else:
            technicians.add(person.name)
    organs = ", ".join(sorted(notice.organs)) or "(no organ named by notice.json)"
    if policy is None:
        tally.offend("member policy.yaml", "unreadable: sign-off thresholds unknown")
    else:
        need_officers = policy.signoff.officers
        if len(officers) < need_officers:
            tally.offend(
                "member record.dsse.json",
                f"{_n(len(officers), 'distinct officer')} of {organs} signed validly; the policy "
                f"requires {need_officers}" + _ignored_note(ignored),
            )
        need_technicians = policy.signoff.technicians if notice.vendor is not None else 0
        if len(technicians) < need_technicians:
            tally.offend(
                "member record.dsse.json",
                f"{_n(len(technicians), 'technician')} of {notice.vendor} signed validly; "
                f"the policy requires {need_technicians}" + _ignored_note(ignored),
            )
    return (
        tally.result(
            f"version {record.get('version')} signed by {_n(len(officers), 'officer')} of {organs} "
            f"and {_n(len(technicians), 'technician')}; names the final checkpoint"
            + _ignored_note(ignored)
        ),
        record,
    )


def _n(count: int, noun: str) -> str:
    """``1 officer``, ``2 officers``: a count a reader sees, never ``1 officers``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ignored_note(ignored: list[str]) -> str:
    return f"; ignored: {'; '.join(ignored)}" if ignored else ""


def _check_ledger(tally: Tally, ledger: Any, run: str, final: SignedCheckpoint | None) -> None:
    if not isinstance(ledger, dict):
        tally.offend("member record.json", "ledger is missing")
        return
    if ledger.get("origin") != run_origin(run):
        tally.offend("member record.json", f"ledger.origin {ledger.get('origin')!r}")
    if final is None or final.checkpoint is None:
        tally.offend("member record.json", "there is no final checkpoint to compare with")
        return
    cp = final.checkpoint
    if ledger.get("size") != cp.size:
        tally.offend("member record.json", f"ledger.size {ledger.get('size')!r} is not {cp.size}")
    if ledger.get("root") != base64.b64encode(cp.root).decode("ascii"):
        tally.offend("member record.json", "ledger.root is not the final checkpoint's root")
    note = ledger.get("checkpoint")
    if note is not None and note != final.note:
        tally.offend("member record.json", "ledger.checkpoint is not the final checkpoint's note")
