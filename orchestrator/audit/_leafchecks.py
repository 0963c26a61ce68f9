"""The checks that replay the leaves one by one: each keeps O(1) or O(window) state.

Each checker has ``feed(leaf)`` and ``result()``. They judge only intents (and outcomes and kills),
the leaves that say a probe was, or was about to be, sent.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
from typing import Any

from orchestrator.audit._docs import NoticeDoc, parse_time
from orchestrator.audit._rates import WINDOW_NS, RateReplay
from orchestrator.audit._report import CheckResult
from orchestrator.audit._tally import Tally
from orchestrator.errors import RecordFileError
from orchestrator.gate.addresses import AddressScope
from orchestrator.gate.decide import excluded_name
from orchestrator.intake.policy import Policy
from orchestrator.intake.scope import Scope
from orchestrator.ledger.bodies import Outcome
from orchestrator.ledger.leaves import Leaf
from orchestrator.record.canonical import parse_ns_timestamp
from probes.registry import UnknownProbeError, probe_class

__all__ = [
    "OUTCOMES",
    "CatalogueCheck",
    "KillCheck",
    "OutcomesCheck",
    "RatesCheck",
    "ScopeCheck",
    "SequenceCheck",
    "WindowsCheck",
]

OUTCOMES = frozenset(o.value for o in Outcome)

_NEVER_SENT = frozenset({Outcome.KILLED.value, Outcome.UNSENT.value})
"""outcome classes that, with ``sent_at: null``, say the probe was never sent"""


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@functools.lru_cache(maxsize=65_536)
def _is_address(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


class SequenceCheck:
    """Leaves are well formed, numbered 0..n-1 without gaps, and belong to the run."""

    def __init__(self, run: str | None) -> None:
        self.run = run
        self.tally = Tally("sequence")
        self.leaves = 0

    def malformed(self, index: int, why: str) -> None:
        """Report a line that is not a leaf."""
        self.leaves += 1
        self.tally.leaf(index, f"is not a well-formed leaf: {why}")

    def feed(self, index: int, leaf: Leaf) -> None:
        """Check one parsed leaf at line ``index``."""
        self.leaves += 1
        if leaf.seq != index:
            self.tally.leaf(index, f"carries seq {leaf.seq} at position {index}")
        elif self.run is not None and leaf.run != self.run:
            self.tally.leaf(index, f"belongs to run {leaf.run!r}, not {self.run!r}")

    def result(self) -> CheckResult:
        return self.tally.result(
            f"{self.leaves} leaves numbered 0..{self.leaves - 1} of run {self.run}"
        )


class OutcomesCheck:
    """Every intent gets exactly one outcome (``killed`` and ``unknown`` are outcomes too)."""

    def __init__(self) -> None:
        self.tally = Tally("outcomes")
        self._open: set[int] = set()
        self._closed = 0

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind == "intent":
            self._open.add(leaf.seq)
        elif leaf.kind == "outcome":
            intent = leaf.data.get("intent")
            outcome = leaf.data.get("outcome")
            if not _count(intent):
                self.tally.leaf(leaf.seq, f"outcome names no intent ({intent!r})")
            elif intent not in self._open:
                self.tally.leaf(
                    leaf.seq,
                    f"outcome for {intent}, which is not an earlier intent without outcome",
                )
            elif outcome not in OUTCOMES:
                self.tally.leaf(leaf.seq, f"outcome {outcome!r} is not an outcome class")
            else:
                self._open.discard(intent)
                self._closed += 1

    def result(self) -> CheckResult:
        # Missing outcomes are only known at the end; the earliest one is the first offence
        # unless a bad outcome leaf came before it.
        for seq in sorted(self._open):
            if (
                self.tally.first is not None
                and self.tally.first.seq is not None
                and (self.tally.first.seq > seq)
            ):
                self.tally.first = None
            self.tally.leaf(seq, "intent has no outcome")
        return self.tally.result(f"{self._closed} intents, each with one outcome")


class ScopeCheck:
    """Every intent's pinned address (and every resolved address) is inside the scope."""

    def __init__(self, scope: Scope, addresses: AddressScope) -> None:
        self.scope = scope
        self.addresses = addresses
        # Bounded cache: the same few addresses are checked for every intent of a run.
        self._check = functools.lru_cache(maxsize=65_536)(addresses.check)
        self.tally = Tally("scope")
        self.intents = 0

    def _address(self, seq: int, ip: Any, what: str) -> bool:
        if not isinstance(ip, str):
            self.tally.leaf(seq, f"{what} {ip!r} is not an address")
            return False
        try:
            verdict = self._check(ip)
        except ValueError as exc:
            self.tally.leaf(seq, f"{what}: {exc}")
            return False
        if not verdict:
            self.tally.leaf(seq, f"{what} {ip}: {verdict.sentence}")
            return False
        return True

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind != "intent":
            return
        self.intents += 1
        data = leaf.data
        if not self._address(leaf.seq, data.get("ip"), "pinned address"):
            return
        resolution = data.get("resolution")
        if isinstance(resolution, dict):
            name = resolution.get("name")
            if isinstance(name, str) and excluded_name(self.scope, name):
                self.tally.leaf(leaf.seq, f"{name} is excluded by the scope")
                return
            # An exclude of a name covers every name that resolves through it.
            for alias in resolution.get("cname_chain") or ():
                if isinstance(alias, str) and excluded_name(self.scope, alias):
                    self.tally.leaf(
                        leaf.seq, f"{name} resolves through {alias}, which the scope excludes"
                    )
                    return
            for address in resolution.get("addresses") or ():
                if not self._address(leaf.seq, address, f"{name} resolved to"):
                    return

    def result(self) -> CheckResult:
        return self.tally.result(f"{self.intents} intents inside the announced scope")


