"""RFC 8785 canonical JSON, fast where it can be: the bytes the probe log and the findings hash.

Shared by the probe log (``orchestrator.ledger.leaves``: every leaf) and the findings
(``probes.findings.rules``: every finding's key and digest), which the runner makes for every
probe; the pure-Python RFC 8785 encoder was a third of the runner's time per probe.
``tests/ledger/test_canonical_fast.py`` proves the fast path gives RFC 8785's bytes.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = ["FloatSeenError", "canonical_json", "reject_float"]


class FloatSeenError(ValueError):
    """A float literal: RFC 8785 formats numbers unlike Python, so take the exact path."""


def reject_float(text: str) -> float:
    """A JSON decoder's ``parse_float`` hook that raises :class:`FloatSeenError`."""
    raise FloatSeenError(text)


def _safe_int(text: str) -> int:
    # Integers beyond 2**53 are not exact in RFC 8785 (IEEE doubles): take the exact path.
    if len(text) > 15:
        raise FloatSeenError(text)
    return int(text)


_CHECKER = json.JSONDecoder(parse_float=reject_float, parse_int=_safe_int)
"""checks what we encode: floats and long integers take the exact path"""
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON, with a fast path for values without floats.

    For JSON without float literals, without integers of 16 or more digits and without
    characters beyond the Basic Multilingual Plane, RFC 8785 and ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` give the same bytes: key order by UTF-16 code
    units equals code point order within the BMP, and strings are escaped alike; only numbers
    are formatted differently (ES6), so anything with a float takes the exact, slower path.
    Both encoder and the float check are the C implementations of ``json``.
    """
    fast = _fast(value)
    if fast is not None:
        return fast
    encoded: bytes = rfc8785.dumps(value)
    return encoded


def _fast(value: Any) -> bytes | None:
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        # What json does not encode (a mapping view, a circular value): the exact encoder
        # decides, and says what is wrong.
        return None
    if not (text.isascii() or max(text) <= "\uffff"):
        return None
    try:
        _CHECKER.decode(text)
    except FloatSeenError:
        return None
    return text.encode()
