"""Why probes were not sent, counted by reason from a run's leaves.

Two kinds of no end up in the log: the gate's (a ``refusal`` leaf: check and reason, e.g.
``rate: per_ip``) and a probe's own, when it refused to act on its permit (an ``outcome`` leaf
with outcome ``refused`` and the probe's reason in ``error``, e.g. a path that would leave the
pinned address). A summary that counts only the first hides the second: every reader (the run
summary, ``rio run status``, the record) counts both, from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from orchestrator.ledger.bodies import Outcome, OutcomeBody, RefusalBody
from orchestrator.ledger.leaves import Leaf

__all__ = ["NO_REASON", "RefusalTally", "refusal_reasons"]

#: the key for a probe-level refusal logged before outcome leaves carried their reason
NO_REASON = "probe refused (no reason logged)"


class RefusalTally:
    """Counts refusals by reason, one leaf at a time (a run's leaves are streamed, not held)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, leaf: Leaf) -> None:
        if leaf.kind == "refusal":
            refusal = RefusalBody.from_json(leaf.data)
            self._counts[f"gate {refusal.check.value}: {refusal.reason}"] += 1
        elif leaf.kind == "outcome":
            outcome = OutcomeBody.from_json(leaf.data)
            if outcome.outcome is Outcome.REFUSED:
                self._counts[outcome.error or NO_REASON] += 1

    def counts(self) -> dict[str, int]:
        """``{reason: count}``, sorted by reason."""
        return dict(sorted(self._counts.items()))


def refusal_reasons(leaves: Iterable[Leaf]) -> dict[str, int]:
    """``{reason: count}`` of every refusal in ``leaves``, sorted by reason.

    Gate refusals read ``gate CHECK: REASON``; a probe's own refusal reads as the probe said it
    (``http probe: params.paths: ...``).
    """
    tally = RefusalTally()
    for leaf in leaves:
        tally.add(leaf)
    return tally.counts()