class WindowsCheck:
    """Every intent lies inside an announced and a policy window, off blackouts, after the lead
    time; its deadline falls before both windows close."""

    def __init__(self, scope: Scope, policy: Policy, notice: NoticeDoc) -> None:
        self.scope = scope
        self.policy = policy
        self.ready = notice.announced_at + policy.min_notice_lead
        self.tally = Tally("windows")
        self.intents = 0

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind != "intent":
            return
        self.intents += 1
        seq = leaf.seq
        now = leaf.instant
        if now < self.ready:
            self.tally.leaf(
                seq, f"at {leaf.at} is before the lead time is met ({self.ready.isoformat()})"
            )
            return
        announced = self.scope.window_at(now)
        if announced is None:
            self.tally.leaf(seq, f"at {leaf.at} is outside every announced window")
            return
        allowed = self.policy.window_at(now)
        if allowed is None:
            local = now.astimezone(self.policy.tz).isoformat()
            self.tally.leaf(seq, f"at {local} is outside the policy's windows")
            return
        blackout = self.policy.blackout_on(now)
        if blackout is not None:
            day = now.astimezone(self.policy.tz).date()
            self.tally.leaf(
                seq, f"at {leaf.at} falls on blackout date {day} {blackout.reason}".rstrip()
            )
            return
        end = min(announced.end_utc, allowed.end_on(now.astimezone(self.policy.tz)))
        try:
            deadline = parse_time(leaf.data.get("deadline"), f"leaf {seq}", "data.deadline")
        except RecordFileError as exc:
            self.tally.leaf(seq, f"deadline: {exc.problem}")
            return
        if deadline > end:
            self.tally.leaf(
                seq,
                f"deadline {deadline.isoformat()} outlives the window closing {end.isoformat()}",
            )

    def result(self) -> CheckResult:
        return self.tally.result(f"{self.intents} intents inside the announced and policy windows")


