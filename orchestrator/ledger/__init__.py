"""The probe log: typed leaf bodies, canonical leaves, the group-committed log, checkpoints.

Names resolve on first use (:mod:`orchestrator._facade`): importing the package loads nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator._facade import lazy_exports

if TYPE_CHECKING:
    from orchestrator.ledger.bodies import (
        BodyError,
        Check,
        HealthBody,
        IntentBody,
        KillBody,
        NotSent,
        Outcome,
        OutcomeBody,
        RefusalBody,
        StateBody,
        unknown_outcome,
    )
    from orchestrator.ledger.leaves import LEAF_KINDS, Leaf, canonical_json, make_leaf, parse_leaf
    from orchestrator.ledger.log import ProbeLog, StoredCheckpoint, read_checkpoints, read_leaves

__all__ = [
    "LEAF_KINDS",
    "BodyError",
    "Check",
    "HealthBody",
    "IntentBody",
    "KillBody",
    "Leaf",
    "NotSent",
    "Outcome",
    "OutcomeBody",
    "ProbeLog",
    "RefusalBody",
    "StateBody",
    "StoredCheckpoint",
    "canonical_json",
    "make_leaf",
    "parse_leaf",
    "read_checkpoints",
    "read_leaves",
    "unknown_outcome",
]

_EXPORTS = {
    "LEAF_KINDS": "orchestrator.ledger.leaves",
    "Leaf": "orchestrator.ledger.leaves",
    "canonical_json": "orchestrator.ledger.leaves",
    "make_leaf": "orchestrator.ledger.leaves",
    "parse_leaf": "orchestrator.ledger.leaves",
    "BodyError": "orchestrator.ledger.bodies",
    "Check": "orchestrator.ledger.bodies",
    "HealthBody": "orchestrator.ledger.bodies",
    "IntentBody": "orchestrator.ledger.bodies",
    "KillBody": "orchestrator.ledger.bodies",
    "NotSent": "orchestrator.ledger.bodies",
    "OutcomeBody": "orchestrator.ledger.bodies",
    "RefusalBody": "orchestrator.ledger.bodies",
    "Outcome": "orchestrator.ledger.bodies",
    "StateBody": "orchestrator.ledger.bodies",
    "unknown_outcome": "orchestrator.ledger.bodies",
    "ProbeLog": "orchestrator.ledger.log",
    "StoredCheckpoint": "orchestrator.ledger.log",
    "read_checkpoints": "orchestrator.ledger.log",
    "read_leaves": "orchestrator.ledger.log",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
