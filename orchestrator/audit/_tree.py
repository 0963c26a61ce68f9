"""Merkle proofs recomputed from a stream of leaves, in memory flat in the log's length.

:mod:`orchestrator.ledger.merkle` builds proofs from a list of every leaf hash. An auditor reading
a large archive should not hold that list, so here a proof is first *planned* as the leaf ranges
whose subtree roots it needs (RFC 9162 sections 2.1.3.1 and 2.1.4.1, the same walk as the ledger
code), then every planned range is hashed in one pass over the leaves:

* a range that ends at a size where the tree's compact range has it as a suffix (the right
  spine of a checkpoint, or a checkpoint's own perfect subtrees) is folded from a snapshot of the
  compact range taken at that size;
* any other range gets its own accumulator while the pass is inside it. Planned ranges are
  deduplicated and aligned subtrees nest, so a leaf feeds at most one such range per tree level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.ledger.merkle import MerkleAccumulator, node_hash

__all__ = [
    "RangeRoots",
    "consistency_ranges",
    "fold",
    "inclusion_ranges",
]

Range = tuple[int, int]


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Returns:
        The ranges whose roots, in this order, form ``inclusion_proof(hashes, index, size)``.

    Raises:
        ValueError: ``index`` is outside the tree.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is outside a tree of {size} leaves")
    path: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """Plan the consistency proof from the tree of ``old_size`` leaves to ``new_size``.

    Returns:
        The ranges whose roots, in this order, form
        ``consistency_proof(hashes, old_size, new_size)``.

    Raises:
        ValueError: unless ``0 < old_size <= new_size``.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    proof: list[Range] = []
    lo, hi, m = 0, new_size, old_size
    complete = True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            proof.append((lo + k, hi))
            hi = lo + k
        else:
            proof.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def fold(hashes: Iterable[bytes]) -> bytes:
    """Combine perfect-subtree roots, largest first, into their RFC 9162 root (right to left)."""
    items = list(hashes)
    root = items[-1]
    for h in reversed(items[:-1]):
        root = node_hash(h, root)
    return root


def _suffix_count(start: int, end: int) -> int | None:
    """How many trailing compact-range entries at size ``end`` cover ``[start, end)`` exactly.

    The compact range at size ``end`` holds one perfect subtree per set bit of ``end``; its last
    entries cover ``[start, end)`` exactly when ``end mod 2**bits(end - start) == end - start``.
    """
    width = end - start
    if width <= 0:
        return None
    if end % (1 << width.bit_length()) != width:
        return None
    return width.bit_count()


@dataclass(slots=True)
class _Open:
    start: int
    end: int
    acc: MerkleAccumulator


class RangeRoots:
    """Computes the roots of planned leaf ranges in one pass over the leaf hashes.

    Call :meth:`add` with every leaf hash in order, then :meth:`root` for each planned range.
    Extra sizes at which the whole tree's root is wanted can be planned with ``sizes``.
    """

    def __init__(self, ranges: Iterable[Range], *, sizes: Iterable[int] = ()) -> None:
        """Plan the pass.

        Args:
            ranges: The ``[start, end)`` ranges whose roots are wanted.
            sizes: Tree sizes whose whole-tree root is wanted (see :meth:`tree_root`).
        """
        self._tree = MerkleAccumulator()
        self._snap_at: set[int] = set(sizes)
        dedicated: set[Range] = set()
        for start, end in set(ranges):
            if _suffix_count(start, end) is not None:
                self._snap_at.add(end)
            else:
                dedicated.add((start, end))
        self._snapshots: dict[int, tuple[bytes, ...]] = {}
        self._pending = sorted(dedicated)
        self._starts = [r[0] for r in self._pending]
        self._next = 0
        self._open: list[_Open] = []
        self._done: dict[Range, bytes] = {}
        self._want_empty = 0 in self._snap_at
        if self._want_empty:
            self._snapshots[0] = ()

    @property
    def size(self) -> int:
        """Leaves seen so far."""
        return self._tree.size

    def add(self, leaf_hash: bytes) -> None:
        """Feed the next leaf hash."""
        index = self._tree.size
        self._tree.append(leaf_hash)
        pending = self._pending
        while self._next < len(pending) and pending[self._next][0] == index:
            start, end = pending[self._next]
            self._open.append(_Open(start=start, end=end, acc=MerkleAccumulator()))
            self._next += 1
        if self._open:
            finished = False
            for item in self._open:
                item.acc.append(leaf_hash)
                if item.end == index + 1:
                    self._done[(item.start, item.end)] = item.acc.root()
                    finished = True
            if finished:
                self._open = [o for o in self._open if o.end != index + 1]
        if index + 1 in self._snap_at:
            self._snapshots[index + 1] = self._tree.state().hashes

    def tree_root(self, size: int) -> bytes | None:
        """The root of the first ``size`` leaves, if ``size`` was planned and reached."""
        snap = self._snapshots.get(size)
        if snap is None:
            return None
        if not snap:
            return MerkleAccumulator().root()
        return fold(snap)

    def root(self, start: int, end: int) -> bytes | None:
        """The root of ``[start, end)``, or ``None`` if it was not planned or not yet reached."""
        count = _suffix_count(start, end)
        if count is None:
            return self._done.get((start, end))
        snap = self._snapshots.get(end)
        if snap is None:
            return None
        return fold(snap[len(snap) - count :])

    def proof(self, ranges: Iterable[Range]) -> list[bytes] | None:
        """The proof made of the roots of ``ranges``, or ``None`` if any is missing."""
        out: list[bytes] = []
        for start, end in ranges:
            h = self.root(start, end)
            if h is None:
                return None
            out.append(h)
        return out

    def planned_starts(self) -> list[int]:
        """Starts of ranges that need their own accumulator (for tests and diagnostics)."""
        return list(self._starts)
