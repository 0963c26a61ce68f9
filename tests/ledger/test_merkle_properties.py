"""Property tests: the streaming tree agrees with RFC 9162's recursive definition, and proofs
verify exactly when nothing about them was changed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.ledger import merkle
from orchestrator.ledger.merkle import (
    CompactRange,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    root_from_leaves,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 section 2.1.1 writes it, recursively."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    left, right = naive_root(leaves[:k]), naive_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def flip(data: bytes, bit: int) -> bytes:
    """Return ``data`` with one bit inverted."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """(inner, border) of an audit path, the decomposition transparency-dev/merkle uses.

    Two (index, size) pairs with the same shape and index run the very same hash chain, so a
    proof for one verifies for the other: the root alone does not fix the size, which is why
    a checkpoint signs size and root together.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def consistency_shape(old: int, new: int) -> tuple[int, int, int, int]:
    """(shift, mask, inner, border) of a consistency proof (transparency-dev/merkle)."""
    shift = (old & -old).bit_length() - 1
    inner, border = inclusion_shape(old - 1, new)
    return shift, (old - 1) >> shift, inner - shift, border


# Distinct leaves: with repeated leaves a proof for one position can honestly verify for
# another (same hashes in the same places), which is not tampering.
leaf_lists = st.lists(st.binary(max_size=6), min_size=1, max_size=40, unique=True)


@given(st.lists(st.binary(max_size=6), max_size=70))
def test_streaming_root_equals_recursive_definition(leaves: list[bytes]) -> None:
    want = (len(leaves), naive_root(leaves))
    assert root_from_leaves(leaves) == want
    assert root_from_leaf_hashes(iter([leaf_hash(d) for d in leaves])) == want


@given(st.lists(st.binary(max_size=6), max_size=40))
def test_accumulator_root_at_every_size_equals_recursive_definition(leaves: list[bytes]) -> None:
    acc = MerkleAccumulator()
    assert acc.root() == naive_root([])
    for n, data in enumerate(leaves, start=1):
        acc.append(leaf_hash(data))
        assert acc.size == n
        assert acc.root() == naive_root(leaves[:n])


@given(st.lists(st.binary(max_size=6), max_size=40), st.data())
def test_accumulator_resumed_from_state_continues_the_same_tree(
    leaves: list[bytes], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(leaves)))
    hashes = [leaf_hash(d) for d in leaves]
    first = MerkleAccumulator()
    first.extend(hashes[:cut])
    state = first.state()
    assert len(state.hashes) == cut.bit_count()
    resumed = MerkleAccumulator.from_state(
        CompactRange(size=state.size, hashes=tuple(state.hashes))
    )
    assert resumed.state() == state
    resumed.extend(hashes[cut:])
    first.extend(hashes[cut:])
    assert resumed.size == len(leaves)
    assert resumed.root() == first.root() == naive_root(leaves)


@given(leaf_lists, st.data())
def test_subtree_root_equals_recursive_definition(leaves: list[bytes], data: st.DataObject) -> None:
    end = data.draw(st.integers(0, len(leaves)))
    start = data.draw(st.integers(0, end))
    hashes = [leaf_hash(d) for d in leaves]
    assert subtree_root(hashes, start, end) == naive_root(leaves[start:end])


@given(leaf_lists)
def test_every_inclusion_proof_verifies(leaves: list[bytes]) -> None:
    hashes = [leaf_hash(d) for d in leaves]
    for size in range(1, len(leaves) + 1):
        root = naive_root(leaves[:size])
        for index in range(size):
            proof = inclusion_proof(hashes, index, size)
            assert verify_inclusion(hashes[index], index, size, proof, root)


