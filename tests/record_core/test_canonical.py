"""Rules for canonical JSON, the strict JSON reader and record timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import RecordFileError
from orchestrator.record.canonical import (
    MAX_SAFE_INTEGER,
    canonical_bytes,
    field_path,
    loads_strict,
    ns_timestamp,
    parse_ns_timestamp,
    sha256_hex,
)

# RFC 8785 section 3.2.2 example input and its canonical output.
_RFC8785_INPUT = rb"""{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
_RFC8785_OUTPUT = (
    b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)


def test_canonical_bytes_match_rfc8785_example() -> None:
    assert canonical_bytes(loads_strict(_RFC8785_INPUT, source="rfc")) == _RFC8785_OUTPUT


def test_canonical_bytes_sort_keys_and_drop_whitespace() -> None:
    assert canonical_bytes({"b": 1, "a": [1, "x", None, True]}) == b'{"a":[1,"x",null,true],"b":1}'


def test_canonical_bytes_are_the_same_whatever_the_key_order() -> None:
    assert canonical_bytes({"z": {"y": 1, "x": 2}, "a": 0}) == canonical_bytes(
        {"a": 0, "z": {"x": 2, "y": 1}}
    )


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ({"a": [1, float("nan")]}, "a[1]", "not a finite number"),
        ({"a": {"b": float("inf")}}, "a.b", "not a finite number"),
        ({"t": 1_764_468_000_123_456_789}, "t", "outside +/-(2**53 - 1)"),
        ({"k": {1: "x"}}, 'k["1"]', "is not a string"),
        ({"f": 2.0**53}, "f", "would be written as an integer outside"),
        ({"s": "\ud800"}, "s", "lone surrogate"),
        ({"b": b"bytes"}, "b", "bytes is not a JSON value"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "when", "datetime is not a JSON value"),
    ],
)
def test_canonical_bytes_refuse_values_jcs_cannot_carry_and_name_the_field(
    value: Any, field: str, problem: str
) -> None:
    with pytest.raises(RecordFileError) as caught:
        canonical_bytes(value, source="record.json")
    assert caught.value.file == "record.json"
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_largest_safe_integer_is_accepted_both_ways() -> None:
    data = canonical_bytes({"n": MAX_SAFE_INTEGER, "m": -MAX_SAFE_INTEGER})
    assert loads_strict(data, source="x") == {"n": MAX_SAFE_INTEGER, "m": -MAX_SAFE_INTEGER}


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (b'{"a": 1, "a": 2}', "a", "duplicate key"),
        (b'{"signatures": [{"keyid": "x", "keyid": "y"}]}', "signatures[0].keyid", "duplicate"),
        (b'{"a b": {"c": 1, "c": 1}}', '["a b"].c', "duplicate key"),
        (b'{"x": NaN}', "x", "NaN is not a JSON number"),
        (b'{"x": [Infinity]}', "x[0]", "Infinity is not a JSON number"),
        (b'{"x": -Infinity}', "x", "-Infinity is not a JSON number"),
        (b'{"x": 1e999}', "x", "not a finite number"),
        (b'{"x": 9007199254740992}', "x", "outside +/-(2**53 - 1)"),
    ],
)
def test_loads_strict_refuses_and_names_the_field(data: bytes, field: str, problem: str) -> None:
    with pytest.raises(RecordFileError) as caught:
        loads_strict(data, source="env.json")
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"env.json: {field}: ")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'\xef\xbb\xbf{"a": 1}', "byte-order mark"),
        (b'{"a": 1', "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"a": 1} trailing', "not valid JSON"),
    ],
)
def test_loads_strict_refuses_bytes_that_are_not_strict_json(data: bytes, problem: str) -> None:
    with pytest.raises(RecordFileError, match=problem):
        loads_strict(data, source="env.json")


def test_loads_strict_keeps_same_key_in_different_objects() -> None:
    assert loads_strict(b'{"a": {"k": 1}, "b": {"k": 2}}', source="x") == {
        "a": {"k": 1},
        "b": {"k": 2},
    }


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    # Integral floats between 2**53 and 1e21 are refused by the writer (tested above).
    | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not MAX_SAFE_INTEGER < abs(f) < 1e21
    )
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_json_values)
def test_canonical_bytes_survive_a_strict_read(value: Any) -> None:
    first = canonical_bytes(value)
    assert canonical_bytes(loads_strict(first, source="p")) == first


def test_sha256_hex_known_vector() -> None:
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_ns_timestamp_formats_nanoseconds_with_nine_digits() -> None:
    ns = 1_764_468_000_123_456_789
    assert ns_timestamp(ns) == "2025-11-30T02:00:00.123456789Z"
    assert ns_timestamp(0) == "1970-01-01T00:00:00.000000000Z"
    assert ns_timestamp(-1) == "1969-12-31T23:59:59.999999999Z"


def test_ns_timestamp_converts_aware_datetime_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    when = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=beijing)
    assert ns_timestamp(when) == "2026-11-30T02:00:00.123456000Z"


def test_ns_timestamp_refuses_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        ns_timestamp(datetime(2026, 11, 30, 2, 0, 0))


def test_parse_ns_timestamp_reads_the_record_form() -> None:
    assert parse_ns_timestamp("2026-11-30T02:00:00.123456789Z") == 1_796_004_000_123_456_789


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30T02:00:00Z",
        "2026-11-30T02:00:00.123456Z",
        "2026-11-30T02:00:00.123456789+00:00",
        "2026-11-30 02:00:00.123456789Z",
        "2026-02-30T02:00:00.000000000Z",
        "2026-11-30T24:00:00.000000000Z",
        "2026-11-30T02:00:00.1234567890Z",
        "\uff12\uff10\uff12\uff16-11-30T02:00:00.123456789Z",  # full-width digits
    ],
)
def test_parse_ns_timestamp_refuses_other_spellings(text: str) -> None:
    with pytest.raises(RecordFileError) as caught:
        parse_ns_timestamp(text, source="record.json", field="span.start")
    assert caught.value.field == "span.start"


@given(st.integers(min_value=-(10**18), max_value=10**19))
def test_ns_timestamps_round_trip(ns: int) -> None:
    assert parse_ns_timestamp(ns_timestamp(ns)) == ns


@given(
    st.integers(min_value=0, max_value=4 * 10**18),
    st.integers(min_value=0, max_value=4 * 10**18),
)
def test_ns_timestamps_sort_like_their_instants(a: int, b: int) -> None:
    assert (ns_timestamp(a) < ns_timestamp(b)) == (a < b)


@pytest.mark.parametrize(
    ("base", "key", "expected"),
    [
        ("", "signatures", "signatures"),
        ("signatures", 0, "signatures[0]"),
        ("a", "b c", 'a["b c"]'),
    ],
)
def test_field_path_spelling(base: str, key: str | int, expected: str) -> None:
    assert field_path(base, key) == expected
