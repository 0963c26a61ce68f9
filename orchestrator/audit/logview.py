"""``rio audit log``: a run's leaves for people, and a per-target summary.

Works over any iterator of :class:`~orchestrator.ledger.leaves.Leaf`, so the same review reads
an archive (:func:`iter_archive_leaves`) or the database (``ledger.log.read_leaves``). Memory is
bounded by the open intents and the targets seen, never by the log's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.audit._archive import Archive
from orchestrator.audit._rates import WINDOW_NS
from orchestrator.errors import RecordFileError
from orchestrator.ledger.bodies import Outcome
from orchestrator.ledger.leaves import Leaf, parse_leaf
from orchestrator.record.canonical import parse_ns_timestamp

__all__ = [
    "LogEntry",
    "LogFilter",
    "LogReview",
    "TargetSummary",
    "iter_archive_leaves",
    "outcome_sends",
    "peak_per_second",
]


def iter_archive_leaves(path: Path) -> Iterator[Leaf]:
    """Stream the parsed leaves of an archive.

    Raises:
        InputError: The file is missing.
        RecordFileError: It is not an archive, or a leaf line is malformed (the error names it;
            ``rio audit verify`` says more).
    """
    with Archive(path) as archive:
        for line in archive.leaf_lines():
            if line.problem is not None:
                raise RecordFileError(str(path), f"leaf {line.index}", line.problem)
            yield parse_leaf(line.raw, source=f"{path}: leaf {line.index}")


@dataclass(frozen=True, kw_only=True, slots=True)
class LogFilter:
    """Which leaves to list.

    Attributes:
        target: Only leaves about this address (or host name of a refused request).
        probe: Only intents, outcomes and refusals of this probe.
        since: Only leaves at or after this instant.
        refused: Only refusals.
    """

    target: str | None = None
    probe: str | None = None
    since: datetime | None = None
    refused: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class LogEntry:
    """One leaf, readably."""

    seq: int
    at: str
    kind: str
    target: str | None
    probe: str | None
    text: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "target": self.target,
            "probe": self.probe,
            "text": self.text,
        }

    def __str__(self) -> str:
        return f"{self.seq:>7} {self.at} {self.kind:<8} {self.text}"


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetSummary:
    """What happened to one target.

    Attributes:
        target: The address (or host name).
        probes: Intents (probes sent).
        refusals: Refused requests.
        pauses: Times the health breaker paused it.
        peak_rate: Most budget units used in any one-second sliding window, at the probes' send
            times (outcomes' ``sent_at`` and traced ``sends_us``, as the offline audit replays).
    """

    target: str
    probes: int
    refusals: int
    pauses: int
    peak_rate: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "target": self.target,
            "probes": self.probes,
            "refusals": self.refusals,
            "pauses": self.pauses,
            "peak_rate": self.peak_rate,
        }


class _Tracker:
    __slots__ = ("pauses", "probes", "refusals", "sends")

    def __init__(self) -> None:
        self.probes = 0
        self.refusals = 0
        self.pauses = 0
        self.sends: list[tuple[int, int]] = []
        """(send time in ns, units): outcomes' ``sent_at`` (+ ``sends_us``), else intents' ``at``"""

    def peak(self) -> int:
        """Most units in any one-second sliding window ``(s - 1 s, s]`` of the sends."""
        return peak_per_second(self.sends)


def peak_per_second(sends: Iterable[tuple[int, int]]) -> int:
    """Most units in any one-second sliding window ``(s - 1 s, s]`` of ``(ns, units)`` sends."""
    ordered = sorted(sends)
    best = total = start = 0
    for at, units in ordered:
        total += units
        while ordered[start][0] <= at - WINDOW_NS:
            total -= ordered[start][1]
            start += 1
        best = max(best, total)
    return best


def outcome_sends(leaf: Leaf, at: int, units: int) -> list[tuple[int, int]]:
    """When an outcome's probe used its units on the wire (as the offline audit replays them).

    Args:
        leaf: the outcome leaf.
        at: its intent's time (ns since the epoch), for outcomes logged without a send time.
        units: its intent's cost.

    Returns:
        ``(ns, units)`` pairs: the traced sends (``sends_us``), else ``sent_at``; none for a
        probe that was never sent.
    """
    if "sent_at" not in leaf.data:
        return [(at, units)]  # written before send times were logged: the intent's time
    sent = leaf.data["sent_at"]
    if not isinstance(sent, str):
        # Never sent (killed, unsent) uses no budget; anything else counts at its intent.
        never = leaf.data.get("outcome") in (Outcome.KILLED, Outcome.UNSENT)
        return [] if never else [(at, units)]
    try:
        first = parse_ns_timestamp(sent)
    except RecordFileError:
        return [(at, units)]
    traced = leaf.data.get("sends_us")
    if isinstance(traced, list) and traced and all(isinstance(us, int) for us in traced):
        return [(first + us * 1000, 1) for us in traced]
    return [(first, units)]


def _describe(
    leaf: Leaf, intent: tuple[str | None, str | None] | None
) -> tuple[str | None, str | None, str]:
    """Return ``(target, probe, text)`` of a leaf."""
    d = leaf.data
    if leaf.kind == "intent":
        where = (
            d.get("port") if d.get("port") is not None else ",".join(map(str, d.get("ports") or []))
        )
        name = f" ({d['server_name']})" if d.get("server_name") else ""
        text = f"{d.get('probe')} {d.get('ip')}:{where}{name} cost {d.get('cost')}"
        return _str(d.get("ip")), _str(d.get("probe")), text
    if leaf.kind == "outcome":
        target, probe = intent or (None, None)
        # Outcome leaves carry the probe's duration in whole microseconds (``elapsed_us``).
        micros = d.get("elapsed_us")
        took = f"{micros / 1_000_000:.3f} s" if isinstance(micros, int) else "not sent"
        text = (
            f"{d.get('outcome')} for #{d.get('intent')} ({probe} {target}; "
            f"{d.get('connections')} connections, {took})"
        )
        if d.get("error"):
            text += f": {d['error']}"  # why it was not ok, a probe's own refusal included
        return target, probe, text
    if leaf.kind == "refusal":
        req = d.get("request") if isinstance(d.get("request"), dict) else {}
        assert isinstance(req, dict)
        target = _str(req.get("ip")) or _str(req.get("host")) or _str(req.get("target"))
        text = (
            f"{req.get('probe')} {target}: {d.get('check')}/{d.get('reason')}: {d.get('sentence')}"
        )
        return target, _str(req.get("probe")), text
    if leaf.kind == "health":
        text = f"{d.get('ip')} {d.get('state')} (factor {d.get('factor')}): {d.get('reason')}"
        return _str(d.get("ip")), None, text
    if leaf.kind == "kill":
        return None, None, f"killed by {d.get('by')}: {d.get('reason')}"
    reason = f" ({d['reason']})" if d.get("reason") else ""
    return None, None, f"{d.get('state')}{reason}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class LogReview:
    """Filters and describes leaves, and sums them up per target as they stream by.

    Iterate :meth:`entries` first; :meth:`summaries` then holds the per-target summary.
    """

    def __init__(self, flt: LogFilter | None = None) -> None:
        """Start a review with a filter (``None``: everything)."""
        self.filter = flt or LogFilter()
        self._targets: dict[str, _Tracker] = {}
        self._open: dict[int, tuple[str | None, str | None]] = {}
        self._unsent: dict[int, tuple[_Tracker, int, int]] = {}
        """intents counted but without outcome yet: (tracker, intent time ns, units)"""

    def entries(self, leaves: Iterable[Leaf]) -> Iterator[LogEntry]:
        """Yield the leaves that pass the filter, described; update the summary."""
        flt = self.filter
        for leaf in leaves:
            intent = None
            if leaf.kind == "outcome" and isinstance(leaf.data.get("intent"), int):
                intent = self._open.pop(leaf.data["intent"], None)
            target, probe, text = _describe(leaf, intent)
            if leaf.kind == "intent":
                self._open[leaf.seq] = (target, probe)
            if flt.since is not None and leaf.instant < flt.since:
                continue
            if flt.target is not None and target != flt.target:
                continue
            if flt.probe is not None and probe != flt.probe:
                continue
            self._count(leaf, target)
            if flt.refused and leaf.kind != "refusal":
                continue
            yield LogEntry(
                seq=leaf.seq, at=leaf.at, kind=leaf.kind, target=target, probe=probe, text=text
            )

    def _count(self, leaf: Leaf, target: str | None) -> None:
        if leaf.kind == "outcome":
            self._sent(leaf)
            return
        if target is None or leaf.kind not in ("intent", "refusal", "health"):
            return
        tracker = self._targets.get(target)
        if tracker is None:
            tracker = self._targets[target] = _Tracker()
        if leaf.kind == "refusal":
            tracker.refusals += 1
        elif leaf.kind == "health":
            tracker.pauses += leaf.data.get("state") == "paused"
        else:
            tracker.probes += 1
            cost = leaf.data.get("cost")
            units = cost if isinstance(cost, int) and not isinstance(cost, bool) else 1
            self._unsent[leaf.seq] = (tracker, parse_ns_timestamp(leaf.at), units)

    def _sent(self, leaf: Leaf) -> None:
        """An outcome: its intent's units go to the tracker at the probe's send times."""
        intent = leaf.data.get("intent")
        entry = self._unsent.pop(intent, None) if isinstance(intent, int) else None
        if entry is not None:
            tracker, at, units = entry
            tracker.sends.extend(outcome_sends(leaf, at, units))

    def summaries(self) -> list[TargetSummary]:
        """The per-target summary of the leaves reviewed so far, by target."""
        # Intents without an outcome (a crash) count at their intent's time, as in the audit.
        for tracker, at, units in self._unsent.values():
            tracker.sends.append((at, units))
        self._unsent.clear()
        return [
            TargetSummary(
                target=target,
                probes=t.probes,
                refusals=t.refusals,
                pauses=t.pauses,
                peak_rate=t.peak(),
            )
            for target, t in sorted(self._targets.items())
        ]
