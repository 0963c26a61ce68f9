"""Probe-log leaves: canonical JSON, one per decision, outcome and state change.

A leaf is the RFC 8785 canonical JSON of
``{"v": 1, "run": RUN, "seq": N, "kind": KIND, "at": "2026-...Z", "data": {...}}``; its hash is
the RFC 9162 leaf hash of those bytes. ``seq`` inside the leaf makes a reordering visible even
to someone who only holds the leaves. ``at`` is an ISO-8601 UTC instant with nanoseconds, kept
as a string so that no float rounding changes what was signed.

Kinds: ``state`` (run state changes), ``intent`` (a permit, logged before the probe is sent),
``refusal`` (the gate said no), ``outcome`` (what came back: outcome class, connections, a salted
digest of the evidence, the findings' digests), ``health`` (breaker changes), ``kill``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

import msgspec
import rfc8785
from msgspec import UNSET, UnsetType

from orchestrator.errors import RecordFileError
from probes.canonical import FloatSeenError as _FloatSeenError
from probes.canonical import canonical_json
from probes.canonical import reject_float as _no_float

__all__ = [
    "LEAF_BATCH",
    "LEAF_KINDS",
    "BatchLeaf",
    "Head",
    "Leaf",
    "as_batch_leaf",
    "batch_leaves",
    "canonical_json",
    "format_instant",
    "leaf_heads",
    "make_leaf",
    "parse_instant",
    "parse_leaf",
    "parse_leaf_exact",
]

LEAF_KINDS = ("state", "intent", "refusal", "outcome", "health", "kill")


def format_instant(when: datetime) -> str:
    """``2026-11-30T02:00:00.123456000Z`` (nanosecond precision, UTC)."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond * 1000:09d}Z"


def parse_instant(text: str) -> datetime:
    """Inverse of :func:`format_instant` (sub-microsecond digits are dropped)."""
    if not (isinstance(text, str) and len(text) == 30 and text.endswith("Z")):
        raise ValueError(f"{text!r} is not a rio instant (YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ)")
    if text[19] != "." or not (text[20:29].isdigit() and text.isascii()):
        raise ValueError(f"{text!r} is not a rio instant (YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ)")
    try:
        # fromisoformat is implemented in C; strptime was a third of a verifier's time per leaf.
        return datetime.fromisoformat(text[:26] + "+00:00")
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rio instant (YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ)"
        ) from None


