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


# -- the verifier's batch path (leaf_heads): a head only where the exact path accepts ------------

_ip = st.from_regex(r"127\.0\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True)
_name = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_intents = st.fixed_dictionaries(
    {
        "item": st.integers(-1, 2**40),
        "probe": st.sampled_from(["http", "port", "tls"]),
        "target": _name,
        "ip": _ip,
        "port": st.none() | st.integers(1, 65535),
        "ports": st.lists(st.integers(1, 65535), max_size=3),
        "server_name": st.none() | _name,
        "cost": st.integers(1, 64),
        "deadline": st.just("2026-11-30T02:00:10.123456+00:00"),
        "max_rate": st.integers(1, 100),
        "resolution": st.none()
        | st.fixed_dictionaries(
            {
                "name": _name,
                "addresses": st.lists(_ip, max_size=2),
                "cname_chain": st.lists(_name, max_size=2),
                "nameserver": _ip,
                "answered_at": st.just("2026-11-30T02:00:00.000001Z"),
            }
        ),
    }
)
_outcomes = st.fixed_dictionaries(
    {
        "intent": st.integers(0, 2**31),
        "outcome": st.sampled_from(["ok", "timeout", "error", "unsent"]),
        "elapsed_us": st.none() | st.integers(0, 10**9),
        "connections": st.none() | st.integers(0, 100),
        "evidence_digest": st.none() | st.text("0123456789abcdef", min_size=8, max_size=8),
        "findings": st.lists(st.text("0123456789abcdef", min_size=8, max_size=8), max_size=2),
    },
    optional={
        "sent_at": st.none() | st.just("2026-11-30T02:00:00.123456789Z"),
        "error": st.none() | _name,
        "sends_us": st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
        "not_sent": st.fixed_dictionaries(
            {"check": st.just("rate"), "reason": st.just("rate:per_ip"), "sentence": _name}
        ),
    },
)
_others = st.sampled_from(
    [
        ("state", {"state": "running", "reason": "started"}),
        ("kill", {"by": "li", "reason": "enough"}),
        (
            "health",
            {
                "ip": "127.0.0.1",
                "state": "throttled",
                "factor": 0.5,
                "until": None,
                "reason": "latency",
            },
        ),
        (
            "refusal",
            {
                "request": {
                    "item": 3,
                    "probe": "http",
                    "target": "x",
                    "ip": None,
                    "host": "x.test",
                    "server_name": None,
                    "port": 80,
                    "ports": [],
                    "cost": 1,
                },
                "check": "scope",
                "reason": "out-of-scope",
                "sentence": "no",
                "at": "2026-11-30T02:00:00.123456+00:00",
                "resolution": None,
            },
        ),
    ]
)
_bodies = st.one_of(
    st.tuples(st.just("intent"), _intents),
    st.tuples(st.just("outcome"), _outcomes),
    _others,
    st.tuples(
        st.sampled_from(["intent", "outcome"]), st.dictionaries(_name, json_values, max_size=4)
    ),
)


def _mutate(raw: bytes, where: int, junk: bytes, how: str) -> bytes:
    i = where % len(raw)
    if how == "replace":
        return raw[:i] + junk + raw[i + len(junk) :]
    if how == "insert":
        return raw[:i] + junk + raw[i:]
    if how == "delete":
        return raw[:i] + raw[i + len(junk) :]
    return raw


def _exact_head(raw: bytes) -> tuple[str, int, str, Any] | None:
    try:
        leaf = parse_leaf_exact(raw)
    except RecordFileError:
        return None
    ref = leaf.data.get("item" if leaf.kind == "intent" else "intent")
    return leaf.run, leaf.seq, leaf.kind, ref if leaf.kind in ("intent", "outcome") else None


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            _bodies,
            st.integers(min_value=0),
            st.binary(min_size=1, max_size=3) | st.sampled_from([b"1.0", b"\\u0041", b" ", b"},{"]),
            st.sampled_from(["keep", "keep", "replace", "insert", "delete"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_a_batch_of_leaves_gets_a_head_only_where_the_exact_path_accepts(
    specs: list[tuple[tuple[str, dict[str, Any]], int, bytes, str]],
) -> None:
    batch = [
        _mutate(make_leaf("R-1", seq, kind, _AT, data), where, junk, how)
        for seq, ((kind, data), where, junk, how) in enumerate(specs)
    ]
    heads = leaves_mod.leaf_heads(batch)
    assert len(heads) == len(batch)
    for raw, head in zip(batch, heads, strict=True):
        if head is not None:
            assert head == _exact_head(raw), raw
        # Alone or in company, a leaf gets the same answer.
        assert leaves_mod.leaf_heads([raw]) == [head], raw


@given(
    st.lists(
        st.one_of(st.tuples(st.just("intent"), _intents), st.tuples(st.just("outcome"), _outcomes)),
        min_size=1,
        max_size=20,
    )
)
def test_intents_and_outcomes_in_ascii_take_the_batch_path(
    bodies: list[tuple[str, dict[str, Any]]],
) -> None:
    batch = [make_leaf("R-1", seq, kind, _AT, data) for seq, (kind, data) in enumerate(bodies)]
    heads = leaves_mod.leaf_heads(batch)
    assert heads == [_exact_head(raw) for raw in batch]
    assert None not in heads


def test_leaves_joined_across_a_boundary_get_no_head() -> None:
    # '{one},{two up to a comma' + 'the rest of two}': joined with a comma, the batch text is
    # exactly '[{one},{two}]', two canonical leaves, but neither part is a leaf.
    one = make_leaf("R-1", 0, "state", _AT, {"state": "running", "reason": None})
    two = make_leaf("R-1", 1, "state", _AT, {"state": "running", "reason": None})
    comma = two.rindex(b",")
    forged = [one + b"," + two[:comma], two[comma + 1 :]]
    assert b"[" + b",".join(forged) + b"]" == b"[" + one + b"," + two + b"]"
    assert [_exact_head(raw) for raw in forged] == [None, None]
    assert leaves_mod.leaf_heads(forged) == [None, None]


def _accepted(text: str) -> bool:
    try:
        leaves_mod.parse_instant(text)
    except ValueError:
        return False
    return True


@given(
    st.lists(
        st.tuples(
            st.datetimes(
                min_value=datetime(1970, 1, 1),
                max_value=datetime(2999, 12, 31),
                timezones=st.just(UTC),
            ),
            st.integers(0, 40),
            st.sampled_from(["0", "9", "-", "T", " ", ":", ".", "Z", "\n", "\u0663", "x", ""]),
            st.sampled_from(["keep", "replace", "insert"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_batch_instants_check_accepts_only_what_parse_instant_accepts(
    specs: list[tuple[datetime, int, str, str]],
) -> None:
    texts = []
    for when, where, char, how in specs:
        text = leaves_mod.format_instant(when)
        if how == "replace":
            text = text[:where] + char + text[where + 1 :]
        elif how == "insert":
            text = text[:where] + char + text[where:]
        texts.append(text)
    batch_says = leaves_mod._all_instants(texts)
    if batch_says:
        assert all(map(_accepted, texts)), texts
    if all(how == "keep" for _, _, _, how in specs):
        assert batch_says, texts
