"""The leaf parser's fast path says yes only where the exact (stdlib, RFC 8785) path says yes.

Any leaf - valid, tampered, or merely written in another JSON spelling - gets the same answer
from ``parse_leaf`` as from the exact reference path: the same parsed leaf, or a refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import RecordFileError
from orchestrator.ledger import leaves as leaves_mod
from orchestrator.ledger.leaves import Leaf, make_leaf, parse_leaf, parse_leaf_exact

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)

_AT = datetime(2026, 11, 30, 2, 0, 0, 123456, tzinfo=UTC)


def _exact(raw: bytes) -> Leaf | str:
    try:
        return parse_leaf_exact(raw)
    except RecordFileError as exc:
        return str(exc)


def _public(raw: bytes) -> Leaf | str:
    try:
        return parse_leaf(raw)
    except RecordFileError as exc:
        return str(exc)


def _assert_same_answer(raw: bytes) -> None:
    fast = leaves_mod._parse_fast(raw)
    exact = _exact(raw)
    if fast is not None:
        assert fast == exact, raw
    assert _public(raw) == exact, raw


@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    st.sampled_from(["intent", "outcome"]),
)
def test_every_leaf_make_leaf_writes_parses_alike_on_both_paths(
    data: dict[str, Any], kind: str
) -> None:
    raw = make_leaf("R-1", 7, kind, _AT, data)
    assert isinstance(_exact(raw), Leaf)
    _assert_same_answer(raw)


@settings(max_examples=300)
@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=5),
    st.integers(min_value=0),
    st.binary(min_size=1, max_size=3),
    st.sampled_from(["replace", "insert", "delete"]),
)
def test_a_tampered_leaf_gets_the_exact_paths_answer(
    data: dict[str, Any], where: int, junk: bytes, how: str
) -> None:
    raw = make_leaf("R-1", 7, "intent", _AT, data)
    i = where % len(raw)
    if how == "replace":
        tampered = raw[:i] + junk + raw[i + len(junk) :]
    elif how == "insert":
        tampered = raw[:i] + junk + raw[i:]
    else:
        tampered = raw[:i] + raw[i + len(junk) :]
    _assert_same_answer(tampered)


@pytest.mark.parametrize(
    "raw",
    [
        # floats: 1.0 and 1e16 round-trip through a plain encoder but are not RFC 8785's form
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":1.0},"kind":"intent","run":"R","seq":0,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":1e16},"kind":"intent","run":"R","seq":0,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":1.5},"kind":"intent","run":"R","seq":0,"v":1}',
        # a bool where an int belongs (the exact path's isinstance accepts it)
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{},"kind":"intent","run":"R","seq":0,"v":true}',
        # an escape where the character is canonical, and the reverse
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":"\\u0041"},"kind":"intent","run":"R","seq":0,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":"\\n\\u001f\\"\\\\"},"kind":"intent","run":"R","seq":0,"v":1}',
        # duplicate key, unknown key, missing key, whitespace, unknown kind
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{},"kind":"intent","run":"R","seq":0,"seq":1,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{},"extra":1,"kind":"intent","run":"R","seq":0,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{},"kind":"intent","run":"R","v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z", "data":{},"kind":"intent","run":"R","seq":0,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{},"kind":"wish","run":"R","seq":0,"v":1}',
        # instants: month 13, a non-ASCII digit in the nanoseconds, a space for the T
        b'{"at":"2026-13-30T02:00:00.123456000Z","data":{},"kind":"intent","run":"R","seq":0,"v":1}',
        '{"at":"2026-11-30T02:00:00.123456\u0663\u0663\u0663Z","data":{},"kind":"intent","run":"R","seq":0,"v":1}'.encode(),
        b'{"at":"2026-11-30 02:00:00.123456000Z","data":{},"kind":"intent","run":"R","seq":0,"v":1}',
        # beyond the BMP: RFC 8785 sorts keys by UTF-16 code units, not code points
        '{"at":"2026-11-30T02:00:00.123456000Z","data":{"\U0001f600":1,"\uffff":2},"kind":"intent","run":"R","seq":0,"v":1}'.encode(),
        '{"at":"2026-11-30T02:00:00.123456000Z","data":{"\uffff":2,"\U0001f600":1},"kind":"intent","run":"R","seq":0,"v":1}'.encode(),
        # a lone surrogate and a huge integer have no canonical form
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":"\\ud800"},"kind":"intent","run":"R","seq":0,"v":1}',
        b'{"at":"2026-11-30T02:00:00.123456000Z","data":{"x":123456789012345678901234567890,"y":0.5},"kind":"intent","run":"R","seq":0,"v":1}',
        b"[]",
        b"\xff",
    ],
)
def test_edge_spellings_get_the_exact_paths_answer(raw: bytes) -> None:
    _assert_same_answer(raw)


def test_non_canonical_spellings_are_refused() -> None:
    base = '{"at":"2026-11-30T02:00:00.123456000Z","data":{%s},"kind":"intent","run":"R","seq":0,"v":1}'
    for body in ('"x":1.0', '"x":"\\u0041"', '"\uffff":2,"\U0001f600":1', '"x":"\\ud800"'):
        with pytest.raises(RecordFileError):
            parse_leaf((base % body).encode())
    accepted = parse_leaf((base % '"\U0001f600":1,"\uffff":2').encode())
    assert accepted.data == {"\U0001f600": 1, "\uffff": 2}
