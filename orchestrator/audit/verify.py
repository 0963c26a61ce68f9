"""``rio audit verify``: check an archive offline, with no database and no network.

:func:`verify_archive` reads the small documents whole and the leaves as a stream, in one pass
that feeds the Merkle recomputation and every leaf check at once, so memory stays flat in the
archive's size. Each check is named in the :class:`~orchestrator.audit.AuditReport`; a check
that cannot run (its input does not parse) fails, because nothing unverified may pass.
"""

from __future__ import annotations

import itertools
import tarfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from orchestrator.audit._archive import (
    CHECKPOINTS,
    FINDINGS,
    KEYS,
    MANIFEST,
    NOTICE,
    POLICY,
    RECORD,
    RECORD_DSSE,
    RECORD_SIGNATURES,
    RECTIFICATION,
    SCOPE,
    Archive,
)
from orchestrator.audit._docchecks import (
    Manifest,
    SignedCheckpoint,
    check_checkpoint_signatures,
    check_documents,
    check_manifest,
    check_record,
    check_trust,
    parse_manifest,
)
from orchestrator.audit._docs import (
    CheckpointEntry,
    KeysDoc,
    NoticeDoc,
    parse_checkpoints,
    parse_keys,
    parse_notice,
    parse_trusted_keys,
)
from orchestrator.audit._leafchecks import (
    CatalogueCheck,
    KillCheck,
    OutcomesCheck,
    RatesCheck,
    ScopeCheck,
    SequenceCheck,
    WindowsCheck,
)
from orchestrator.audit._members import FindingDigests, check_findings
from orchestrator.audit._report import CHECK_NAMES, AuditReport, CheckResult
from orchestrator.audit._tally import Tally, not_run
from orchestrator.audit._tree import RangeRoots, consistency_ranges
from orchestrator.errors import InputError, RecordFileError
from orchestrator.gate.decide import address_scope
from orchestrator.intake.policy import Policy, parse_policy
from orchestrator.intake.scope import Scope, parse_scope
from orchestrator.ledger.checkpoint import Checkpoint, parse_checkpoint_note
from orchestrator.ledger.leaves import Leaf, parse_leaf
from orchestrator.ledger.merkle import leaf_hash, verify_consistency

__all__ = ["load_trusted_keys", "require_archive", "verify_archive"]

T = TypeVar("T")


class _LeafCheck(Protocol):
    def feed(self, leaf: Leaf) -> None: ...

    def result(self) -> CheckResult: ...


def _attempt(parse: Callable[[bytes], T], read: Callable[[], bytes]) -> tuple[T | None, str | None]:
    try:
        return parse(read()), None
    except InputError as exc:
        return None, str(exc)


_EXPECTED = (
    "expected a rio archive: the uncompressed tar that `rio archive export RUN --out FILE.tar` "
    "writes, with manifest.json first"
)


def require_archive(path: Path | str) -> Path:
    """Refuse, with one clear error, what is not an archive at all.

    A directory, a log, a key or any other file that is no tar holding ``manifest.json`` is
    not something to run fifteen checks on: it was the wrong path. A tar with a manifest is
    left to :func:`verify_archive`, which says what is wrong inside it.

    Args:
        path: What was given as the archive.

    Returns:
        The path.

    Raises:
        InputError: It does not exist, is not a regular file, not a tar, or has no manifest;
            the message names the path and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; {_EXPECTED}")
    if not path.is_file():
        raise InputError(f"{path}: no such file; {_EXPECTED}")
    try:
        with tarfile.open(path, mode="r:") as tar:
            first = tar.next()
            names = {first.name} if first is not None else set()
            if first is not None and first.name != MANIFEST:
                names = set(tar.getnames())
    except (tarfile.TarError, OSError) as exc:
        kind = _kind_of(path)
        raise InputError(f"{path}: {kind}, not a tar archive; {_EXPECTED}") from exc
    if MANIFEST not in names:
        raise InputError(f"{path}: a tar archive without {MANIFEST}; {_EXPECTED}")
    return path


def _kind_of(path: Path) -> str:
    """A word for what the file looks like (the usual wrong guesses), for the error."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return "unreadable"
    if not head:
        return "an empty file"
    if head.startswith(b"-----BEGIN") and b"PUBLIC KEY" in head:
        return "a public key (PEM)"
    if head.startswith(b"-----BEGIN"):
        return "a PEM file"
    if head[:2] == b"\x1f\x8b":
        return "a gzip file (rio archives are not compressed)"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file"
    return "a file"


def _unreadable(path: Path, why: str) -> AuditReport:
    checks = tuple(not_run(name, why) for name in CHECK_NAMES)
    return AuditReport(archive=str(path), run=None, leaves=0, checks=checks)


