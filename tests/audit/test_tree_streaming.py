"""Proofs planned as leaf ranges and hashed in one pass equal the ledger's list-based proofs."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.audit._tree import RangeRoots, consistency_ranges, inclusion_ranges
from orchestrator.ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
)


def hashes(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 300))
def test_streamed_consistency_and_inclusion_proofs_match_the_ledger(
    data: st.DataObject, n: int
) -> None:
    leaves = hashes(n)
    old = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, n - 1))
    c_ranges = consistency_ranges(old, n)
    i_ranges = inclusion_ranges(index, n)
    roots = RangeRoots([*c_ranges, *i_ranges], sizes=[old, n])
    for h in leaves:
        roots.add(h)
    assert roots.proof(c_ranges) == consistency_proof(leaves, old, n)
    assert roots.proof(i_ranges) == inclusion_proof(leaves, index, n)
    assert roots.tree_root(old) == root_from_leaf_hashes(leaves[:old])[1]
    assert roots.tree_root(n) == root_from_leaf_hashes(leaves)[1]


def test_range_not_reached_has_no_root() -> None:
    roots = RangeRoots(consistency_ranges(3, 10), sizes=[3, 10])
    for h in hashes(5):
        roots.add(h)
    assert roots.proof(consistency_ranges(3, 10)) is None
    assert roots.tree_root(10) is None