class RatesCheck:
    """No one-second sliding window over any budget, replayed from the probes' send times.

    A probe's send time is its outcome's ``sent_at``: the moment the gate took its budget,
    immediately before the probe connected. An outcome with ``sent_at: null`` and class
    ``killed`` or ``unsent`` was never sent and used no budget on the wire; any other probe
    without a send time (``unknown`` after a crash, an intent without outcome, or an archive
    written before ``sent_at`` existed, whose outcomes lack the field) counts at its intent's
    ``at``. A probe whose connections the tool traced (``sends_us``, an nmap batch) counts
    each connection as one unit at ``sent_at`` plus its offset.

    Outcomes are logged when probes end, not in send order. Send times wait in a heap until no
    earlier one can still come: a probe ends by its deadline, at most the policy's
    ``probe_timeout`` after its intent, so memory stays bounded by that horizon, and the
    replay sees every send in time order.
    """

    def __init__(self, policy: Policy, notice_id: str) -> None:
        rates = policy.rates
        self.replay = RateReplay(
            per_ip=rates.per_ip,
            per_network=rates.per_network,
            per_notice=rates.per_notice,
            global_=rates.global_,
            prefix_v4=rates.network_prefix_v4,
            prefix_v6=rates.network_prefix_v6,
            notice=notice_id,
        )
        self.tally = Tally("rates")
        self.intents = 0
        self.sent = 0
        self._horizon = int(policy.probe_timeout.total_seconds() * 1e9) + 2 * WINDOW_NS
        self._pending: dict[int, tuple[int, str, int]] = {}
        self._heap: list[tuple[int, int, str, int]] = []
        self._latest = 0

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind == "intent":
            self._intent(leaf)
        elif leaf.kind == "outcome":
            self._outcome(leaf)
        else:
            return
        at = parse_ns_timestamp(leaf.at, source=f"leaf {leaf.seq}", field="at")
        if at < self._latest - self._horizon:
            # The replay orders sends by waiting out the horizon; it cannot place this one.
            self.tally.leaf(
                leaf.seq,
                f"logged more than {self._horizon / 1e9:g} s before a leaf logged earlier; "
                "the rate replay cannot place it",
            )
        self._release(at)

    def _intent(self, leaf: Leaf) -> None:
        self.intents += 1
        cost = leaf.data.get("cost")
        ip = leaf.data.get("ip")
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
            self.tally.leaf(leaf.seq, f"cost {cost!r} is not a number of budget units")
            return
        if not isinstance(ip, str) or not _is_address(ip):
            self.tally.leaf(leaf.seq, f"pinned address {ip!r} is not an address")
            return
        at = parse_ns_timestamp(leaf.at, source=f"leaf {leaf.seq}", field="at")
        self._pending[leaf.seq] = (at, ip, cost)

    def _outcome(self, leaf: Leaf) -> None:
        intent = leaf.data.get("intent")
        if not isinstance(intent, int):
            return  # the outcomes check reports an outcome without its intent
        entry = self._pending.pop(intent, None)
        if entry is None:
            return  # the outcomes check reports an outcome without its intent
        at, ip, cost = entry
        if "sent_at" in leaf.data:
            sent = leaf.data["sent_at"]
            if sent is None:
                if leaf.data.get("outcome") in _NEVER_SENT:
                    return
            elif not isinstance(sent, str):
                self.tally.leaf(leaf.seq, f"sent_at {sent!r} is not a timestamp")
            else:
                try:
                    at = parse_ns_timestamp(sent, source=f"leaf {leaf.seq}", field="sent_at")
                except RecordFileError as exc:
                    self.tally.leaf(leaf.seq, f"sent_at: {exc.problem}")
                sends = leaf.data.get("sends_us")
                if isinstance(sends, list) and sends and all(_count(us) for us in sends):
                    # Traced by the tool (an nmap batch): every connection is one unit, on time.
                    for us in sends:
                        heapq.heappush(self._heap, (at + us * 1000, intent, ip, 1))
                    return
        heapq.heappush(self._heap, (at, intent, ip, cost))

    def _release(self, at: int) -> None:
        """Replay every send that no later leaf can precede any more."""
        # The newest leaf time so far: a leaf far "older" than it cannot be placed (``order``).
        self._latest = max(self._latest, at)
        edge = self._latest - self._horizon
        pending = self._pending
        # Intents still without outcome past the horizon: a crash left them; count them.
        while pending:
            seq, (at, ip, cost) = next(iter(pending.items()))
            if at >= edge:
                break
            del pending[seq]
            heapq.heappush(self._heap, (at, seq, ip, cost))
        heap = self._heap
        while heap and heap[0][0] < edge:
            self._replay(*heapq.heappop(heap))

    def _replay(self, at: int, seq: int, ip: str, cost: int) -> None:
        self.sent += 1
        excess = self.replay.add(seq=seq, at=at, ip=ip, units=cost)
        if excess is not None:
            self.tally.leaf(seq, excess.sentence())

    def result(self) -> CheckResult:
        for seq, (at, ip, cost) in self._pending.items():
            heapq.heappush(self._heap, (at, seq, ip, cost))
        self._pending.clear()
        while self._heap:
            self._replay(*heapq.heappop(self._heap))
        return self.tally.result(
            f"{self.intents} intents ({self.sent} sent) within every one-second budget"
        )


class CatalogueCheck:
    """Every intended probe is allowed by the policy and within its maximum disruption."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.allowed = policy.probes.allowed()
        self.tally = Tally("catalogue")
        self.intents = 0

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind != "intent":
            return
        self.intents += 1
        probe = leaf.data.get("probe")
        if not isinstance(probe, str) or probe not in self.allowed:
            self.tally.leaf(
                leaf.seq, f"probe {probe!r} is not allowed by policy {self.policy.name}"
            )
            return
        try:
            level = probe_class(probe).disruption
        except UnknownProbeError:
            self.tally.leaf(leaf.seq, f"probe {probe!r} is not in rio's catalogue")
            return
        if level > self.policy.max_disruption:
            self.tally.leaf(
                leaf.seq,
                f"probe {probe} is {level.name.lower()}, above the policy's maximum "
                f"{self.policy.max_disruption.name.lower()}",
            )

    def result(self) -> CheckResult:
        return self.tally.result(f"{self.intents} intents of allowed probes")


class KillCheck:
    """Nothing is intended after a kill leaf."""

    def __init__(self) -> None:
        self.tally = Tally("kill")
        self.killed_at: int | None = None

    def feed(self, leaf: Leaf) -> None:
        if leaf.kind == "kill" and self.killed_at is None:
            self.killed_at = leaf.seq
        elif leaf.kind == "intent" and self.killed_at is not None:
            self.tally.leaf(leaf.seq, f"intent after the kill at leaf {self.killed_at}")

    def result(self) -> CheckResult:
        if self.killed_at is None:
            return self.tally.result("no kill leaf")
        return self.tally.result(f"no intent after the kill at leaf {self.killed_at}")
