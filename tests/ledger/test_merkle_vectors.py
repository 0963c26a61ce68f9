"""RFC 9162 proof vectors (transparency-dev/merkle testdata, Apache-2.0, in tests/ledger/testdata).

Every ``wantErr: false`` case must verify and every ``wantErr: true`` case must be rejected;
where a vector is about the README's eight-leaf tree, our own generator must produce the same
proof and root.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.ledger.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent / "testdata" / "rfc9162"

# The README's tree: these eight leaves, in this order.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAF_HASHES = [leaf_hash(d) for d in LEAVES]


@dataclass(frozen=True, kw_only=True, slots=True)
class Vector:
    path: Path
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.relative_to(VECTORS).with_suffix("").as_posix()


def _load(kind: str) -> list[Vector]:
    return [
        Vector(path=p, data=json.loads(p.read_text(encoding="utf-8")))
        for p in sorted((VECTORS / kind).rglob("*.json"))
    ]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(data: dict[str, Any]) -> list[bytes]:
    # The Go JSON encoder writes an empty proof as null.
    return [_b64(p) for p in data["proof"] or []]


def _is_numbered_tree(v: Vector) -> bool:
    """True for the vectors of the README's tree (the numbered folders, not 'additional')."""
    return v.path.parent.name.isdigit() and v.path.parent.parent.name in {
        "inclusion",
        "consistency",
    }


def _ids(vectors: list[Vector]) -> list[str]:
    return [v.id for v in vectors]


def test_vector_files_are_present() -> None:
    # An empty parametrisation would silently skip; the copy in testdata/ must be found.
    assert len(INCLUSION) >= 90, VECTORS
    assert len(CONSISTENCY) >= 90, VECTORS
    assert any(not v.data["wantErr"] for v in INCLUSION)
    assert any(v.data["wantErr"] for v in CONSISTENCY)


def test_readme_tree_root_matches_eight_leaf_vector() -> None:
    happy = [v for v in INCLUSION if _is_numbered_tree(v) and v.path.name == "happy-path.json"]
    assert happy
    for v in happy:
        size = v.data["treeSize"]
        assert root_from_leaf_hashes(LEAF_HASHES[:size]) == (size, _b64(v.data["root"]))


@pytest.mark.parametrize("vector", INCLUSION, ids=_ids(INCLUSION))
def test_inclusion_vector_verifies_only_when_expected(vector: Vector) -> None:
    d = vector.data
    ok = verify_inclusion(
        _b64(d["leafHash"]), d["leafIdx"], d["treeSize"], _proof(d), _b64(d["root"])
    )
    assert ok is (not d["wantErr"]), d["desc"]


@pytest.mark.parametrize("vector", CONSISTENCY, ids=_ids(CONSISTENCY))
def test_consistency_vector_verifies_only_when_expected(vector: Vector) -> None:
    d = vector.data
    ok = verify_consistency(d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"]), _proof(d))
    assert ok is (not d["wantErr"]), d["desc"]


INCLUSION_HAPPY = [v for v in INCLUSION if _is_numbered_tree(v) and not v.data["wantErr"]]
CONSISTENCY_HAPPY = [v for v in CONSISTENCY if _is_numbered_tree(v) and not v.data["wantErr"]]


@pytest.mark.parametrize("vector", INCLUSION_HAPPY, ids=_ids(INCLUSION_HAPPY))
def test_generated_inclusion_proof_equals_vector(vector: Vector) -> None:
    d = vector.data
    index, size = d["leafIdx"], d["treeSize"]
    assert LEAF_HASHES[index] == _b64(d["leafHash"])
    assert root_from_leaf_hashes(LEAF_HASHES[:size])[1] == _b64(d["root"])
    assert inclusion_proof(LEAF_HASHES, index, size) == _proof(d)


@pytest.mark.parametrize("vector", CONSISTENCY_HAPPY, ids=_ids(CONSISTENCY_HAPPY))
def test_generated_consistency_proof_equals_vector(vector: Vector) -> None:
    d = vector.data
    old, new = d["size1"], d["size2"]
    assert root_from_leaf_hashes(LEAF_HASHES[:old])[1] == _b64(d["root1"])
    assert root_from_leaf_hashes(LEAF_HASHES[:new])[1] == _b64(d["root2"])
    assert consistency_proof(LEAF_HASHES, old, new) == _proof(d)


def test_happy_vectors_cover_every_numbered_folder() -> None:
    # Guards the generator comparison above against a filter that matches nothing.
    assert len(INCLUSION_HAPPY) == 5
    assert len(CONSISTENCY_HAPPY) == 5


def test_empty_tree_root_is_hash_of_empty_string() -> None:
    assert root_from_leaf_hashes([]) == (0, EMPTY_ROOT)
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_inclusion_proof_refused_for_index_outside_tree() -> None:
    with pytest.raises(InputError, match="index 8"):
        inclusion_proof(LEAF_HASHES, 8, 8)


def test_inclusion_proof_refused_for_size_beyond_leaves() -> None:
    with pytest.raises(InputError, match="size 9"):
        inclusion_proof(LEAF_HASHES, 0, 9)


def test_consistency_proof_refused_from_empty_tree() -> None:
    with pytest.raises(InputError, match="old size 0"):
        consistency_proof(LEAF_HASHES, 0, 4)


def test_consistency_proof_refused_when_old_size_exceeds_new() -> None:
    with pytest.raises(InputError, match="old size 5"):
        consistency_proof(LEAF_HASHES, 5, 4)
