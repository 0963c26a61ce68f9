"""Purging evidence after retention: crypto-shredding closed, archived runs only.

Purging a run sets every ``findings.evidence`` of the run to NULL and deletes the run's wrapped
data key (``run_keys``), so any copy of the ciphertext left in a backup can no longer be opened.
The probe log, the records, the signatures and the archives stay: they hold digests, never
evidence, and they are what an auditor verifies.

A run is purged only if it is

- **closed**: its newest record version has ``closed_at`` set; and
- **archived**: the schema has no "archive exported" marker yet, so the caller names the archive
  files (``rio archive export`` output). An archive counts for a run when it is well formed, its
  ``manifest.sig`` is the orchestrator key's signature over ``manifest.json``, every member's
  SHA-256 and size match the manifest, the manifest names the run, and its ``record.json`` is
  the run's closed record, byte for byte.

Every run created before the ``before`` date that still holds evidence must pass, or nothing is
deleted at all (:class:`~orchestrator.errors.StateError` lists every run that does not).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.access.evidence import refuse_logged
from orchestrator.access.roles import Action, decide
from orchestrator.errors import AccessDeniedError, RecordFileError, StateError, VerificationError
from orchestrator.intake.registry import Person
from orchestrator.record.archive import ARCHIVE_FORMAT, MANIFEST_PAYLOAD_TYPE
from orchestrator.record.dsse import Envelope, verified_keyids
from orchestrator.store.models import AccessEntry, FindingRow, RecordRow, RunKeyRow, RunRow

if TYPE_CHECKING:
    from orchestrator.context import Rio

__all__ = ["ArchiveProof", "purge", "read_archive_proof"]

_CHUNK = 1 << 16
_MAX_SMALL_MEMBER = 64 << 20  # manifest, signature and record are small; refuse absurd ones


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveProof:
    """What a verified archive proves: this run's closed record is archived in this file."""

    path: Path
    run_id: str
    record: bytes
    sha256: str


def _small(tar: tarfile.TarFile, name: str, source: str) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError as exc:
        raise RecordFileError(source, name, "member missing") from exc
    if not info.isreg() or info.size > _MAX_SMALL_MEMBER:
        raise RecordFileError(source, name, "not a regular member of a sane size")
    handle = tar.extractfile(info)
    if handle is None:
        raise RecordFileError(source, name, "cannot be read")
    return handle.read()


def _digest(tar: tarfile.TarFile, name: str, source: str) -> tuple[str, int]:
    try:
        info = tar.getmember(name)
    except KeyError as exc:
        raise VerificationError(f"{source}: {name}: listed in the manifest, missing") from exc
    handle = tar.extractfile(info) if info.isreg() else None
    if handle is None:
        raise VerificationError(f"{source}: {name}: not a regular member")
    h = hashlib.sha256()
    size = 0
    while chunk := handle.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def read_archive_proof(rio: Rio, path: Path) -> ArchiveProof:
    """Verify an archive file well enough to trust it as the run's lasting copy.

    Args:
        rio: The opened home (its orchestrator key must have signed the manifest).
        path: The archive file.

    Returns:
        The run the archive holds and the record bytes it holds.

    Raises:
        RecordFileError: not a readable tar, or a member is missing or malformed.
        VerificationError: the manifest signature or a member digest does not verify.
    """
    source = str(path)
    try:
        with tarfile.open(path, mode="r:") as tar:  # uncompressed ustar only, as specified
            run_id, record = _verify_members(rio, tar, source)
        sha256 = _file_sha256(path)
    except (OSError, tarfile.TarError) as exc:
        raise RecordFileError(source, "", "not a readable rio archive (uncompressed tar)") from exc
    return ArchiveProof(path=path, run_id=run_id, record=record, sha256=sha256)