@given(leaf_lists)
def test_every_consistency_proof_verifies(leaves: list[bytes]) -> None:
    hashes = [leaf_hash(d) for d in leaves]
    roots = [naive_root(leaves[:n]) for n in range(len(leaves) + 1)]
    for new in range(1, len(leaves) + 1):
        for old in range(1, new + 1):
            proof = consistency_proof(hashes, old, new)
            assert verify_consistency(old, new, roots[old], roots[new], proof)


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[list[bytes], int, int, list[bytes], bytes]:
    leaves = draw(leaf_lists)
    size = draw(st.integers(1, len(leaves)))
    index = draw(st.integers(0, size - 1))
    hashes = [leaf_hash(d) for d in leaves]
    return hashes, index, size, inclusion_proof(hashes, index, size), naive_root(leaves[:size])


@given(inclusion_cases(), st.data())
def test_inclusion_fails_when_one_proof_bit_flips(
    case: tuple[list[bytes], int, int, list[bytes], bytes], data: st.DataObject
) -> None:
    hashes, index, size, proof, root = case
    assume(proof)
    at = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    proof[at] = flip(proof[at], bit)
    assert not verify_inclusion(hashes[index], index, size, proof, root)


@given(inclusion_cases(), st.integers(0, 255), st.booleans())
def test_inclusion_fails_when_one_bit_of_root_or_leaf_flips(
    case: tuple[list[bytes], int, int, list[bytes], bytes], bit: int, in_root: bool
) -> None:
    hashes, index, size, proof, root = case
    leaf = hashes[index]
    if in_root:
        root = flip(root, bit)
    else:
        leaf = flip(leaf, bit)
    assert not verify_inclusion(leaf, index, size, proof, root)


@given(inclusion_cases(), st.integers(0, 8))
def test_inclusion_fails_when_one_bit_of_index_flips(
    case: tuple[list[bytes], int, int, list[bytes], bytes], bit: int
) -> None:
    hashes, index, size, proof, root = case
    assert not verify_inclusion(hashes[index], index ^ (1 << bit), size, proof, root)


@given(inclusion_cases(), st.integers(0, 8))
def test_inclusion_under_flipped_size_verifies_only_for_the_same_path_shape(
    case: tuple[list[bytes], int, int, list[bytes], bytes], bit: int
) -> None:
    hashes, index, size, proof, root = case
    other = size ^ (1 << bit)
    same_chain = other > index and inclusion_shape(index, other) == inclusion_shape(index, size)
    assert verify_inclusion(hashes[index], index, other, proof, root) is same_chain


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int, bytes, bytes, list[bytes]]:
    leaves = draw(st.lists(st.binary(max_size=6), min_size=2, max_size=40, unique=True))
    new = draw(st.integers(2, len(leaves)))
    old = draw(st.integers(1, new - 1))
    hashes = [leaf_hash(d) for d in leaves]
    return (
        old,
        new,
        naive_root(leaves[:old]),
        naive_root(leaves[:new]),
        consistency_proof(hashes, old, new),
    )


@given(consistency_cases(), st.data())
def test_consistency_fails_when_one_proof_bit_flips(
    case: tuple[int, int, bytes, bytes, list[bytes]], data: st.DataObject
) -> None:
    old, new, old_root, new_root, proof = case
    at = data.draw(st.integers(0, len(proof) - 1))
    proof[at] = flip(proof[at], data.draw(st.integers(0, 255)))
    assert not verify_consistency(old, new, old_root, new_root, proof)


@given(consistency_cases(), st.integers(0, 255), st.booleans())
def test_consistency_fails_when_one_bit_of_either_root_flips(
    case: tuple[int, int, bytes, bytes, list[bytes]], bit: int, old_side: bool
) -> None:
    old, new, old_root, new_root, proof = case
    if old_side:
        old_root = flip(old_root, bit)
    else:
        new_root = flip(new_root, bit)
    assert not verify_consistency(old, new, old_root, new_root, proof)


@given(consistency_cases(), st.integers(0, 8))
def test_consistency_fails_when_one_bit_of_old_size_flips(
    case: tuple[int, int, bytes, bytes, list[bytes]], bit: int
) -> None:
    old, new, old_root, new_root, proof = case
    assert not verify_consistency(old ^ (1 << bit), new, old_root, new_root, proof)


