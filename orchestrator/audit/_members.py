"""The ``findings`` check: ``findings.json`` and ``rectification.json`` parsed and cross-checked.

Both members are covered by the manifest, so only an insider with the orchestrator key can
change them, and such an insider could once put anything there (65 MiB of spaces passed). Now
each must be canonical JSON of the expected shape, and

- every finding's digest, and each of its ``sightings``' digests, is among the digests its outcome
  leaf (``leaf_seq``) carries, and every digest an outcome leaf carries is claimed by a finding of
  the file: the ledger, signed by checkpoints, decides what was found;
- the findings are the ones the signed record lists (id, rule, severity, digest, key,
  sightings);
- every rectification order is one the record lists and names findings of the file.

Only the fields that tie a finding to the ledger and the record are required; others (title,
location, evidence references) may be added to the format without changing this check.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from orchestrator.audit._archive import FINDINGS, RECTIFICATION
from orchestrator.audit._docs import parse_time
from orchestrator.audit._report import CheckResult
from orchestrator.audit._tally import Tally
from orchestrator.errors import RecordFileError
from orchestrator.ledger.leaves import Leaf
from orchestrator.record._zone import CALENDAR_ZONE
from orchestrator.record.canonical import canonical_bytes, loads_strict

__all__ = ["FindingDigests", "check_findings"]


class FindingDigests:
    """Fed every leaf: the finding digests each outcome leaf carries."""

    def __init__(self) -> None:
        self.by_seq: dict[int, Counter[str]] = {}

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind != "outcome":
            return
        digests = leaf.data.get("findings")
        if isinstance(digests, list) and digests:
            self.by_seq[leaf.seq] = Counter(d for d in digests if isinstance(d, str))


def _canonical_list(tally: Tally, name: str, data: bytes | None, error: str | None) -> list[Any]:
    member = f"member {name}"
    if data is None:
        tally.offend(member, error or "is missing")
        return []
    try:
        doc = loads_strict(data, source=name)
        if canonical_bytes(doc, source=name) != data:
            tally.offend(member, "is not canonical JSON (RFC 8785)")
            return []
    except RecordFileError as exc:
        tally.offend(member, str(exc))
        return []
    if not isinstance(doc, list):
        tally.offend(member, "is not a list")
        return []
    return doc


def _sightings(item: dict[str, Any], seq: int, digest: str) -> set[tuple[int, str]] | None:
    """Every (outcome leaf, digest) a finding claims: its first sighting and all the others."""
    pairs = {(seq, digest)}
    sightings = item.get("sightings", [])
    if not isinstance(sightings, list):
        return None
    for sighting in sightings:
        if not isinstance(sighting, dict):
            return None
        at, sighted = sighting.get("leaf_seq"), sighting.get("digest")
        if not isinstance(at, int) or not isinstance(sighted, str):
            return None
        pairs.add((at, sighted))
    return pairs


def _record_list(record: dict[str, Any] | None, key: str) -> list[dict[str, Any]] | None:
    if record is None:
        return None
    items = record.get(key)
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict)]


def check_findings(
    *,
    findings: bytes | None,
    findings_error: str | None,
    rectification: bytes | None,
    rectification_error: str | None,
    record: dict[str, Any] | None,
    leaves: FindingDigests,
) -> CheckResult:
    """Cross-check the findings and rectification members against the ledger and the record."""
    tally = Tally("findings")
    items = _canonical_list(tally, FINDINGS, findings, findings_error)
    seen: dict[str, dict[str, Any]] = {}
    carried: Counter[tuple[int, str]] = Counter()
    for i, item in enumerate(items):
        subject = f"{FINDINGS} [{i}]"
        if not isinstance(item, dict):
            tally.offend(subject, "is not an object")
            continue
        fid, digest, seq = item.get("id"), item.get("digest"), item.get("leaf_seq")
        if not isinstance(fid, str) or not isinstance(digest, str) or not isinstance(seq, int):
            tally.offend(subject, "needs id, digest and leaf_seq")
            continue
        subject = f"finding {fid}"
        if fid in seen:
            tally.offend(subject, "is listed twice")
            continue
        seen[fid] = item
        pairs = _sightings(item, seq, digest)
        if pairs is None:
            tally.offend(subject, "sightings need leaf_seq and digest")
            continue
        for at, sighted in sorted(pairs):
            carried[(at, sighted)] += 1
            if leaves.by_seq.get(at, Counter())[sighted] < carried[(at, sighted)]:
                tally.offend(subject, f"a digest is not among the findings of outcome leaf {at}")
    for seq, digests in sorted(leaves.by_seq.items()):
        for digest, count in sorted(digests.items()):
            if carried[(seq, digest)] < count:
                tally.leaf(seq, f"carries finding {digest[:16]}, which {FINDINGS} does not list")
    signed = _record_list(record, "findings")
    if signed is not None:
        listed = {str(f.get("id")): f for f in signed}
        for fid in sorted(set(listed) - set(seen)):
            tally.offend(f"finding {fid}", f"the signed record lists it; {FINDINGS} does not")
        for fid in sorted(set(seen) - set(listed)):
            tally.offend(f"finding {fid}", f"{FINDINGS} lists it; the signed record does not")
        for fid in sorted(set(listed) & set(seen)):
            for field in ("rule", "severity", "digest", "key", "sightings"):
                if field in listed[fid] and listed[fid].get(field) != seen[fid].get(field):
                    tally.offend(f"finding {fid}", f"{field} differs from the signed record's")
    orders = _canonical_list(tally, RECTIFICATION, rectification, rectification_error)
    signed_orders = _record_list(record, "rectifications")
    known_orders = None if signed_orders is None else {o.get("id") for o in signed_orders}
    for i, order in enumerate(orders):
        if not isinstance(order, dict) or not isinstance(order.get("findings"), list):
            tally.offend(f"{RECTIFICATION} [{i}]", "needs id and findings")
            continue
        subject = f"rectification order {order.get('id')!r}"
        if known_orders is not None and order.get("id") not in known_orders:
            tally.offend(subject, "is not one the signed record lists")
        for fid in order["findings"]:
            if fid not in seen:
                tally.offend(subject, f"names finding {fid!r}, which {FINDINGS} does not list")
        _check_feedback(tally, subject, order)
    total = sum(sum(c.values()) for c in leaves.by_seq.values())
    return tally.result(
        f"{len(seen)} findings, each carried by its outcome leaf ({total} in the ledger) and "
        f"listed by the record; {len(orders)} rectification orders"
    )


def _check_feedback(tally: Tally, subject: str, order: dict[str, Any]) -> None:
    """Art. 19: the re-check result's feedback, when recorded, says who, when and which
    document, and came within its due date (3 working days after the re-check)."""
    feedback = order.get("feedback")
    if feedback is None:
        return
    if not isinstance(feedback, dict) or set(feedback) != {"at", "by", "document", "sha256"}:
        tally.offend(subject, "feedback needs exactly at, by, document and sha256")
        return
    sha = feedback["sha256"]
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        tally.offend(subject, "feedback.sha256 is not a SHA-256 hex digest")
    if not (isinstance(feedback["by"], str) and feedback["by"]):
        tally.offend(subject, "feedback.by names nobody")
    try:
        at = parse_time(feedback["at"], RECTIFICATION, "feedback.at")
    except RecordFileError as exc:
        tally.offend(subject, str(exc))
        return
    due = order.get("feedback_due")
    if not isinstance(due, str):
        tally.offend(subject, "has feedback but no feedback_due (no re-check)")
        return
    given = at.astimezone(CALENDAR_ZONE).date()
    if given.isoformat() > due:
        tally.offend(subject, f"feedback given {given.isoformat()}, after its due date {due}")
