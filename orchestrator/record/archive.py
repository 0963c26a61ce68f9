"""The run archive (MPS Order 151, Art. 20), exactly as ``docs/archive-format.md`` describes.

One uncompressed ustar file, members in a fixed order, every header fixed (``mtime=0``,
``uid=gid=0``, empty user and group names, mode 0644), every JSON member canonical: the same
inputs give the same bytes. ``manifest.json`` lists every member after ``manifest.sig`` with
its SHA-256 and size, and ``manifest.sig`` is a DSSE envelope over the manifest signed by the
orchestrator key. The file is written to a temporary file beside the target and renamed, so a
reader never sees half an archive.

Only a closed record is archived: the archive holds the record's final version.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import NotFoundError, StateError, StoreError
from orchestrator.intake.keys import key_id, public_pem
from orchestrator.intake.notices import get_notice
from orchestrator.intake.registry import get_person, person_keys, person_of_key
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME, read_checkpoints, read_leaves
from orchestrator.record.assemble import current_record, finding_location
from orchestrator.record.canonical import canonical_bytes, ns_timestamp
from orchestrator.record.dsse import Envelope, sign_payload
from orchestrator.record.rectify import list_orders, order_diff
from orchestrator.record.signoff import record_envelope, record_signatures
from orchestrator.store.db import Database
from orchestrator.store.files import write_atomic
from orchestrator.store.models import FindingRow, PersonRow, RunRow

__all__ = [
    "ARCHIVE_FORMAT",
    "MANIFEST_PAYLOAD_TYPE",
    "MEMBERS",
    "ArchiveSummary",
    "build_members",
    "export_archive",
    "orchestrator_entry",
    "people_entries",
]

ARCHIVE_FORMAT = "rio.archive/v1"
MANIFEST_PAYLOAD_TYPE = "application/vnd.rio.archive-manifest+json;version=1"

MEMBERS = (
    "manifest.json",
    "manifest.sig",
    "notice.json",
    "scope.yaml",
    "policy.yaml",
    "keys.json",
    "ledger/leaves.jsonl",
    "ledger/checkpoints.json",
    "findings.json",
    "record.json",
    "record.dsse.json",
    "record.signatures.json",
    "rectification.json",
)
"""Every member, in the order they are written."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveSummary:
    """What was written."""

    path: Path
    run_id: str
    record_version: int
    sha256: str
    size: int
    members: tuple[str, ...]


def _ts(value: datetime | None) -> str | None:
    return ns_timestamp(value) if value is not None else None


def _json(obj: Any, name: str) -> bytes:
    return canonical_bytes(obj, source=f"archive member {name}")


def people_entries(s: Session, names: Iterable[str]) -> list[dict[str, Any]]:
    """The ``people`` entries of ``keys.json`` (and of a trusted-keys file), sorted by name."""
    people: list[dict[str, Any]] = []
    for name in sorted(set(names)):
        person = get_person(s, name)
        people.append(
            {
                "name": person.name,
                "role": str(person.role),
                "organisation": person.organisation,
                "vendor": person.vendor,
                "revoked_at": _ts(person.revoked_at),
                "keys": [
                    {
                        "key_id": k.key_id,
                        "public_pem": k.public_pem,
                        "created_at": _ts(k.created_at),
                        "expires_at": _ts(k.expires_at),
                        "revoked_at": _ts(k.revoked_at),
                    }
                    for k in person_keys(s, name)
                ],
            }
        )
    return people


def orchestrator_entry(public: Ed25519PublicKey) -> dict[str, str]:
    """The ``orchestrator`` entry of ``keys.json``: the key that signs checkpoints and manifest."""
    return {
        "key_name": CHECKPOINT_KEY_NAME,
        "public_pem": public_pem(public),
        "key_id": key_id(public),
    }


def _keys_member(db: Database, run: RunRow, signer_key: Ed25519PrivateKey, version: int) -> bytes:
    """Every person who signed the record's final version, plus the run's technician."""
    with db.session() as s:
        names: set[str] = set()
        for info in record_signatures(db, run.id, version):
            try:
                person, _ = person_of_key(s, info.key_id)
            except NotFoundError:
                continue  # a key no longer registered cannot be listed; its signature shows it
            names.add(person.name)
        technician = s.get(PersonRow, run.technician_id)
        if technician is not None:
            names.add(technician.name)
        people = people_entries(s, names)
    doc = {"orchestrator": orchestrator_entry(signer_key.public_key()), "people": people}
    return _json(doc, "keys.json")


