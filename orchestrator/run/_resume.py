"""Where a run stands in its own log: what a resumed run skips, and what a crash left in flight."""

from __future__ import annotations

from orchestrator.ledger.bodies import Check, IntentBody, Outcome, OutcomeBody, RefusalBody
from orchestrator.ledger.log import read_leaves
from orchestrator.store.db import Database

__all__ = ["STOPPING", "logged_items"]

STOPPING = frozenset({Check.RUN, Check.NOTICE, Check.WINDOW, Check.ENTRUSTED})
"""Refusals that stop the whole run for now (it resumes later) rather than just one item."""


def logged_items(db: Database, run_id: str) -> tuple[set[int], list[int]]:
    """Items already done, and intents that never got an outcome (their seqs, in order).

    An item is done when a permit for it got a real outcome (not ``unsent``) or the gate
    refused it for good (not for the window, the run, the lead time, health or budget).
    """
    decided: set[int] = set()
    intents: dict[int, IntentBody] = {}
    for leaf in read_leaves(db, run_id):
        if leaf.kind == "intent":
            intents[leaf.seq] = IntentBody.from_json(leaf.data)
        elif leaf.kind == "refusal":
            refusal = RefusalBody.from_json(leaf.data)
            if refusal.check not in STOPPING | {Check.HEALTH, Check.RATE}:
                decided.add(int(refusal.request["item"]))
        elif leaf.kind == "outcome":
            outcome = OutcomeBody.from_json(leaf.data)
            intent = intents.pop(outcome.intent, None)
            if intent is not None and outcome.outcome is not Outcome.UNSENT:
                decided.add(intent.item)
    # Crashed in flight: never sent again (they get an ``unknown`` outcome).
    decided.update(body.item for body in intents.values())
    return decided, sorted(intents)