def _verify_members(rio: Rio, tar: tarfile.TarFile, source: str) -> tuple[str, bytes]:
    manifest_bytes = _small(tar, "manifest.json", source)
    try:
        manifest: Any = json.loads(manifest_bytes)
    except ValueError as exc:
        raise RecordFileError(source, "manifest.json", "not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise RecordFileError(source, "manifest.json: format", f"expected {ARCHIVE_FORMAT}")
    run_id = manifest.get("run")
    files = manifest.get("files")
    if not isinstance(run_id, str) or not isinstance(files, list):
        raise RecordFileError(source, "manifest.json", "needs a run and a files list")
    sig = _small(tar, "manifest.sig", source)
    envelope = Envelope.loads(sig, source=f"{source}: manifest.sig")
    if envelope.payload != manifest_bytes or rio.signing_key_id not in verified_keyids(
        envelope, [rio.verify_key], payload_type=MANIFEST_PAYLOAD_TYPE
    ):
        raise VerificationError(
            f"{source}: manifest.sig: not this orchestrator's signature over manifest.json"
        )
    listed: set[str] = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise RecordFileError(source, f"manifest.json: files[{i}]", "malformed entry")
        name = entry["name"]
        listed.add(name)
        if _digest(tar, name, source) != (entry.get("sha256"), entry.get("size")):
            raise VerificationError(f"{source}: {name}: SHA-256 or size differs from manifest")
    if "record.json" not in listed:
        raise RecordFileError(source, "manifest.json: files", "does not list record.json")
    return run_id, _small(tar, "record.json", source)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _closed_record(s: Session, run_id: str) -> RecordRow | None:
    newest = s.scalar(
        select(RecordRow).where(RecordRow.run_id == run_id).order_by(RecordRow.version.desc())
    )
    return newest if newest is not None and newest.closed_at is not None else None


def _candidates(s: Session, cutoff: datetime) -> list[str]:
    """Runs created before ``cutoff`` that still hold evidence (ciphertext or a data key)."""
    holding = or_(
        RunRow.id.in_(select(RunKeyRow.run_id)),
        RunRow.id.in_(select(FindingRow.run_id).where(FindingRow.evidence.is_not(None))),
    )
    return list(
        s.scalars(select(RunRow.id).where(RunRow.created_at < cutoff, holding).order_by(RunRow.id))
    )


def purge(
    rio: Rio,
    person: Person,
    before: date,
    *,
    archives: Sequence[Path] = (),
    now: datetime | None = None,
) -> int:
    """Crypto-shred the evidence of every run created before ``before`` (UTC midnight).

    All or nothing: every such run still holding evidence must be closed and archived in one of
    ``archives`` (see the module docstring), else nothing is deleted.

    Args:
        rio: The opened home.
        person: Who purges (an officer; see :mod:`orchestrator.access.roles`).
        before: Runs created before this date are purged.
        archives: Archive files proving the runs are archived.
        now: The time of the purge (default: the app's clock).

    Returns:
        The number of runs whose evidence was destroyed.

    Raises:
        AccessDeniedError: the person may not purge (the attempt is logged).
        RecordFileError, VerificationError: an archive is malformed or does not verify.
        StateError: a run is not closed or not archived; nothing was deleted.
    """
    when = now or rio.clock.now()
    cutoff = datetime.combine(before, time.min, tzinfo=UTC)
    subject = f"evidence of runs created before {before.isoformat()}"
    with rio.db.session() as s:
        verdict = decide(s, person, Action.PURGE, now=when)
    if not verdict:
        refuse_logged(
            rio,
            AccessDeniedError(verdict.message),
            person=person.name,
            action=Action.PURGE,
            run_id=None,
            subject=subject,
            reason=f"[refused: {verdict.why}]",
            now=when,
        )
    proofs: dict[str, list[ArchiveProof]] = {}
    for path in archives:
        proof = read_archive_proof(rio, path)
        proofs.setdefault(proof.run_id, []).append(proof)

    with rio.db.session() as s:
        problems: list[str] = []
        chosen: dict[str, ArchiveProof] = {}
        for run_id in _candidates(s, cutoff):
            record = _closed_record(s, run_id)
            if record is None:
                problems.append(f"run {run_id}: its record is not closed")
                continue
            body = bytes(record.body)
            match = next((p for p in proofs.get(run_id, []) if p.record == body), None)
            if match is None:
                problems.append(
                    f"run {run_id}: no archive given holds its closed record v{record.version} "
                    "(rio archive export, then pass it with --archive)"
                )
                continue
            chosen[run_id] = match
        if problems:
            raise StateError("purge refused, nothing deleted: " + "; ".join(problems))
        for run_id, proof in chosen.items():
            s.execute(update(FindingRow).where(FindingRow.run_id == run_id).values(evidence=None))
            s.execute(delete(RunKeyRow).where(RunKeyRow.run_id == run_id))
            # Logged in the same transaction: a purge without its log entry cannot happen.
            s.add(
                AccessEntry(
                    at=when,
                    person=person.name,
                    action=Action.PURGE.value,
                    run_id=run_id,
                    subject=f"evidence of run {run_id}",
                    reason=f"retention: created before {before.isoformat()}; archived in "
                    f"{proof.path.name} (sha256 {proof.sha256})",
                    allowed=True,
                )
            )
    return len(chosen)