@given(consistency_cases(), st.integers(0, 8))
def test_consistency_under_flipped_new_size_verifies_only_for_the_same_path_shape(
    case: tuple[int, int, bytes, bytes, list[bytes]], bit: int
) -> None:
    old, new, old_root, new_root, proof = case
    other = new ^ (1 << bit)
    same_chain = other > old and consistency_shape(old, other) == consistency_shape(old, new)
    assert verify_consistency(old, other, old_root, new_root, proof) is same_chain


def test_inclusion_proof_for_wrong_size_with_same_shape_is_why_size_must_be_signed() -> None:
    # A concrete instance of the property above, so a reader sees it is real: leaf 0's path in
    # a tree of 5 is also a valid-looking path in a tree of 6 against the same root.
    hashes = [leaf_hash(bytes([i])) for i in range(5)]
    proof = inclusion_proof(hashes, 0, 5)
    root = root_from_leaf_hashes(hashes)[1]
    assert verify_inclusion(hashes[0], 0, 6, proof, root)
    assert not verify_inclusion(hashes[0], 0, 4, proof, root)


garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=5),
    st.binary(max_size=40),
    st.lists(st.one_of(st.binary(max_size=40), st.integers(), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


def _typed(value: object, kind: type) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


@given(garbage, garbage, garbage, garbage, garbage)
def test_verifiers_return_false_on_garbage_without_raising(
    a: object, b: object, c: object, d: object, e: object
) -> None:
    inclusion = verify_inclusion(a, b, c, d, e)  # type: ignore[arg-type]
    consistency = verify_consistency(a, b, c, d, e)  # type: ignore[arg-type]
    assert isinstance(inclusion, bool)
    assert isinstance(consistency, bool)
    # Garbage can, by luck, be a well-typed trivial proof (size 1, empty path); any argument of
    # the wrong type must fail.
    if not (_typed(a, bytes) and _typed(b, int) and _typed(c, int) and _typed(d, list)):
        assert inclusion is False
    if not (_typed(a, int) and _typed(b, int) and _typed(c, bytes) and _typed(d, bytes)):
        assert consistency is False


@given(st.integers(0, 70), st.integers(0, 8))
def test_accumulator_state_refused_when_hash_count_does_not_fit_size(size: int, extra: int) -> None:
    count = size.bit_count() + extra + 1
    bad = CompactRange(size=size, hashes=tuple(bytes(32) for _ in range(count)))
    with pytest.raises(InputError, match="compact range"):
        MerkleAccumulator.from_state(bad)


def test_accumulator_keeps_size_consistent_when_a_bad_hash_stops_extend() -> None:
    acc = MerkleAccumulator()
    good = [leaf_hash(bytes([i])) for i in range(3)]
    with pytest.raises(InputError, match="merkle leaf 3"):
        acc.extend([*good, b"short", leaf_hash(b"x")])
    assert acc.size == 3
    assert acc.root() == naive_root([bytes([i]) for i in range(3)])
    assert MerkleAccumulator.from_state(acc.state()).root() == acc.root()


@given(st.integers(0, 700), st.lists(st.integers(0, 300), max_size=6))
def test_extend_in_any_pieces_keeps_the_compact_range_of_one_leaf_at_a_time(
    n: int, pieces: list[int]
) -> None:
    # extend hashes aligned perfect subtrees level by level; append takes one leaf at a time.
    leaves = [i.to_bytes(2, "big") for i in range(n)]
    hashes = [leaf_hash(d) for d in leaves]
    by_piece, one_by_one = MerkleAccumulator(), MerkleAccumulator()
    start = 0
    for piece in [*pieces, n]:
        end = min(start + piece, n)
        by_piece.extend(hashes[start:end])
        for h in hashes[start:end]:
            one_by_one.append(h)
        assert by_piece.state() == one_by_one.state()
        assert by_piece.root() == naive_root(leaves[:end])
        start = end


def test_a_stream_longer_than_one_chunk_has_the_recursive_root() -> None:
    leaves = [i.to_bytes(2, "big") for i in range(2 * merkle._CHUNK + 77)]
    assert root_from_leaves(iter(leaves)) == (len(leaves), naive_root(leaves))
