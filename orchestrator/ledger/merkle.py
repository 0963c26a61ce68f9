"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing over SHA-256.

The probe ledger of a run is one append-only Merkle tree. This module is the pure arithmetic:
leaf and node hashes, the tree head (root) of a list of leaves computed as a stream, a resumable
accumulator for the appender, and inclusion / consistency proofs with their verifiers.

Hashing follows RFC 9162 section 2.1.1: ``leaf = SHA-256(0x00 || data)``,
``node = SHA-256(0x01 || left || right)``, and the root of the empty tree is ``SHA-256("")``.

Generators raise :class:`~orchestrator.errors.InputError` on arguments outside the tree; the
``verify_*`` functions return ``bool`` and never raise, whatever they are handed, because an
auditor feeds them data from files that may be corrupt or hostile.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.errors import InputError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleAccumulator",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_from_leaf_hashes",
    "root_from_leaves",
    "subtree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the tree with no leaves (RFC 9162 section 2.1.1: the hash of the empty string)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf's bytes.

    Args:
        data: The leaf's content (for rio, the canonical bytes of one ledger entry).

    Returns:
        ``SHA-256(0x00 || data)``.
    """
    return _sha256(_LEAF_PREFIX + data).digest()


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """:func:`leaf_hash` of each leaf, in order (one comprehension: no call per leaf, for the
    verifier's hot loop)."""
    sha = _sha256
    prefix = _LEAF_PREFIX
    return [sha(prefix + data).digest() for data in leaves]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node from its two children.

    Args:
        left: Hash of the left subtree.
        right: Hash of the right subtree.

    Returns:
        ``SHA-256(0x01 || left || right)``.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


class _BadLeafError(InputError):
    """A leaf hash of the wrong length; remembers how many leaves were absorbed before it."""

    def __init__(self, size: int, length: int) -> None:
        self.size = size
        super().__init__(f"merkle leaf {size}: hash is {length} bytes, expected {HASH_SIZE}")


_CHUNK = 4096
"""leaf hashes :func:`_absorb` takes at a time (bounds its memory on a stream)"""


def _absorb(stack: list[bytes], size: int, hashes: Iterable[bytes]) -> int:
    """Push leaf hashes onto a compact range, merging equal-height subtrees; return the new size.

    The stack holds the roots of the perfect subtrees that make up the first ``size`` leaves,
    largest (leftmost) first: one per set bit of ``size``. The hashes are taken in chunks of at
    most :data:`_CHUNK` (O(log n) memory on a stream stays O(log n + chunk)).
    """
    it = iter(hashes)
    while chunk := list(itertools.islice(it, _CHUNK)):
        if set(map(len, chunk)) != {HASH_SIZE}:
            return _absorb_one_by_one(stack, size, chunk)  # raises at the bad hash
        size = _absorb_subtrees(stack, size, chunk)
    return size


def _absorb_subtrees(stack: list[bytes], size: int, hashes: list[bytes]) -> int:
    """:func:`_absorb` of 32-byte hashes, computed as aligned perfect subtrees, level by level.

    From ``size``, the next ``2**k`` leaves form a perfect subtree of the final tree when
    ``2**k`` divides ``size``: its root is computed one level at a time (one comprehension per
    level: the per-node cost is the SHA-256 call, not the bookkeeping of a stack machine) and
    pushed as one entry, merging with the stack like a carry. The same nodes are hashed as one
    leaf at a time would; this is the verifier's hot path (``tests/ledger/
    test_merkle_properties.py`` checks it against the one-by-one absorption).
    """
    pop = stack.pop
    push = stack.append
    sha = _sha256
    prefix = _NODE_PREFIX
    start, end = 0, len(hashes)
    while start < end:
        height = (end - start).bit_length() - 1
        if size:
            height = min(height, (size & -size).bit_length() - 1)
        width = 1 << height
        level = hashes[start : start + width]
        while len(level) > 1:
            pairs = iter(level)
            level = [
                sha(prefix + left + right).digest()
                for left, right in zip(pairs, pairs, strict=True)
            ]
        h = level[0]
        start += width
        size += width
        carry = size >> height
        while not carry & 1:
            h = sha(prefix + pop() + h).digest()
            carry >>= 1
        push(h)
    return size


def _absorb_one_by_one(stack: list[bytes], size: int, hashes: Iterable[bytes]) -> int:
    """:func:`_absorb` one leaf at a time; raises :class:`_BadLeafError` at a bad hash (the
    reference the subtree path is tested against)."""
    pop = stack.pop
    push = stack.append
    sha = _sha256
    prefix = _NODE_PREFIX
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise _BadLeafError(size, len(h))
        size += 1
        m = size
        while not m & 1:
            h = sha(prefix + pop() + h).digest()
            m >>= 1
        push(h)
    return size


def _fold(stack: Sequence[bytes]) -> bytes:
    """Combine a compact range into the tree head, right to left (RFC 9162's MTH on a split)."""
    if not stack:
        return EMPTY_ROOT
    root = stack[-1]
    for h in reversed(stack[:-1]):
        root = _sha256(_NODE_PREFIX + h + root).digest()
    return root


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> tuple[int, bytes]:
    """Compute the tree head over a stream of leaf hashes in O(log n) memory.

    Args:
        hashes: Leaf hashes (``leaf_hash(data)``) in log order; consumed once.

    Returns:
        ``(size, root)``: the number of leaves seen and the RFC 9162 root over them.

    Raises:
        InputError: A leaf hash is not 32 bytes long.
    """
    stack: list[bytes] = []
    size = _absorb(stack, 0, hashes)
    return size, _fold(stack)


def root_from_leaves(leaves: Iterable[bytes]) -> tuple[int, bytes]:
    """Compute the tree head over a stream of raw leaf contents in O(log n) memory.

    Args:
        leaves: Leaf contents in log order; each is hashed with :func:`leaf_hash`.

    Returns:
        ``(size, root)``: the number of leaves seen and the RFC 9162 root over them.
    """
    sha = _sha256
    prefix = _LEAF_PREFIX
    stack: list[bytes] = []
    size = _absorb(stack, 0, (sha(prefix + d).digest() for d in leaves))
    return size, _fold(stack)


@dataclass(frozen=True, kw_only=True, slots=True)
class CompactRange:
    """The resumable state of a :class:`MerkleAccumulator`.

    Attributes:
        size: Number of leaves absorbed.
        hashes: Roots of the perfect subtrees covering leaves ``[0, size)``, largest first;
            exactly one per set bit of ``size``.
    """

    size: int
    hashes: tuple[bytes, ...]


class MerkleAccumulator:
    """An append-only Merkle tree that keeps only its compact range (O(log n) hashes).

    The appender feeds it each new leaf hash; ``root()`` gives the tree head at the current size
    in O(log n) hashes, so a checkpoint can be cut after any append. ``state()`` and
    ``from_state()`` let the appender resume after a restart without re-reading the leaves.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash.

        Args:
            leaf_hash: ``leaf_hash(data)`` of the new entry.

        Raises:
            InputError: The hash is not 32 bytes long.
        """
        self._size = _absorb_one_by_one(self._stack, self._size, (leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append several leaf hashes in order.

        Args:
            leaf_hashes: Leaf hashes in log order.

        Raises:
            InputError: A hash is not 32 bytes long (the ones before it stay appended).
        """
        # A bad hash stops the loop half way; keep the size that matches what was absorbed so
        # that size and compact range never disagree.
        try:
            self._size = _absorb(self._stack, self._size, leaf_hashes)
        except _BadLeafError as exc:
            self._size = exc.size
            raise

    def root(self) -> bytes:
        """Return the RFC 9162 root over the leaves appended so far."""
        return _fold(self._stack)

    def state(self) -> CompactRange:
        """Return the compact range to store, from which :meth:`from_state` resumes."""
        return CompactRange(size=self._size, hashes=tuple(self._stack))

    @classmethod
    def from_state(cls, state: CompactRange) -> MerkleAccumulator:
        """Rebuild an accumulator from a stored compact range.

        Args:
            state: What :meth:`state` returned.

        Returns:
            An accumulator at ``state.size`` that continues the same tree.

        Raises:
            InputError: The size is negative or the hashes do not fit it.
        """
        size = state.size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"merkle compact range: size: {size!r} is not a leaf count")
        want = size.bit_count()
        if len(state.hashes) != want:
            raise InputError(
                f"merkle compact range: hashes: size {size} needs {want} hashes, "
                f"got {len(state.hashes)}"
            )
        for i, h in enumerate(state.hashes):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise InputError(f"merkle compact range: hashes[{i}]: not a {HASH_SIZE}-byte hash")
        acc = cls()
        acc._size = size
        acc._stack = list(state.hashes)
        return acc


def _largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """Return the RFC 9162 root over ``leaf_hashes[start:end]`` without copying the slice.

    Args:
        leaf_hashes: All leaf hashes of the log.
        start: First leaf index, inclusive.
        end: Last leaf index, exclusive.

    Raises:
        InputError: The range lies outside ``leaf_hashes``.
    """
    if not 0 <= start <= end <= len(leaf_hashes):
        raise InputError(
            f"merkle subtree: range [{start}, {end}) is outside the {len(leaf_hashes)} leaves"
        )
    stack: list[bytes] = []
    _absorb(stack, 0, (leaf_hashes[i] for i in range(start, end)))
    return _fold(stack)


def _check_size(leaf_hashes: Sequence[bytes], size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InputError(f"merkle {what}: size {size!r} is not a leaf count")
    if size > len(leaf_hashes):
        raise InputError(
            f"merkle {what}: size {size} exceeds the {len(leaf_hashes)} leaves available"
        )


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Build the inclusion proof of one leaf in the tree of the first ``size`` leaves.

    This is RFC 9162's ``PATH(index, D[0:size])`` (section 2.1.3.1), listed from the leaf's
    sibling up to the root's other child.

    Args:
        leaf_hashes: The log's leaf hashes; only the first ``size`` are read.
        index: Position of the leaf to prove, ``0 <= index < size``.
        size: Size of the tree the proof is against.

    Returns:
        The audit path.

    Raises:
        InputError: ``size`` exceeds the leaves, or ``index`` is outside the tree.
    """
    _check_size(leaf_hashes, size, "inclusion proof")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise InputError(f"merkle inclusion proof: index {index!r} is outside tree size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; each split contributes the subtree the leaf is not in.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            path.append(subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(leaf_hashes, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """Build the proof that the tree of ``old_size`` leaves is a prefix of the ``new_size`` one.

    This is RFC 9162's ``PROOF(old_size, D[0:new_size])`` (section 2.1.4.1). Equal sizes give
    the empty proof.

    Args:
        leaf_hashes: The log's leaf hashes; only the first ``new_size`` are read.
        old_size: Size of the earlier tree, ``1 <= old_size <= new_size``. A proof from the
            empty tree is meaningless (any tree extends it) and RFC 9162 does not define one.
        new_size: Size of the later tree.

    Returns:
        The consistency path.

    Raises:
        InputError: The sizes are out of order, zero, or exceed the leaves.
    """
    _check_size(leaf_hashes, new_size, "consistency proof")
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 < old_size <= new_size:
        raise InputError(
            f"merkle consistency proof: old size {old_size!r} must be in [1, {new_size}]"
        )
    proof: list[bytes] = []
    lo, hi, m = 0, new_size, old_size
    # `complete` is SUBPROOF's flag b: true while the old tree's root is a node of this subtree
    # path that the verifier already knows (it is old_root itself), so it need not be sent.
    complete = True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(subtree_root(leaf_hashes, lo, hi))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            proof.append(subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree_root(leaf_hashes, lo, lo + k))
            lo += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hash_list(proof: object) -> list[bytes] | None:
    """Return the proof as a list of 32-byte hashes, or None when it is anything else."""
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        return None
    items = list(proof)
    for item in items:
        if not isinstance(item, bytes) or len(item) != HASH_SIZE:
            return None
    return items


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check that a leaf sits at ``index`` in the tree of ``size`` leaves whose head is ``root``.

    The RFC 9162 section 2.1.3.2 algorithm. Never raises: malformed arguments verify as False.

    Args:
        leaf_hash: ``leaf_hash(data)`` of the entry.
        index: Claimed position of the entry.
        size: Size of the tree the proof is against.
        proof: The audit path from :func:`inclusion_proof`.
        root: The tree head at ``size`` (from a verified checkpoint).

    Returns:
        True when the proof recomputes ``root``; False otherwise.
    """
    if not (_is_count(index) and _is_count(size)) or index >= size:
        return False
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
        return False
    if not isinstance(root, bytes):
        return False
    path = _hash_list(proof)
    if path is None:
        return False
    fn, sn = index, size - 1
    r = leaf_hash
    for p in path:
        if sn == 0:
            return False  # proof is longer than the tree is deep
        if fn & 1 or fn == sn:
            r = _sha256(_NODE_PREFIX + p + r).digest()
            if not fn & 1:
                # fn is the last node of its level and has no right sibling: climb until it is a
                # right child again (or the root of the left part).
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(_NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size``.

    The RFC 9162 section 2.1.4.2 algorithm, plus two edges the RFC leaves open: equal sizes
    verify when the roots are equal and the proof is empty; ``old_size == 0`` never verifies
    (consistency with the empty tree proves nothing). Never raises: malformed arguments verify
    as False.

    Args:
        old_size: Size of the earlier tree (from the older checkpoint).
        new_size: Size of the later tree.
        old_root: Tree head at ``old_size``.
        new_root: Tree head at ``new_size``.
        proof: The path from :func:`consistency_proof`.

    Returns:
        True when the proof links both roots; False otherwise.
    """
    if not (_is_count(old_size) and _is_count(new_size)) or old_size == 0:
        return False
    if old_size > new_size:
        return False
    if not isinstance(old_root, bytes) or not isinstance(new_root, bytes):
        return False
    path = _hash_list(proof)
    if path is None:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if not path:
        return False
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root starts the path.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = fh = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE_PREFIX + c + fr).digest()
            fh = _sha256(_NODE_PREFIX + c + fh).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            fr = _sha256(_NODE_PREFIX + fr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fh == old_root and fr == new_root
