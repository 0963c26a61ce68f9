"""verify_log: an untouched log verifies; every kind of tampering is caught and named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.ledger.checkpoint import Checkpoint, run_origin, sign_checkpoint
from orchestrator.ledger.leaves import make_leaf
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME
from orchestrator.ledger.merkle import root_from_leaves
from orchestrator.ledger.verify import LogVerdict, verify_log

RUN = "R-20261130-abcdef"
KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _leaf(seq: int, kind: str, data: dict[str, object], run: str = RUN) -> bytes:
    return make_leaf(run, seq, kind, T0 + timedelta(milliseconds=seq), data)


def _log(pairs: int = 6) -> list[bytes]:
    """started, then ``pairs`` intent/outcome pairs, then completed."""
    leaves = [_leaf(0, "state", {"state": "running", "reason": "started"})]
    for item in range(pairs):
        seq = len(leaves)
        leaves.append(_leaf(seq, "intent", {"item": item, "ip": "127.0.0.1", "cost": 1}))
        leaves.append(_leaf(seq + 1, "outcome", {"intent": seq, "outcome": "ok"}))
    leaves.append(_leaf(len(leaves), "state", {"state": "completed", "reason": None}))
    return leaves


def _note(leaves: list[bytes], size: int, *, key: Ed25519PrivateKey = KEY, run: str = RUN) -> str:
    _, root = root_from_leaves(leaves[:size])
    return sign_checkpoint(
        Checkpoint(origin=run_origin(run), size=size, root=root), key, CHECKPOINT_KEY_NAME
    )


def _verify(leaves: list[bytes], notes: list[str]) -> LogVerdict:
    def stream() -> Iterator[bytes]:
        yield from leaves  # a one-shot stream, as from the database

    return verify_log(RUN, stream(), notes, KEY.public_key())


@pytest.fixture
def log() -> tuple[list[bytes], list[str]]:
    leaves = _log()
    return leaves, [_note(leaves, 5), _note(leaves, 10), _note(leaves, len(leaves))]


def test_untouched_log_verifies(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    verdict = _verify(leaves, notes)
    assert verdict and verdict.ok and verdict.problems == ()
    assert (verdict.size, verdict.checkpoints) == (14, 3)
    assert verdict.root == root_from_leaves(leaves)[1]


def test_empty_log_with_empty_checkpoint_verifies() -> None:
    assert _verify([], [_note([], 0)])


def test_deleted_leaf_is_named(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    del leaves[7]
    verdict = _verify(leaves, notes)
    assert not verdict
    assert any(p.startswith("leaf 7: carries seq 8") for p in verdict.problems), verdict.problems
    assert any(p.startswith("checkpoint 10:") for p in verdict.problems)


def test_altered_leaf_breaks_the_checkpoint_root(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    # Canonical, right run, right seq: only the tree head shows the change.
    leaves[3] = _leaf(3, "intent", {"item": 1, "ip": "127.0.0.2", "cost": 1})
    verdict = _verify(leaves, notes)
    assert not verdict
    assert verdict.problems[0].startswith("checkpoint 5: its root does not match")
    assert "and 2 more" in verdict.problems[0]


def test_reordered_leaves_are_named(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    leaves[3], leaves[4] = leaves[4], leaves[3]
    verdict = _verify(leaves, notes)
    assert not verdict
    assert any(p.startswith("leaf 3: carries seq 4") for p in verdict.problems)
    assert any(p.startswith("leaf 3: outcome for 3") for p in verdict.problems)


def test_leaf_appended_after_last_checkpoint_is_named(
    log: tuple[list[bytes], list[str]],
) -> None:
    leaves, notes = log
    leaves.append(_leaf(len(leaves), "state", {"state": "sealed", "reason": None}))
    verdict = _verify(leaves, notes)
    assert not verdict
    assert verdict.problems == (
        "leaf 14: no signed checkpoint covers it (the last one covers 14 of 15 leaves)",
    )


def test_intent_without_outcome_is_named() -> None:
    leaves = _log(2)
    leaves.insert(5, _leaf(5, "intent", {"item": 9, "ip": "127.0.0.1", "cost": 1}))
    leaves[6] = _leaf(6, "state", {"state": "paused", "reason": "window"})
    verdict = _verify(leaves, [_note(leaves, len(leaves))])
    assert verdict.problems == ("leaf 5: intent (item 9) has no outcome",)


def test_checkpoint_signed_by_another_key_is_refused(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    notes[1] = _note(leaves, 10, key=Ed25519PrivateKey.generate())
    verdict = _verify(leaves, notes)
    assert not verdict
    assert verdict.checkpoints == 2
    assert verdict.problems[0].startswith("checkpoint 10: checkpoint rio/")


def test_checkpoint_of_another_run_is_refused(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    notes[2] = _note(leaves, 14, run="R-20261130-000000")
    verdict = _verify(leaves, notes)
    assert not verdict
    assert any("origin is not the expected" in p for p in verdict.problems)
    # Without a valid final checkpoint the last leaves are not covered either.
    assert any(p.startswith("leaf 10: no signed checkpoint covers it") for p in verdict.problems)


def test_checkpoint_beyond_the_log_is_named(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    verdict = _verify(leaves[:12], notes)
    assert not verdict
    assert any(p.startswith("checkpoint 14: covers more leaves") for p in verdict.problems)


def test_non_canonical_leaf_is_named(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    leaves[2] = leaves[2].replace(b'"v":1}', b'"v": 1}', 1)
    assert leaves[2].endswith(b'"v": 1}')
    verdict = _verify(leaves, notes)
    assert not verdict
    assert any(p.startswith("leaf 2:") and "canonical" in p for p in verdict.problems)


def test_leaf_of_another_run_is_named(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    leaves[1] = rfc8785.dumps(
        {
            "v": 1,
            "run": "R-other",
            "seq": 1,
            "kind": "intent",
            "at": "2026-11-30T02:00:00.001000000Z",
            "data": {"item": 0, "ip": "127.0.0.1", "cost": 1},
        }
    )
    verdict = _verify(leaves, notes)
    assert any(p.startswith("leaf 1: belongs to run 'R-other'") for p in verdict.problems)


def test_verdict_reads_as_a_sentence(log: tuple[list[bytes], list[str]]) -> None:
    leaves, notes = log
    assert "verified" in str(_verify(leaves, notes))
    assert "does NOT verify" in str(_verify(leaves[:-1], notes))
