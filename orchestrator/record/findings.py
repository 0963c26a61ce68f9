"""A run's findings as a person reads them: where, seen as what, and how two runs differ.

Each stored finding (:class:`~orchestrator.store.models.FindingRow`) is one stable key within
its run; :class:`FindingView` is its read-only face: the location where it was first made, every
target (and Host/SNI name) that saw it, the catalogue words and references.

:func:`finding_diff` compares two sets of findings by their stable keys (rule + object +
endpoint + digest of the evidence's subject, :func:`probes.findings.finding_key`): ``fixed``
(only in the old), ``still_present`` (in both), ``new`` (only in the new). ``rio findings diff``
uses it for two runs of one object, the Art. 19 re-check for an order and its re-check run.
The authorised operations over them (for a person) are in :mod:`orchestrator.access.findings`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.store.models import FindingRow
from probes.findings import Location

__all__ = [
    "DiffItem",
    "FindingDiff",
    "FindingView",
    "finding_diff",
    "load_findings",
    "record_where",
    "view_of",
    "where_text",
]


def where_text(location: Location, seen_as: Iterable[tuple[str, str | None]]) -> str:
    """``https://127.0.0.1:443/ via host:www.demo.test (name www.demo.test), cidr:...``."""
    names: list[str] = []
    for target, server_name in seen_as:
        text = f"{target} (name {server_name})" if server_name else target
        if text not in names:
            names.append(text)
    return f"{location.endpoint_text()} via {', '.join(names)}"


def record_where(entry: Mapping[str, Any]) -> str:
    """:func:`where_text` of a finding entry of a record (``location`` and ``sightings``)."""
    location = Location.from_json(entry["location"])
    sightings = entry.get("sightings") or [location.to_json()]
    return where_text(location, ((str(x["target"]), x.get("server_name")) for x in sightings))


@dataclass(frozen=True, kw_only=True, slots=True)
class FindingView:
    """One finding of a run, with where it was made and every target that saw it.

    Attributes:
        id: the finding's id (``rio evidence show ID``, ``rio rectify order --finding ID``).
        key: the stable key, equal across runs for the same fault at the same place.
        location: where it was first made.
        seen_as: ``(target, server_name)`` of every outcome that saw it, in order.
        leaf_seq: the outcome leaf that first saw it.
    """

    id: str
    key: str
    run_id: str
    rule: str
    title: str
    severity: str
    kind: str
    probe: str
    location: Location
    seen_as: tuple[tuple[str, str | None], ...]
    leaf_seq: int
    digest: str
    remediation: str
    refs: tuple[Mapping[str, str], ...]
    has_evidence: bool

    def where(self) -> str:
        """The endpoint, and every target as announced (and name) that reached it."""
        return where_text(self.location, self.seen_as)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "run": self.run_id,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "kind": self.kind,
            "probe": self.probe,
            "location": self.location.to_json(),
            "where": self.where(),
            "seen_as": [{"target": t, "server_name": n} for t, n in self.seen_as],
            "leaf_seq": self.leaf_seq,
            "digest": self.digest,
            "remediation": self.remediation,
            "refs": [dict(r) for r in self.refs],
            "evidence": self.has_evidence,
        }


def view_of(row: FindingRow) -> FindingView:
    """The read-only view of a stored finding."""
    sightings = row.sightings or [{"target": row.target, "server_name": row.server_name}]
    return FindingView(
        id=row.id,
        key=row.key,
        run_id=row.run_id,
        rule=row.rule,
        title=row.title,
        severity=row.severity,
        kind=row.kind,
        probe=row.probe,
        location=Location(
            target=row.target,
            ip=row.ip,
            port=row.port,
            transport=row.transport,
            scheme=row.scheme,
            server_name=row.server_name,
            path=row.path,
        ),
        seen_as=tuple((str(x["target"]), x.get("server_name")) for x in sightings),
        leaf_seq=row.leaf_seq,
        digest=row.digest,
        remediation=row.remediation,
        refs=tuple(dict(r) for r in row.refs),
        has_evidence=row.evidence is not None,
    )


def load_findings(s: Session, run_id: str, ids: Iterable[str] | None = None) -> list[FindingView]:
    """A run's findings (or those of ``ids``) in the order they were first seen."""
    query = select(FindingRow).where(FindingRow.run_id == run_id)
    if ids is not None:
        query = query.where(FindingRow.id.in_(list(ids)))
    return [view_of(r) for r in s.scalars(query.order_by(FindingRow.leaf_seq, FindingRow.id))]


@dataclass(frozen=True, kw_only=True, slots=True)
class DiffItem:
    """One side of a diff line: a finding's key, words and where it was made."""

    key: str
    id: str
    rule: str
    title: str
    severity: str
    where: str
    location: Location

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "finding": self.id,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "where": self.where,
            "ip": self.location.ip,
            "port": self.location.port,
            "location": self.location.to_json(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class FindingDiff:
    """Findings of an old and a new run compared by stable key.

    ``still_present`` items are the new run's (its ids, where it saw them now). A re-check
    compares the findings an order named, not the whole run: ``not_ordered`` holds the later
    run's findings that the original run had too but the order left out (they are not new,
    and nothing was ordered about them); a plain run-to-run diff leaves it empty.
    """

    fixed: tuple[DiffItem, ...]
    still_present: tuple[DiffItem, ...]
    new: tuple[DiffItem, ...]
    not_ordered: tuple[DiffItem, ...] = ()

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """``{"fixed", "still_present", "new", "not_ordered"}``, each ``[item]``; see
        :class:`DiffItem`."""
        return {
            "fixed": [i.to_json() for i in self.fixed],
            "still_present": [i.to_json() for i in self.still_present],
            "new": [i.to_json() for i in self.new],
            "not_ordered": [i.to_json() for i in self.not_ordered],
        }


def _item(view: FindingView) -> DiffItem:
    return DiffItem(
        key=view.key,
        id=view.id,
        rule=view.rule,
        title=view.title,
        severity=view.severity,
        where=view.where(),
        location=view.location,
    )


def finding_diff(
    old: Iterable[FindingView],
    new: Iterable[FindingView],
    *,
    also_before: Iterable[FindingView] = (),
) -> FindingDiff:
    """Compare two sets of findings by stable key.

    Args:
        old: the earlier findings (a run, or the findings an order named).
        new: the later run's findings.
        also_before: findings the earlier run had beside ``old`` (the ones an order did not
            name); a later finding with one of their keys is ``not_ordered``, not ``new``.

    Returns:
        ``fixed`` (old keys not found again), ``still_present`` (keys in both), ``new``
        (keys the earlier run never had) and ``not_ordered`` (keys of ``also_before``
        found again), each sorted by key.
    """
    before = {v.key: v for v in old}
    after = {v.key: v for v in new}
    outside = {v.key for v in also_before} - before.keys()
    later_only = after.keys() - before.keys()
    return FindingDiff(
        fixed=tuple(_item(before[k]) for k in sorted(before.keys() - after.keys())),
        still_present=tuple(_item(after[k]) for k in sorted(before.keys() & after.keys())),
        new=tuple(_item(after[k]) for k in sorted(later_only - outside)),
        not_ordered=tuple(_item(after[k]) for k in sorted(later_only & outside)),
    )
