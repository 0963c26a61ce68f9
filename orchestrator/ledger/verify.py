"""Verify a run's probe log as a stream: leaves, tree heads, signed checkpoints, open intents.

:func:`verify_log` reads the leaves once, in order, and holds only the tree's compact range
(O(log n) hashes), the checkpoints it was handed and the intents still waiting for an outcome
(bounded by the run's concurrency). It checks that

* every leaf parses and is canonical, names this run, and carries sequence number
  ``0, 1, 2, ...`` without gaps (a deleted or reordered leaf shows here even without a
  checkpoint);
* every checkpoint note is signed by the orchestrator key for the origin ``rio/<run id>``, and
  the RFC 9162 root over the first ``size`` leaves equals the root it states;
* the last checkpoint covers every leaf (a leaf appended after it is not vouched for by any
  signature) and no checkpoint claims more leaves than there are;
* every ``intent`` has exactly one ``outcome`` and every outcome answers a logged intent.

Leaves are read in batches of a few hundred: :func:`~orchestrator.ledger.leaves.batch_leaves`
proves a whole batch valid and canonical in a few C calls, and any leaf it cannot vouch for
goes to :func:`~orchestrator.ledger.leaves.parse_leaf`, which decides and words the problem;
the verdict is the same either way (``tests/ledger/test_verify_fast_path.py``).

It returns a :class:`LogVerdict` (verification returns a result; it never raises for a bad
log). Each problem names the first offending leaf (``leaf 17: ...``) or checkpoint
(``checkpoint 256: ...``) of its kind and how many more of that kind followed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from msgspec import UNSET

from orchestrator.errors import InputError, RecordFileError, VerificationError
from orchestrator.ledger.checkpoint import parse_checkpoint_note, run_origin, verify_checkpoint
from orchestrator.ledger.leaves import (
    LEAF_BATCH,
    BatchLeaf,
    as_batch_leaf,
    batch_leaves,
    parse_leaf,
)
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME, read_checkpoints, read_leaf_bytes
from orchestrator.ledger.merkle import EMPTY_ROOT, MerkleAccumulator, leaf_hashes
from orchestrator.store.db import Database

if TYPE_CHECKING:
    from orchestrator.context import Rio

__all__ = ["LogVerdict", "verify_log", "verify_run"]

_BATCH = 5000


@dataclass(frozen=True, kw_only=True, slots=True)
class LogVerdict:
    """The result of verifying one run's probe log; true when nothing is wrong.

    Attributes:
        ok: No problem was found.
        size: Number of leaves read.
        root: RFC 9162 root over all leaves read.
        checkpoints: Number of checkpoint notes whose signature verified.
        problems: One sentence per kind of problem, each naming the first offending leaf seq
            or checkpoint size.
        unfinished: For a run still open (``unfinished=True``): what is not there yet - leaves
            after the last signed checkpoint, intents still waiting for their outcome. Not
            problems: the part that is there verified.
    """

    ok: bool
    size: int
    root: bytes
    checkpoints: int
    problems: tuple[str, ...]
    unfinished: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"log of {self.size} leaves verified ({self.checkpoints} checkpoints)"
        return f"log of {self.size} leaves does NOT verify: " + "; ".join(self.problems)


class _Problems:
    """First problem of each kind, with a count of the ones after it (bounded memory)."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self._more: dict[str, int] = {}

    def add(self, kind: str, sentence: str) -> None:
        if kind in self._first:
            self._more[kind] = self._more.get(kind, 0) + 1
        else:
            self._first[kind] = sentence

    def take(self, *kinds: str) -> tuple[str, ...]:
        """Remove the problems of these kinds and return their sentences."""
        taken = tuple(self._first.pop(k) for k in kinds if k in self._first)
        for k in kinds:
            self._more.pop(k, None)
        return taken

    def result(self) -> tuple[str, ...]:
        out = []
        for kind, sentence in self._first.items():
            more = self._more.get(kind, 0)
            out.append(f"{sentence} (and {more} more like it)" if more else sentence)
        return tuple(out)


def _checkpoints(
    run_id: str, notes: Sequence[str], public_key: Ed25519PublicKey, problems: _Problems
) -> dict[int, bytes]:
    """Verify every note; return size -> root of those whose signature and origin verify."""
    origin = run_origin(run_id)
    roots: dict[int, bytes] = {}
    for index, note in enumerate(notes):
        try:
            cp = verify_checkpoint(note, public_key, CHECKPOINT_KEY_NAME, origin=origin)
        except VerificationError as exc:
            problems.add("signature", f"{_note_label(index, note)}: {exc}")
            continue
        known = roots.get(cp.size)
        if known is not None and known != cp.root:
            problems.add("fork", f"checkpoint {cp.size}: two signed notes state different roots")
            continue
        roots[cp.size] = cp.root
    return roots


def _note_label(index: int, note: str) -> str:
    try:
        return f"checkpoint {parse_checkpoint_note(note)[0].size}"
    except RecordFileError:
        return f"checkpoint note #{index}"