class Leaf(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A parsed leaf (a frozen, keyword-only value; a msgspec Struct because an audit makes one
    per leaf and a frozen dataclass cost a fifth of the verifier's time)."""

    run: str
    seq: int
    kind: str
    at: str
    data: dict[str, Any]
    raw: bytes

    @property
    def instant(self) -> datetime:
        return parse_instant(self.at)


def make_leaf(run: str, seq: int, kind: str, at: datetime, data: dict[str, Any]) -> bytes:
    """The canonical bytes of a leaf."""
    if kind not in LEAF_KINDS:
        raise ValueError(f"unknown leaf kind {kind!r}")
    doc: dict[str, Any] = {
        "v": 1,
        "run": run,
        "seq": seq,
        "kind": kind,
        "at": format_instant(at),
        "data": data,
    }
    return canonical_json(doc)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _int_or_double(text: str) -> int | float:
    return int(text) if len(text) <= 15 else float(text)


_DECODER = json.JSONDecoder(parse_float=_no_float)
"""reads leaves: any float sends the canonical check down the exact RFC 8785 path"""
_ENCODER_UNSORTED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _utf16_key_order(value: Any) -> Any:
    """``value`` with every object's keys in RFC 8785 order (UTF-16 code units)."""
    if isinstance(value, dict):
        return {
            k: _utf16_key_order(value[k])
            for k in sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        }
    if isinstance(value, list):
        return [_utf16_key_order(v) for v in value]
    return value


def _has_duplicate_keys(raw: bytes) -> bool:
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValueError:
        return True
    return False


def parse_leaf(raw: bytes, *, source: str = "leaf") -> Leaf:
    """Parse and check a leaf's shape, and that its bytes are canonical.

    A leaf that the fast path (msgspec, C) decodes, types and re-encodes to exactly its own
    bytes is accepted there; everything else - floats, escapes it might render differently,
    characters beyond the Basic Multilingual Plane, a wrong shape, any doubt - is decided by
    the exact standard-library path, which also words the error. The fast path only ever says
    yes where the exact path says yes (``tests/ledger/test_leaf_fast_path.py``).

    Raises:
        RecordFileError: malformed JSON, duplicate keys, missing fields, or bytes that are not
            the canonical form of their content (a re-encoded leaf would hash differently).
    """
    fast = _parse_fast(raw)
    return fast if fast is not None else parse_leaf_exact(raw, source)


class _LeafDoc(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The JSON shape of a leaf for the fast path; fields in canonical (sorted) order."""

    at: str
    data: dict[str, Any]
    kind: str
    run: str
    seq: int
    v: int


_FAST_DECODER = msgspec.json.Decoder(_LeafDoc, float_hook=_no_float)
"""strict types (no bool for an int), unknown keys refused; a float sends the leaf to the exact
path, which formats numbers as RFC 8785 does"""
_FAST_ENCODER = msgspec.json.Encoder(order="sorted")
_KINDS = frozenset(LEAF_KINDS)


def _parse_fast(raw: bytes) -> Leaf | None:
    """The parsed leaf when ``raw`` is, beyond doubt, a valid canonical leaf; else ``None``.

    ``None`` never means "invalid", only "ask the exact path". Beyond the BMP the key order of
    RFC 8785 (UTF-16 code units) and of both encoders (code points) can differ, so such leaves
    (UTF-8 lead bytes 0xF0-0xF4) are left to the exact path.
    """
    if not raw.isascii() and max(raw) >= 0xF0:
        return None
    try:
        doc = _FAST_DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError):
        return None
    if _FAST_ENCODER.encode(doc) != raw or doc.kind not in _KINDS or not _is_instant(doc.at):
        return None
    return Leaf(run=doc.run, seq=doc.seq, kind=doc.kind, at=doc.at, data=doc.data, raw=raw)


# -- the verifier's batch path ----------------------------------------------------------------
#
# verify_log reads every leaf once and needs of each only its run, seq, kind and the number it
# pairs (an intent's plan item, an outcome's intent), after proving the bytes valid and
# canonical. One leaf at a time, Python's own work per leaf costs more than the JSON. So leaves
# go in batches: one ``[leaf,leaf,...]`` text, decoded by msgspec in one call into structs whose
# fields are declared in canonical (sorted) order and typed without any float, ``Any`` or
# free-form mapping (so re-encoding needs no sorting and formats every value as RFC 8785 does);
# each struct is re-encoded (a C-level map) and compared with its own leaf's bytes. A batch
# that does not come back byte for byte is split in halves until the leaves that do not are
# alone; those go to parse_leaf, which decides and words the problem.

LEAF_BATCH = 512
"""leaves per :func:`leaf_heads` call that verify_log uses: a few hundred make the per-call
costs vanish, and a batch that must be split costs little"""

Head = tuple[str, int, str, Any]
"""``(run, seq, kind, ref)``: ``ref`` is an intent's ``item``, an outcome's ``intent`` (the
leaf's own value, ``None`` where it has none), ``None`` for other kinds"""


class _Resolution(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    addresses: list[str]
    answered_at: str
    cname_chain: list[str]
    name: str
    nameserver: str


class _NotSent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    check: str | None
    reason: str | None
    sentence: str


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    cost: int | UnsetType = UNSET
    host: str | UnsetType | None = UNSET
    ip: str | UnsetType | None = UNSET
    item: int | UnsetType = UNSET
    port: int | UnsetType | None = UNSET
    ports: list[int] | UnsetType = UNSET
    probe: str | UnsetType = UNSET
    server_name: str | UnsetType | None = UNSET
    target: str | UnsetType = UNSET


class _Data(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """The fields of state, intent, refusal, outcome and kill bodies (health has floats: it
    takes parse_leaf). Every field may be absent: parse_leaf does not judge ``data``'s keys,
    only that the leaf is canonical; UNSET fields are not written back."""

    at: str | UnsetType = UNSET
    by: str | UnsetType = UNSET
    check: str | UnsetType = UNSET
    connections: int | UnsetType | None = UNSET
    cost: int | UnsetType = UNSET
    deadline: str | UnsetType | None = UNSET
    elapsed_us: int | UnsetType | None = UNSET
    error: str | UnsetType | None = UNSET
    evidence_digest: str | UnsetType | None = UNSET
    findings: list[str] | UnsetType = UNSET
    intent: int | UnsetType = UNSET
    ip: str | UnsetType = UNSET
    item: int | UnsetType = UNSET
    max_rate: int | UnsetType = UNSET
    not_sent: _NotSent | UnsetType = UNSET
    outcome: str | UnsetType = UNSET
    port: int | UnsetType | None = UNSET
    ports: list[int] | UnsetType = UNSET
    probe: str | UnsetType = UNSET
    reason: str | UnsetType | None = UNSET
    request: _Request | UnsetType = UNSET
    resolution: _Resolution | UnsetType | None = UNSET
    sends_us: list[int] | UnsetType = UNSET
    sent_at: str | UnsetType | None = UNSET
    sentence: str | UnsetType = UNSET
    server_name: str | UnsetType | None = UNSET
    state: str | UnsetType = UNSET
    target: str | UnsetType = UNSET


class BatchLeaf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A leaf as the batch path decodes it (fields in canonical order, ``data`` typed); what
    verify_log reads of it: ``run``, ``seq``, ``kind``, ``data.item``, ``data.intent``."""

    at: str
    data: _Data
    kind: Literal["state", "intent", "refusal", "outcome", "health", "kill"]
    run: str
    seq: int
    v: int


_BATCH_DECODER = msgspec.json.Decoder(list[BatchLeaf])
_DECLARED_ORDER = msgspec.json.Encoder()
"""encodes the batch structs field by field as declared: canonical order, no sorting"""


def leaf_heads(batch: Sequence[bytes]) -> list[Head | None]:
    """The head of every leaf in ``batch`` that is, beyond doubt, valid and canonical; ``None``
    for the others, which never means "invalid", only "ask :func:`parse_leaf`".

    A head here is what :func:`parse_leaf_exact` would accept, with the same values
    (``tests/ledger/test_leaf_fast_path.py``).
    """
    return [None if leaf is None else _head(leaf) for leaf in batch_leaves(batch)]


def _head(leaf: BatchLeaf) -> Head:
    kind = leaf.kind
    ref: Any = None
    if kind == "intent":
        ref = leaf.data.item
    elif kind == "outcome":
        ref = leaf.data.intent
    return leaf.run, leaf.seq, kind, None if ref is UNSET else ref


def batch_leaves(batch: Sequence[bytes]) -> list[BatchLeaf | None]:
    """:func:`leaf_heads` without building the heads: the decoded leaf where it takes the batch
    path (verify_log reads its fields in place), else ``None``."""
    leaves = _batch_leaves(batch)
    if leaves is not None:
        return leaves
    if len(batch) == 1:
        return [None]
    half = len(batch) // 2
    return batch_leaves(batch[:half]) + batch_leaves(batch[half:])


def as_batch_leaf(leaf: Leaf) -> BatchLeaf:
    """A leaf parse_leaf decided, in the shape :func:`batch_leaves` gives (its ``item`` and
    ``intent`` as the leaf has them, UNSET where absent; nothing else of ``data``)."""
    return BatchLeaf(
        at=leaf.at,
        data=_Data(item=leaf.data.get("item", UNSET), intent=leaf.data.get("intent", UNSET)),
        kind=leaf.kind,  # type: ignore[arg-type]  # parse_leaf checked it is a leaf kind
        run=leaf.run,
        seq=leaf.seq,
        v=1,
    )


def _batch_leaves(batch: Sequence[bytes]) -> list[BatchLeaf | None] | None:
    """Every leaf, decoded, when the whole batch takes the batch path, else ``None``."""
    text = b"[" + b",".join(batch) + b"]"
    # ASCII only: beyond the BMP, key order differs between RFC 8785 (UTF-16) and the encoder
    # (code points), and the instants' check counts on ASCII digits.
    if not text.isascii():
        return None
    try:
        docs: list[BatchLeaf] = _BATCH_DECODER.decode(text)
    except (msgspec.MsgspecError, ValueError):
        return None
    # Each leaf must be the canonical encoding of the struct decoded at its place: that proves
    # it canonical on its own, and the join's boundaries the elements' (``{..},{..`` + ``..}``
    # would decode to as many elements, spelled alike, with other boundaries).
    if list(map(_DECLARED_ORDER.encode, docs)) != list(batch):
        return None
    if not _all_instants([doc.at for doc in docs]):
        return None
    return cast("list[BatchLeaf | None]", docs)


_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")


@functools.lru_cache(maxsize=8)
def _instants_shape(count: int) -> str:
    return "\n".join(["0000-00-00T00:00:00.000000000Z"] * count)


def _all_instants(texts: list[str]) -> bool:
    """Whether :func:`parse_instant` accepts every one of ``texts``, in a few C calls: the
    shape of all at once (ASCII digits in their places; the newlines keep each one 30 long),
    then each distinct second once."""
    if "\n".join(texts).translate(_DIGITS_AS_ZERO) != _instants_shape(len(texts)):
        return False
    return all(map(_is_second, {text[:19] for text in texts}))


def _is_instant(text: str) -> bool:
    """Whether :func:`parse_instant` accepts ``text``; the date and time up to the second are
    checked once per distinct second (leaves come in bursts within one second)."""
    return _INSTANT_SHAPE(text) is not None and _is_second(text[:19])


_INSTANT_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z"
).fullmatch
"""ASCII digits only (``str.isdigit`` would take other scripts' digits)"""


@functools.lru_cache(maxsize=1024)
def _is_second(prefix: str) -> bool:
    try:
        parse_instant(prefix + ".000000000Z")
    except ValueError:
        return False
    return True


def parse_leaf_exact(raw: bytes, source: str = "leaf") -> Leaf:
    """:func:`parse_leaf` without the fast path: stdlib JSON, and the exact RFC 8785 encoder
    where numbers or keys beyond the BMP need it. The reference the fast path is tested against."""
    floats = False
    try:
        # No duplicate-key hook on this path: a leaf with a duplicate key cannot equal the
        # re-encoding of what it parses to, so the canonical check below refuses it anyway.
        try:
            doc = _DECODER.decode(raw.decode("utf-8"))
        except _FloatSeenError:
            floats = True
            # RFC 8785 numbers are doubles: read long integers as the doubles they denote.
            doc = json.loads(raw, parse_int=_int_or_double)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordFileError(source, "", f"not a JSON leaf: {exc}") from None
    if not isinstance(doc, dict):
        raise RecordFileError(source, "", "a leaf is a JSON object")
    for key, typ in (
        ("v", int),
        ("run", str),
        ("seq", int),
        ("kind", str),
        ("at", str),
        ("data", dict),
    ):
        if not isinstance(doc.get(key), typ):
            raise RecordFileError(source, key, f"missing or not a {typ.__name__}")
    if set(doc) != {"v", "run", "seq", "kind", "at", "data"}:
        raise RecordFileError(
            source,
            "",
            f"unexpected keys {sorted(set(doc) - {'v', 'run', 'seq', 'kind', 'at', 'data'})}",
        )
    if doc["kind"] not in LEAF_KINDS:
        raise RecordFileError(source, "kind", f"unknown leaf kind {doc['kind']!r}")
    try:
        if floats:
            # Floats are formatted as ES6 numbers: only the exact encoder gives their bytes.
            canonical: bytes = rfc8785.dumps(doc)
        elif raw.isascii() or max(raw) < 0xF0:
            canonical = json.dumps(
                doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
        else:
            # Beyond the BMP, RFC 8785 orders keys by UTF-16 code units, not code points.
            canonical = _ENCODER_UNSORTED.encode(_utf16_key_order(doc)).encode()
    except ValueError:
        # An integer RFC 8785 cannot represent, a lone surrogate: no canonical form exists.
        raise RecordFileError(source, "", "leaf has no canonical (RFC 8785) form") from None
    if canonical != raw:
        if _has_duplicate_keys(raw):
            raise RecordFileError(source, "", "duplicate keys in the leaf")
        raise RecordFileError(source, "", "leaf bytes are not in canonical (RFC 8785) form")
    try:
        parse_instant(doc["at"])
    except ValueError as exc:
        raise RecordFileError(source, "at", str(exc)) from None
    return Leaf(
        run=doc["run"], seq=doc["seq"], kind=doc["kind"], at=doc["at"], data=doc["data"], raw=raw
    )