def build_members(
    db: Database, run_id: str, *, signing_key: Ed25519PrivateKey
) -> list[tuple[str, bytes]]:
    """Build every archive member's bytes, in order (manifest first).

    Args:
        db: The database.
        run_id: The run; its record must be closed.
        signing_key: The orchestrator key (signs the manifest; its public half goes into
            ``keys.json``).

    Returns:
        ``(name, bytes)`` for each of :data:`MEMBERS`, in that order.

    Raises:
        NotFoundError: The run or its record does not exist.
        StateError: The record is not closed.
    """
    record = current_record(db, run_id)
    if not record.closed:
        raise StateError(
            f"record of run {run_id} (v{record.version}) is not closed: only a closed record "
            "is archived (rio record close)"
        )
    with db.session() as s:
        run = s.get(RunRow, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} is not known")
        notice = get_notice(s, run.notice_id)
        findings = [
            {
                "id": f.id,
                "rule": f.rule,
                "title": f.title,
                "severity": f.severity,
                "kind": f.kind,
                "probe": f.probe,
                "target": f.target,
                "ip": f.ip,
                "port": f.port,
                "key": f.key,
                "location": finding_location(f),
                "sightings": list(f.sightings),
                "leaf_seq": f.leaf_seq,
                "digest": f.digest,
                "remediation": f.remediation,
                "refs": f.refs,
            }
            for f in s.scalars(
                select(FindingRow)
                .where(FindingRow.run_id == run_id)
                .order_by(FindingRow.leaf_seq, FindingRow.id)
            )
        ]
    leaves = b"".join(leaf.raw + b"\n" for leaf in read_leaves(db, run_id))
    checkpoints = [{"size": c.size, "note": c.note} for c in read_checkpoints(db, run_id)]
    rectifications = []
    for order in list_orders(db, run_id):
        diff = order_diff(db, order)
        rectifications.append(
            {
                "id": order.id,
                "findings": list(order.findings),
                "ordered_at": ns_timestamp(order.ordered_at),
                "deadline": order.deadline.isoformat(),
                "applied_on": order.applied_on.isoformat() if order.applied_on else None,
                "recheck_due": order.recheck_due.isoformat(),
                "recheck_run": order.recheck_run_id,
                "feedback_due": order.feedback_due.isoformat() if order.feedback_due else None,
                "feedback": (
                    {
                        "at": ns_timestamp(order.feedback_at),
                        "by": order.feedback_by,
                        "document": order.feedback_document,
                        "sha256": order.feedback_sha256,
                    }
                    if order.feedback_at is not None
                    else None
                ),
                "state": order.state.value,
                "diff": diff.to_json() if diff is not None else None,
            }
        )
    envelope = record_envelope(db, record)
    signed_at = {i.key_id: i.signed_at for i in record_signatures(db, run_id, record.version)}
    # When each signature was made (the envelope has no field for it), in the envelope's order:
    # the offline audit checks each key and signer were valid at that moment.
    assert record.closed_at is not None  # checked above: only a closed record is archived
    signature_times = {
        "closed_at": ns_timestamp(record.closed_at),
        "signatures": [
            {"keyid": sig.keyid, "signed_at": ns_timestamp(signed_at[sig.keyid])}
            for sig in envelope.signatures
            if sig.keyid in signed_at
        ],
    }
    body: list[tuple[str, bytes]] = [
        ("notice.json", _json(notice.to_json(), "notice.json")),
        ("scope.yaml", notice.scope_bytes),
        ("policy.yaml", notice.policy_bytes),
        ("keys.json", _keys_member(db, run, signing_key, record.version)),
        ("ledger/leaves.jsonl", leaves),
        ("ledger/checkpoints.json", _json(checkpoints, "ledger/checkpoints.json")),
        ("findings.json", _json(findings, "findings.json")),
        ("record.json", record.body),
        ("record.dsse.json", envelope.dumps()),
        ("record.signatures.json", _json(signature_times, "record.signatures.json")),
        ("rectification.json", _json(rectifications, "rectification.json")),
    ]
    manifest = _json(
        {
            "format": ARCHIVE_FORMAT,
            "run": run_id,
            "files": [
                {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in body
            ],
        },
        "manifest.json",
    )
    signature = sign_payload(MANIFEST_PAYLOAD_TYPE, manifest, signing_key)
    manifest_sig = Envelope(
        payload_type=MANIFEST_PAYLOAD_TYPE, payload=manifest, signatures=(signature,)
    ).dumps()
    members = [("manifest.json", manifest), ("manifest.sig", manifest_sig), *body]
    assert tuple(name for name, _ in members) == MEMBERS
    return members


def _tar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def export_archive(
    db: Database, run_id: str, out: Path, *, signing_key: Ed25519PrivateKey, now: datetime
) -> ArchiveSummary:
    """Write the archive of a closed run to ``out`` (atomically: temp file, then rename).

    Args:
        db: The database.
        run_id: The run.
        out: The archive file to write (replaced if it exists).
        signing_key: The orchestrator key.
        now: When it was archived (kept for retention; not in the archive's bytes).

    Returns:
        What was written, with the archive's SHA-256.

    Raises:
        NotFoundError, StateError: As :func:`build_members`.
        StoreError: The file cannot be written.
    """
    members = build_members(db, run_id, signing_key=signing_key)
    data = _tar_bytes(members)
    target = out.resolve()
    try:
        write_atomic(target, data)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the archive: {exc.strerror}") from exc
    record = current_record(db, run_id)
    digest = hashlib.sha256(data).hexdigest()
    with db.session() as s:
        run = s.get(RunRow, run_id)
        if run is not None:
            # Remembered so that retention (rio purge) can tell archived runs from the rest.
            run.archived_at = now
            run.archive_sha256 = digest
    return ArchiveSummary(
        path=target,
        run_id=run_id,
        record_version=record.version,
        sha256=digest,
        size=len(data),
        members=MEMBERS,
    )