def verify_log(
    run_id: str,
    leaves: Iterable[bytes],
    checkpoint_notes: Sequence[str],
    public_key: Ed25519PublicKey,
    *,
    unfinished: bool = False,
) -> LogVerdict:
    """Verify a run's probe log in one pass over its leaves.

    Args:
        run_id: The run the log belongs to (leaves and checkpoint origins must name it).
        leaves: The leaves' raw bytes in log order; consumed once.
        checkpoint_notes: The run's signed checkpoint notes, in any order.
        public_key: The orchestrator's checkpoint key (key name ``rio-orchestrator``).
        unfinished: The run is not finished (running, paused, crashed): leaves after the last
            checkpoint and intents without an outcome are reported in ``unfinished``, not as
            problems; everything else is checked as for a finished run.

    Returns:
        A :class:`LogVerdict`; ``ok`` is false and ``problems`` says why when anything fails.
    """
    problems = _Problems()
    try:
        run_origin(run_id)
    except InputError as exc:
        return LogVerdict(ok=False, size=0, root=EMPTY_ROOT, checkpoints=0, problems=(str(exc),))
    roots = _checkpoints(run_id, checkpoint_notes, public_key, problems)
    tree = MerkleAccumulator()
    open_intents: dict[int, int] = {}  # intent seq -> plan item, until its outcome is seen
    due = iter(sorted(s for s in roots if s > 0))  # checkpoint sizes, in the order leaves reach
    next_due = next(due, 0)
    size = 0
    for batch in _batches(leaves, LEAF_BATCH):
        first = size
        size += len(batch)
        hashes = leaf_hashes(batch)
        absorbed = 0  # of this batch's hashes, those the tree has taken (it takes them in runs)
        seq = first
        # One loop per leaf, checks inline on the decoded structs: the verifier's hot path.
        for leaf in batch_leaves(batch):
            if leaf is None:
                leaf = _parsed(seq, batch[seq - first], problems)
            if leaf is not None:
                if leaf.run != run_id or leaf.seq != seq:
                    _misplaced(run_id, seq, leaf.run, leaf.seq, problems)
                kind = leaf.kind
                if kind == "intent":
                    item = leaf.data.item
                    open_intents[seq] = item if isinstance(item, int) else -1
                elif kind == "outcome":
                    ref = leaf.data.intent
                    if not isinstance(ref, int) or open_intents.pop(ref, None) is None:
                        problems.add(
                            "orphan",
                            f"leaf {seq}: outcome for {None if ref is UNSET else ref!r}, which "
                            "is not an intent awaiting an outcome",
                        )
            seq += 1
            if seq == next_due:
                tree.extend(hashes[absorbed : seq - first])
                absorbed = seq - first
                if tree.root() != roots[seq]:
                    problems.add(
                        "root",
                        f"checkpoint {seq}: its root does not match the first {seq} "
                        "leaves (a leaf was altered, removed, inserted or reordered)",
                    )
                next_due = next(due, 0)
        tree.extend(hashes[absorbed:])
    for cp_size in sorted(s for s in roots if s > size):
        problems.add("beyond", f"checkpoint {cp_size}: covers more leaves than the {size} present")
    covered = max((s for s in roots if s <= size), default=0)
    if covered < size:
        problems.add(
            "uncovered",
            f"leaf {covered}: no signed checkpoint covers it "
            f"(the last one covers {covered} of {size} leaves)",
        )
    if open_intents:
        first = min(open_intents)
        more = len(open_intents) - 1
        problems.add(
            "open",
            f"leaf {first}: intent (item {open_intents[first]}) has no outcome"
            + (f" ({more} more intents without one)" if more else ""),
        )
    not_done = problems.take("uncovered", "open") if unfinished else ()
    found = problems.result()
    return LogVerdict(
        ok=not found,
        size=size,
        root=tree.root(),
        checkpoints=len(roots),
        problems=found,
        unfinished=not_done,
    )


def _batches(leaves: Iterable[bytes], n: int) -> Iterator[list[bytes]]:
    it = iter(leaves)
    while batch := list(itertools.islice(it, n)):
        yield batch


def _parsed(seq: int, raw: bytes, problems: _Problems) -> BatchLeaf | None:
    """A leaf the batch path left to the parser, or ``None`` (a parse problem)."""
    try:
        leaf = parse_leaf(raw, source=f"leaf {seq}")
    except RecordFileError as exc:
        problems.add("parse", f"leaf {seq}: {exc}")
        return None
    return as_batch_leaf(leaf)


def _misplaced(run_id: str, seq: int, run: str, leaf_seq: int, problems: _Problems) -> None:
    if run != run_id:
        problems.add("run", f"leaf {seq}: belongs to run {run!r}, not {run_id!r}")
    if leaf_seq != seq:
        problems.add(
            "seq",
            f"leaf {seq}: carries seq {leaf_seq} (a leaf was removed, inserted or reordered)",
        )


def _stored_leaves(db: Database, run_id: str) -> Iterator[bytes]:
    """A run's leaf bytes in stored order (constant memory, no parsing)."""
    return (body for _, body in read_leaf_bytes(db, run_id, batch=_BATCH))


def verify_run(rio: Rio, run_id: str, *, unfinished: bool = False) -> LogVerdict:
    """Verify a run's probe log as stored in rio's database, against the orchestrator key.

    Args:
        rio: The opened rio home (database and orchestrator key).
        run_id: The run to verify.
        unfinished: The run is still open (see :func:`verify_log`).

    Returns:
        The :class:`LogVerdict` of :func:`verify_log` over the stored leaves and checkpoints.
    """
    notes = [cp.note for cp in read_checkpoints(rio.db, run_id)]
    return verify_log(
        run_id, _stored_leaves(rio.db, run_id), notes, rio.verify_key, unfinished=unfinished
    )
