"""The probe log's fast canonical encoder gives exactly RFC 8785's bytes."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.ledger.leaves import canonical_json

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_fast_canonical_json_equals_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_control_characters_and_unicode_are_escaped_like_rfc8785() -> None:
    value = {"b": '\u0000\u001f\b\f\n\r\t"\\\u007f\u2028é😀', "a": [1, -2, True, None]}
    assert canonical_json(value) == rfc8785.dumps(value)
