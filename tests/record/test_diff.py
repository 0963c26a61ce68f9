"""The diff between record versions: empty exactly when the versions say the same, and each
change names where it is, with the values on both sides."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.record.diff import BOOKKEEPING, ChangeKind, RecordChange, diff_documents

_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "R-1-F1"])
_json: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "finding", "x", "y"]), inner, max_size=3)
        # lists of identified elements, as findings, orders and conclusions are
        | st.lists(
            st.fixed_dictionaries({"id": st.integers(1, 4), "v": inner}),
            max_size=3,
            unique_by=lambda d: d["id"],
        )
    ),
    max_leaves=12,
)
_documents = st.dictionaries(
    st.sampled_from(["findings", "rectifications", "conclusions", "version", "created_at"]),
    _json,
    max_size=5,
)


def _content(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in BOOKKEEPING}


def _same(a: Any, b: Any) -> bool:
    # JSON equality: True is not 1 (Python's == says it is).
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@given(_documents, _documents)
def test_the_diff_is_empty_exactly_when_the_content_is_the_same(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    changes = diff_documents(old, new)
    assert (changes == ()) == _same(_content(old), _content(new))
    assert diff_documents(old, copy.deepcopy(old)) == ()


@given(_documents, _documents)
def test_every_change_names_a_path_and_reverses(old: dict[str, Any], new: dict[str, Any]) -> None:
    forward = diff_documents(old, new)
    backward = diff_documents(new, old)
    flip = {ChangeKind.ADDED: ChangeKind.REMOVED, ChangeKind.REMOVED: ChangeKind.ADDED}
    assert {(c.path, flip.get(c.kind, c.kind)) for c in forward} == {
        (c.path, c.kind) for c in backward
    }
    assert all(c.path for c in forward)


def test_an_added_order_is_one_change_on_its_id_and_bookkeeping_is_left_out() -> None:
    old = {
        "version": 1,
        "created_at": "2026-09-02T02:00:00Z",
        "rectifications": [],
        "conclusions": {
            "risks": [{"finding": "F1", "severity": "high"}, {"finding": "F2", "severity": "low"}],
            "violations": [],
        },
    }
    new = {
        "version": 2,
        "created_at": "2026-09-03T02:00:00Z",
        "rectifications": [{"id": 7, "findings": ["F1"], "deadline": "2026-09-30"}],
        "conclusions": {
            "risks": [{"finding": "F2", "severity": "low"}],
            "violations": [{"finding": "F1", "severity": "high", "rectification": [7]}],
        },
    }
    assert diff_documents(old, new) == (
        RecordChange(
            path="conclusions.risks[finding=F1]",
            kind=ChangeKind.REMOVED,
            before={"finding": "F1", "severity": "high"},
        ),
        RecordChange(
            path="conclusions.violations[finding=F1]",
            kind=ChangeKind.ADDED,
            after={"finding": "F1", "severity": "high", "rectification": [7]},
        ),
        RecordChange(
            path="rectifications[id=7]",
            kind=ChangeKind.ADDED,
            after={"id": 7, "findings": ["F1"], "deadline": "2026-09-30"},
        ),
    )


def test_a_moved_deadline_is_named_inside_its_order() -> None:
    old = {"rectifications": [{"id": 1, "deadline": "2027-01-08"}, {"id": 2, "deadline": "x"}]}
    new = {"rectifications": [{"id": 1, "deadline": "2027-01-11"}, {"id": 2, "deadline": "x"}]}
    assert diff_documents(old, new) == (
        RecordChange(
            path="rectifications[id=1].deadline",
            kind=ChangeKind.CHANGED,
            before="2027-01-08",
            after="2027-01-11",
        ),
    )


def test_reordered_elements_are_a_change() -> None:
    old = {"findings": [{"id": "A"}, {"id": "B"}]}
    new = {"findings": [{"id": "B"}, {"id": "A"}]}
    assert diff_documents(old, new) == (
        RecordChange(
            path="findings[*].id", kind=ChangeKind.CHANGED, before=["A", "B"], after=["B", "A"]
        ),
    )
