"""Canonical JSON (RFC 8785, JCS), a strict JSON reader, and nanosecond timestamps.

Signatures and hashes cover bytes, so a record must have exactly one byte form:
:func:`canonical_bytes` produces it. :func:`loads_strict` is its reader and refuses what JSON
tolerates but a signed document must not: duplicate keys (two readers could pick different
values), NaN/Infinity, integers beyond the I-JSON range, and bytes that are not UTF-8.

Times in a record are strings such as ``"2026-11-30T02:00:00.123456789Z"``: always UTC, always
nine fractional digits, so each instant has one spelling and the strings sort in time order.
They are not integers because nanoseconds since the epoch exceed 2**53, which JCS (I-JSON)
numbers cannot carry exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785

from orchestrator.errors import RecordFileError

__all__ = [
    "MAX_SAFE_INTEGER",
    "canonical_bytes",
    "field_path",
    "json_kind",
    "loads_strict",
    "ns_timestamp",
    "parse_ns_timestamp",
    "sha256_hex",
]

#: Largest integer I-JSON (RFC 7493) and therefore JCS can represent exactly.
MAX_SAFE_INTEGER = 2**53 - 1

# ECMAScript number formatting (and so JCS) switches to exponent notation from 1e21 up.
_JCS_EXPONENT_FROM = 1e21
_NS_PER_SECOND = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})\.(?P<frac>\d{9})Z",
    re.ASCII,
)
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def field_path(base: str, key: str | int) -> str:
    """Extend a field path the way rio's error messages spell it.

    Args:
        base: The path so far (``""`` for the document root).
        key: An object key or an array index.

    Returns:
        ``signatures[0].keyid``-style paths; keys that are not identifiers are quoted,
        as in ``labels["a b"]``.
    """
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _IDENTIFIER_RE.fullmatch(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key, ensure_ascii=False)}]"


def canonical_bytes(obj: Any, *, source: str = "<record>") -> bytes:
    """Serialise a JSON-like value to its RFC 8785 canonical bytes.

    Args:
        obj: ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``/``tuple`` or ``dict``
            with ``str`` keys, nested.
        source: Names the document in error messages.

    Returns:
        The canonical UTF-8 JSON bytes.

    Raises:
        RecordFileError: A value JCS cannot represent (a non-string key, NaN or infinity, an
            integer beyond +/-(2**53 - 1), a string with lone surrogates, another type); the
            error names the field.
    """
    # Walk first so the error can name the field; rfc8785 only says what, not where.
    first = next(_problems(obj, ""), None)
    if first is not None:
        raise RecordFileError(source, first[0], first[1])
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:  # pragma: no cover - the walk catches these
        raise RecordFileError(source, "", f"cannot canonicalise: {exc}") from exc


def loads_strict(data: bytes, *, source: str) -> Any:
    """Parse JSON bytes, refusing anything a signed document must not contain.

    Args:
        data: The raw bytes (UTF-8, no byte-order mark).
        source: Names the document in error messages (usually a file path).

    Returns:
        The parsed value: dicts, lists, str, int, float, bool and None.

    Raises:
        RecordFileError: The bytes are not UTF-8 or not JSON, or contain a duplicate object
            key, NaN/Infinity, or an integer beyond +/-(2**53 - 1); the error names the field.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise RecordFileError(source, "", "starts with a byte-order mark; JSON must not")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise RecordFileError(source, "", f"not valid UTF-8 (byte offset {exc.start})") from exc
    try:
        raw = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_constant=_BadConstant,
        )
    except json.JSONDecodeError as exc:
        raise RecordFileError(
            source, "", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise RecordFileError(source, "", "nested too deeply") from exc
    except ValueError as exc:
        # e.g. an integer literal longer than Python's int-conversion digit limit.
        raise RecordFileError(source, "", "holds a number too long to parse") from exc
    return _resolve(raw, "", source)


def ns_timestamp(value: datetime | int) -> str:
    """Format an instant as a record timestamp.

    Args:
        value: A timezone-aware datetime, or integer nanoseconds since the Unix epoch.

    Returns:
        ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` in UTC with exactly nine fractional digits.

    Raises:
        ValueError: A naive datetime (its instant is unknown), or an instant outside the
            years 0001-9999.
    """
    if isinstance(value, datetime):
        ns = _datetime_to_ns(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ns = value
    else:
        raise TypeError(f"expected a datetime or int nanoseconds, got {type(value).__name__}")
    seconds, frac = divmod(ns, _NS_PER_SECOND)
    try:
        whole = _EPOCH + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise ValueError(f"{ns} ns since the epoch is outside the years 0001-9999") from exc
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def parse_ns_timestamp(text: str, *, source: str = "<timestamp>", field: str = "") -> int:
    """Parse a record timestamp into nanoseconds since the Unix epoch.

    Only the exact form :func:`ns_timestamp` writes is accepted, so that a signed record
    cannot spell the same instant two ways.

    Args:
        text: The timestamp, e.g. ``"2026-11-30T02:00:00.123456789Z"``.
        source: Names the document in error messages.
        field: Names the field in error messages.

    Returns:
        Nanoseconds since 1970-01-01T00:00:00Z (negative before it).

    Raises:
        RecordFileError: The text is not a timestamp of that exact form, or names a date or
            time that does not exist.
    """
    if not isinstance(text, str):
        raise RecordFileError(source, field, f"expected a timestamp string, got {json_kind(text)}")
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        raise RecordFileError(
            source,
            field,
            f"{text!r} is not a timestamp of the form YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ",
        )
    try:
        whole = datetime.fromisoformat(f"{match['date']}T{match['time']}+00:00")
    except ValueError as exc:
        raise RecordFileError(source, field, f"{text!r} is not a real date and time") from exc
    return _datetime_to_ns(whole) + int(match["frac"])


def _datetime_to_ns(value: datetime) -> int:
    """Convert an aware datetime to integer nanoseconds without float rounding."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: its instant is unknown; attach a timezone")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_SECOND + delta.microseconds * 1_000


class _Pairs(list[tuple[str, Any]]):
    """An object as parsed, before duplicate keys are checked (the hook has no path)."""


class _BadConstant:
    """Stands for NaN/Infinity found by the parser until the walk can name its field."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _resolve(value: Any, path: str, source: str) -> Any:
    """Turn parsed pairs into dicts, refusing duplicates and out-of-range numbers."""
    if isinstance(value, _Pairs):
        result: dict[str, Any] = {}
        for key, item in value:
            where = field_path(path, key)
            if key in result:
                raise RecordFileError(source, where, "duplicate key")
            result[key] = _resolve(item, where, source)
        return result
    if isinstance(value, list):
        return [_resolve(item, field_path(path, i), source) for i, item in enumerate(value)]
    if isinstance(value, _BadConstant):
        raise RecordFileError(source, path, f"{value.token} is not a JSON number")
    problem = next(_scalar_problems(value), None)
    if problem is not None:
        raise RecordFileError(source, path, problem)
    return value


def _problems(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield (field path, problem) for every value JCS cannot represent."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                yield field_path(path, str(key)), f"object key {key!r} is not a string"
                continue
            yield from _problems(key, field_path(path, key))
            yield from _problems(item, field_path(path, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _problems(item, field_path(path, i))
    elif value is None or isinstance(value, bool | int | float | str):
        for problem in _scalar_problems(value):
            yield path, problem
    else:
        yield path, f"{type(value).__name__} is not a JSON value"


def _scalar_problems(value: Any) -> Iterator[str]:
    """Yield what is wrong with a scalar (the caller knows its path)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            yield "integer outside +/-(2**53 - 1); store large numbers as strings"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield f"{value} is not a finite number"
        elif MAX_SAFE_INTEGER < abs(value) < _JCS_EXPONENT_FROM:
            # JCS writes these without an exponent, so they read back as integers beyond the
            # safe range, which the strict reader refuses; refuse them here instead.
            yield f"{value} would be written as an integer outside +/-(2**53 - 1)"
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield "string is not valid Unicode (lone surrogate)"


def json_kind(value: object) -> str:
    """Name a parsed JSON value's type for an error message (``"an object"``, ``"null"``)."""
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
