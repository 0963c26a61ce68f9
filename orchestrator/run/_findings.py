"""A run's findings as the runner stores them: one row per key, written with the outcome leaf.

The runner is the only writer of a running run's findings (it holds the run's lease), so the
keys the run already has are kept here, in memory, loaded once when the run (re)starts. An
outcome's findings become a :meth:`FindingsBook.change` that the probe log commits in the same
transaction as the outcome leaf (``ProbeLog.append(..., change=...)``): many outcomes' findings go
in one group commit, without a query per outcome, and a finding never exists without the outcome
leaf that produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from orchestrator.store.crypto import FieldCipher
from orchestrator.store.db import Database
from orchestrator.store.models import FindingRow
from probes.findings import Finding

__all__ = ["FindingsBook", "Keyed"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Keyed:
    """A finding with its key and digest, each computed once (both hash canonical JSON)."""

    finding: Finding
    key: str
    digest: str

    @classmethod
    def of(cls, finding: Finding) -> Keyed:
        return cls(finding=finding, key=finding.key, digest=finding.digest())


@dataclass(kw_only=True, slots=True)
class _Known:
    id: str
    sightings: list[dict[str, object]]


class FindingsBook:
    """The findings of one run by key: what is stored, and what an outcome adds."""

    def __init__(self, db: Database, run_id: str, cipher: FieldCipher) -> None:
        self._run_id = run_id
        self._cipher = cipher
        with db.session() as s:
            rows = s.execute(
                select(FindingRow.key, FindingRow.id, FindingRow.sightings).where(
                    FindingRow.run_id == run_id
                )
            ).all()
        self._known = {key: _Known(id=fid, sightings=list(seen)) for key, fid, seen in rows}

    def change(self, seq: int, findings: list[Keyed]) -> tuple[Callable[[Session], None], int]:
        """What the outcome leaf ``seq`` writes: new rows, and sightings of known keys.

        Returns the change (for the leaf's transaction) and how many findings are new. The
        book counts them as stored at once: the change is committed with the leaf, or the
        probe log fails and the run stops.
        """
        rows: list[dict[str, Any]] = []
        seen: dict[str, list[dict[str, object]]] = {}
        for n, k in enumerate(findings):
            f = k.finding
            sighting: dict[str, object] = {
                "leaf_seq": seq,
                "target": f.target,
                "server_name": f.server_name,
                "digest": k.digest,
            }
            known = self._known.get(k.key)
            if known is not None:
                if sighting not in known.sightings:
                    known.sightings = [*known.sightings, sighting]
                    seen[known.id] = known.sightings
                continue
            fid = f"{self._run_id}/F{seq}.{n}"
            rows.append(self._row(fid, seq, k, sighting))
            self._known[k.key] = _Known(id=fid, sightings=[sighting])

        def write(s: Session) -> None:
            if rows:
                # Core, not ORM objects: a fifth of the cost per row, in one executemany.
                s.execute(insert(FindingRow), rows)
            for fid, sightings in seen.items():
                s.execute(
                    update(FindingRow).where(FindingRow.id == fid).values(sightings=sightings)
                )

        return write, len(rows)

    def _row(self, fid: str, seq: int, k: Keyed, sighting: dict[str, object]) -> dict[str, Any]:
        f = k.finding
        evidence = (
            self._cipher.seal(
                self._run_id, f.evidence.encode(), table="findings", row=fid, column="evidence"
            )
            if f.evidence is not None
            else None
        )
        return {
            "id": fid,
            "key": k.key,
            "run_id": self._run_id,
            "leaf_seq": seq,
            "rule": f.rule,
            "title": f.title,
            "severity": f.severity,
            "kind": f.kind,
            "probe": f.probe,
            "target": f.target,
            "ip": f.ip,
            "port": f.port,
            "transport": f.transport,
            "scheme": f.scheme,
            "server_name": f.server_name,
            "path": f.path,
            "digest": k.digest,
            "remediation": f.remediation,
            "refs": [dict(r) for r in f.refs],
            "sightings": [sighting],
            "evidence": evidence,
        }