def load_trusted_keys(path: Path | str) -> KeysDoc:
    """Read a trusted-keys file (``rio keys export-trust``).

    Raises:
        InputError: The file does not exist or cannot be read.
        RecordFileError: It is not a well-formed trusted-keys file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the trusted-keys file: {exc.strerror}") from exc
    return parse_trusted_keys(data, str(path))


def verify_archive(
    path: Path | str,
    *,
    trusted_key_id: str | None = None,
    trusted_keys: KeysDoc | None = None,
    now: datetime,
) -> AuditReport:
    """Verify a rio archive offline against a trust anchor.

    Args:
        path: The archive file (``docs/archive-format.md``).
        trusted_key_id: A pinned orchestrator key id: ``keys.json``'s orchestrator key must
            be it.
        trusted_keys: A trusted-keys file (:func:`load_trusted_keys`): the orchestrator key
            must be its, and every signer's key must be in it.
        now: The time of the audit (a record cannot have been closed after it).

    Returns:
        The report, true only when every check passed. Without either anchor every check
        still runs, but ``trust`` fails: the archive is at best self-consistent
        (:attr:`AuditReport.self_consistent`), not authenticated.

    Raises:
        InputError: The file does not exist.
    """
    path = Path(path)
    try:
        archive = Archive(path)
    except RecordFileError as exc:
        return _unreadable(path, str(exc))
    with archive:
        return _verify(archive, trusted_key_id, trusted_keys, now)


def _verify(
    archive: Archive, pinned: str | None, trusted: KeysDoc | None, now: datetime
) -> AuditReport:
    results: dict[str, CheckResult] = {}
    manifest: Manifest | None
    manifest, manifest_error = _attempt(parse_manifest, lambda: archive.read(MANIFEST))
    keys: KeysDoc | None
    keys, keys_error = _attempt(parse_keys, lambda: archive.read(KEYS))
    results["trust"] = check_trust(keys, keys_error, pinned=pinned, trusted=trusted)
    results["manifest"] = check_manifest(archive, manifest, manifest_error, keys, keys_error)
    run = manifest.run if manifest is not None else None

    notice: NoticeDoc | None
    notice, notice_error = _attempt(parse_notice, lambda: archive.read(NOTICE))
    scope_bytes, _ = _attempt(lambda b: b, lambda: archive.read(SCOPE))
    policy_bytes, _ = _attempt(lambda b: b, lambda: archive.read(POLICY))
    scope: Scope | None = None
    policy: Policy | None = None
    scope_error: str | None = "member is missing"
    policy_error: str | None = "member is missing"
    if scope_bytes is not None:
        scope, scope_error = _attempt(lambda b: parse_scope(b, SCOPE), lambda: scope_bytes)
    if policy_bytes is not None:
        policy, policy_error = _attempt(lambda b: parse_policy(b, POLICY), lambda: policy_bytes)
    entries: tuple[CheckpointEntry, ...] | None
    entries, entries_error = _attempt(parse_checkpoints, lambda: archive.read(CHECKPOINTS))

    signed: list[SignedCheckpoint] = []
    if keys is None or run is None or entries is None:
        why = keys_error if keys is None else (entries_error if entries is None else "no run id")
        results["checkpoint-signatures"] = not_run("checkpoint-signatures", why or "unreadable")
        if entries is not None and run is not None:
            for e in entries:
                cp: Checkpoint | None
                try:
                    cp, _ = parse_checkpoint_note(e.note)
                except RecordFileError:
                    cp = None
                signed.append(
                    SignedCheckpoint(index=e.index, checkpoint=cp, verified=False, note=e.note)
                )
    else:
        results["checkpoint-signatures"], signed = check_checkpoint_signatures(entries, keys, run)

    # Plan the tree work: the root at every checkpoint, the consistency proof of each pair.
    stated = [(s.index, s.checkpoint) for s in signed if s.checkpoint is not None]
    sizes = {cp.size for _, cp in stated}
    pairs = [(a, b) for a, b in itertools.pairwise(stated) if 0 < a[1].size < b[1].size]
    ranges = [r for a, b in pairs for r in consistency_ranges(a[1].size, b[1].size)]
    roots = RangeRoots(ranges, sizes=sizes)

    sequence = SequenceCheck(run)
    checkers: dict[str, _LeafCheck] = {"outcomes": OutcomesCheck(), "kill": KillCheck()}
    if scope is not None:
        checkers["scope"] = ScopeCheck(scope, address_scope(scope))
    if policy is not None:
        checkers["catalogue"] = CatalogueCheck(policy)
        if notice is not None:
            checkers["rates"] = RatesCheck(policy, notice.id)
            if scope is not None:
                checkers["windows"] = WindowsCheck(scope, policy, notice)
    feeders = tuple(checkers.values())

    digests = FindingDigests()
    leaves_read = 0
    if archive.has("ledger/leaves.jsonl"):
        for line in archive.leaf_lines():
            leaves_read += 1
            roots.add(leaf_hash(line.raw))
            if line.problem is not None:
                sequence.malformed(line.index, line.problem)
                continue
            try:
                leaf = parse_leaf(line.raw, source=f"leaf {line.index}")
            except RecordFileError as exc:
                sequence.malformed(line.index, exc.problem)
                continue
            sequence.feed(line.index, leaf)
            for checker in feeders:
                checker.feed(leaf)
            digests.feed(leaf)
        results["sequence"] = sequence.result()
    else:
        results["sequence"] = not_run("sequence", "ledger/leaves.jsonl is missing")

    results["merkle"] = _merkle(signed, roots, leaves_read)
    results["consistency"] = _consistency(pairs, roots)

    prerequisites = {
        "scope": scope_error,
        "windows": scope_error
        if scope is None
        else (policy_error if policy is None else notice_error),
        "rates": policy_error if policy is None else notice_error,
        "catalogue": policy_error,
    }
    for name in ("outcomes", "scope", "windows", "rates", "catalogue", "kill"):
        found = checkers.get(name)
        results[name] = (
            found.result()
            if found is not None
            else not_run(name, prerequisites.get(name) or "a document is unreadable")
        )

    record = None
    final = signed[-1] if signed else None
    record_bytes, record_error = _attempt(lambda b: b, lambda: archive.read(RECORD))
    envelope_bytes, envelope_error = _attempt(lambda b: b, lambda: archive.read(RECORD_DSSE))
    times_bytes, _ = _attempt(lambda b: b, lambda: archive.read(RECORD_SIGNATURES))
    if (
        record_bytes is None
        or envelope_bytes is None
        or keys is None
        or notice is None
        or run is None
    ):
        why = record_error or envelope_error or keys_error or notice_error or "no run id"
        results["record"] = not_run("record", why)
    else:
        results["record"], record = check_record(
            record_bytes=record_bytes,
            envelope_bytes=envelope_bytes,
            signature_times=times_bytes,
            run=run,
            final=final,
            keys=keys,
            notice=notice,
            policy=policy,
            now=now,
            trusted=trusted,
        )
    findings_bytes, findings_error = _attempt(lambda b: b, lambda: archive.read(FINDINGS))
    orders_bytes, orders_error = _attempt(lambda b: b, lambda: archive.read(RECTIFICATION))
    results["findings"] = check_findings(
        findings=findings_bytes,
        findings_error=findings_error,
        rectification=orders_bytes,
        rectification_error=orders_error,
        record=record,
        leaves=digests,
    )
    if notice is None or scope_bytes is None or policy_bytes is None:
        results["documents"] = not_run("documents", notice_error or "scope or policy is missing")
    else:
        results["documents"] = check_documents(
            notice=notice,
            scope_bytes=scope_bytes,
            policy_bytes=policy_bytes,
            scope=scope,
            scope_error=scope_error,
            policy=policy,
            policy_error=policy_error,
            record=record,
        )
    return AuditReport(
        archive=str(archive.path),
        run=run,
        leaves=leaves_read,
        checks=tuple(results[name] for name in CHECK_NAMES),
    )


def _merkle(signed: list[SignedCheckpoint], roots: RangeRoots, leaves: int) -> CheckResult:
    tally = Tally("merkle")
    if not signed:
        tally.offend("member ledger/checkpoints.json", "no checkpoint to compare the root with")
    for item in signed:
        cp = item.checkpoint
        subject = f"checkpoint {item.index}"
        if cp is None:
            tally.offend(subject, "note does not parse; no root to compare")
            continue
        if cp.size > leaves:
            tally.offend(subject, f"covers {cp.size} leaves; the archive holds {leaves}")
            continue
        if roots.tree_root(cp.size) != cp.root:
            tally.offend(
                subject, f"root over the first {cp.size} leaves differs from the signed root"
            )
    last = signed[-1].checkpoint if signed else None
    if last is not None and last.size < leaves:
        tally.offend(
            f"leaf {last.size}",
            f"the final checkpoint covers {last.size} leaves; the archive holds {leaves}",
            last.size,
        )
    return tally.result(f"root over {leaves} leaves equals every signed checkpoint")


def _consistency(
    pairs: list[tuple[tuple[int, Checkpoint], tuple[int, Checkpoint]]], roots: RangeRoots
) -> CheckResult:
    tally = Tally("consistency")
    for (i, old), (j, new) in pairs:
        subject = f"checkpoint {j}"
        proof = roots.proof(consistency_ranges(old.size, new.size))
        if proof is None:
            tally.offend(subject, f"the leaves do not reach size {new.size}; no proof from {i}")
            continue
        if not verify_consistency(old.size, new.size, old.root, new.root, proof):
            tally.offend(
                subject, f"is not an extension of checkpoint {i} (size {old.size}) by these leaves"
            )
    return tally.result(f"{len(pairs)} successive checkpoints proven consistent")
