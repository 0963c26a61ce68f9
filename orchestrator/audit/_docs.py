"""The archive's small documents, read strictly into frozen values.

Every reader raises :class:`~orchestrator.errors.RecordFileError` naming the member and the
field; the verifier turns that into a failed check instead of a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from orchestrator.audit._archive import CHECKPOINTS, KEYS, NOTICE
from orchestrator.errors import KeyFileError, RecordFileError
from orchestrator.intake.keys import key_id, load_public_key
from orchestrator.record.canonical import json_kind, loads_strict, parse_ns_timestamp

__all__ = [
    "CheckpointEntry",
    "KeyEntry",
    "KeysDoc",
    "NoticeDoc",
    "PersonEntry",
    "instant_ns",
    "parse_checkpoints",
    "parse_keys",
    "parse_notice",
    "parse_time",
    "parse_trusted_keys",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: Any, source: str, field: str) -> datetime:
    """Read an instant written either as a rio timestamp (nanoseconds, ``Z``) or ISO 8601.

    Raises:
        RecordFileError: Not a string, not an instant, or without a timezone.
    """
    if not isinstance(value, str):
        raise RecordFileError(source, field, f"expected a timestamp, got {json_kind(value)}")
    if len(value) == 30 and value.endswith("Z"):
        ns = parse_ns_timestamp(value, source=source, field=field)
        return _EPOCH + timedelta(microseconds=ns // 1000)
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RecordFileError(source, field, f"{value!r} is not an ISO 8601 instant") from exc
    if when.tzinfo is None or when.utcoffset() is None:
        raise RecordFileError(source, field, f"{value!r} has no timezone")
    return when.astimezone(UTC)


def instant_ns(when: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (microsecond precision)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _optional_time(fields: Mapping[str, Any], name: str, source: str, path: str) -> datetime | None:
    value = fields.get(name)
    return None if value is None else parse_time(value, source, f"{path}.{name}")


def _obj(value: Any, source: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordFileError(source, path, f"expected an object, got {json_kind(value)}")
    return value


def _str(fields: Mapping[str, Any], name: str, source: str, path: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        where = f"{path}.{name}" if path else name
        raise RecordFileError(source, where, f"expected a non-empty string, got {json_kind(value)}")
    return value


def _opt_str(fields: Mapping[str, Any], name: str, source: str, path: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    return _str(fields, name, source, path)


def _pem_key(pem: Any, source: str, field: str) -> Ed25519PublicKey:
    if not isinstance(pem, str):
        raise RecordFileError(source, field, f"expected PEM text, got {json_kind(pem)}")
    try:
        return load_public_key(pem.encode("utf-8"))
    except KeyFileError as exc:
        raise RecordFileError(source, field, str(exc)) from exc


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyEntry:
    """One public key of a person, with its life span."""

    key_id: str
    public_key: Ed25519PublicKey
    created_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def valid_at(self, when: datetime) -> bool:
        """Tell whether the key could sign at ``when``: created, not expired, not revoked."""
        if self.created_at is not None and when < self.created_at:
            return False
        if self.expires_at is not None and when >= self.expires_at:
            return False
        return self.revoked_at is None or when < self.revoked_at


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonEntry:
    """A person named in ``keys.json``."""

    name: str
    role: str
    organisation: str
    vendor: str | None
    revoked_at: datetime | None
    keys: tuple[KeyEntry, ...]

    def active_at(self, when: datetime) -> bool:
        """Tell whether the person had not been revoked at ``when``."""
        return self.revoked_at is None or when < self.revoked_at


@dataclass(frozen=True, kw_only=True, slots=True)
class KeysDoc:
    """``keys.json``: the orchestrator's key and the people's keys."""

    orchestrator_name: str
    orchestrator_key: Ed25519PublicKey
    orchestrator_key_id: str
    people: tuple[PersonEntry, ...]

    def key(self, kid: str) -> tuple[PersonEntry, KeyEntry] | None:
        """Find the person and key with this key id."""
        for person in self.people:
            for entry in person.keys:
                if entry.key_id == kid:
                    return person, entry
        return None


def parse_keys(data: bytes, source: str = KEYS) -> KeysDoc:
    """Read ``keys.json``; every key id must match its public key.

    Raises:
        RecordFileError: Malformed, or a key id that is not its key's id.
    """
    doc = _obj(loads_strict(data, source=source), source, "")
    orch = _obj(doc.get("orchestrator"), source, "orchestrator")
    name = _str(orch, "key_name", source, "orchestrator")
    key = _pem_key(orch.get("public_pem"), source, "orchestrator.public_pem")
    kid = _str(orch, "key_id", source, "orchestrator")
    if kid != key_id(key):
        raise RecordFileError(source, "orchestrator.key_id", "is not the id of public_pem")
    people_raw = doc.get("people")
    if not isinstance(people_raw, list):
        raise RecordFileError(source, "people", f"expected an array, got {json_kind(people_raw)}")
    people: list[PersonEntry] = []
    for i, item in enumerate(people_raw):
        path = f"people[{i}]"
        fields = _obj(item, source, path)
        keys_raw = fields.get("keys")
        if not isinstance(keys_raw, list):
            raise RecordFileError(
                source, f"{path}.keys", f"expected an array, got {json_kind(keys_raw)}"
            )
        keys: list[KeyEntry] = []
        for j, raw_key in enumerate(keys_raw):
            kpath = f"{path}.keys[{j}]"
            kfields = _obj(raw_key, source, kpath)
            public = _pem_key(kfields.get("public_pem"), source, f"{kpath}.public_pem")
            entry_id = _str(kfields, "key_id", source, kpath)
            if entry_id != key_id(public):
                raise RecordFileError(source, f"{kpath}.key_id", "is not the id of public_pem")
            keys.append(
                KeyEntry(
                    key_id=entry_id,
                    public_key=public,
                    created_at=_optional_time(kfields, "created_at", source, kpath),
                    expires_at=_optional_time(kfields, "expires_at", source, kpath),
                    revoked_at=_optional_time(kfields, "revoked_at", source, kpath),
                )
            )
        organisation = fields.get("organisation") or ""
        if not isinstance(organisation, str):
            raise RecordFileError(source, f"{path}.organisation", "expected a string")
        people.append(
            PersonEntry(
                name=_str(fields, "name", source, path),
                role=_str(fields, "role", source, path),
                organisation=organisation,
                vendor=_opt_str(fields, "vendor", source, path),
                revoked_at=_optional_time(fields, "revoked_at", source, path),
                keys=tuple(keys),
            )
        )
    return KeysDoc(
        orchestrator_name=name, orchestrator_key=key, orchestrator_key_id=kid, people=tuple(people)
    )


TRUST_FORMAT = "rio.trust/v1"


def parse_trusted_keys(data: bytes, source: str) -> KeysDoc:
    """Read a trusted-keys file (``rio keys export-trust``): ``keys.json``'s shape plus format.

    Raises:
        RecordFileError: Malformed, of another format, or a key id that is not its key's id.
    """
    doc = _obj(loads_strict(data, source=source), source, "")
    if doc.get("format") != TRUST_FORMAT:
        raise RecordFileError(
            source,
            "format",
            f"{doc.get('format')!r}: expected {TRUST_FORMAT!r} (a trusted-keys file)",
        )
    return parse_keys(data, source)


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeDoc:
    """``notice.json``."""

    id: str
    object: str
    vendor: str | None
    announced_at: datetime
    scope_name: str
    scope_sha256: str
    policy_name: str
    policy_sha256: str
    sources: tuple[str, ...]
    windows: tuple[tuple[datetime, datetime], ...]
    organ: str | None = None
    co_inspecting: tuple[str, ...] = ()

    @property
    def organs(self) -> frozenset[str]:
        """The organs whose officers count towards closure."""
        return frozenset(o for o in (self.organ, *self.co_inspecting) if o)


def parse_notice(data: bytes) -> NoticeDoc:
    """Read ``notice.json``.

    Raises:
        RecordFileError: Malformed.
    """
    doc = _obj(loads_strict(data, source=NOTICE), NOTICE, "")
    scope = _obj(doc.get("scope"), NOTICE, "scope")
    policy = _obj(doc.get("policy"), NOTICE, "policy")
    sources = doc.get("sources")
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise RecordFileError(NOTICE, "sources", "expected an array of addresses")
    windows_raw = doc.get("windows")
    if not isinstance(windows_raw, list):
        raise RecordFileError(NOTICE, "windows", f"expected an array, got {json_kind(windows_raw)}")
    windows = []
    for i, w in enumerate(windows_raw):
        fields = _obj(w, NOTICE, f"windows[{i}]")
        windows.append(
            (
                parse_time(fields.get("start"), NOTICE, f"windows[{i}].start"),
                parse_time(fields.get("end"), NOTICE, f"windows[{i}].end"),
            )
        )
    co_raw = doc.get("co_inspecting", [])
    if not isinstance(co_raw, list) or not all(isinstance(o, str) and o for o in co_raw):
        raise RecordFileError(NOTICE, "co_inspecting", "expected an array of organ names")
    return NoticeDoc(
        organ=_opt_str(doc, "organ", NOTICE, ""),
        co_inspecting=tuple(co_raw),
        id=_str(doc, "id", NOTICE, ""),
        object=_str(doc, "object", NOTICE, ""),
        vendor=_opt_str(doc, "vendor", NOTICE, ""),
        announced_at=parse_time(doc.get("announced_at"), NOTICE, "announced_at"),
        scope_name=_str(scope, "name", NOTICE, "scope"),
        scope_sha256=_str(scope, "sha256", NOTICE, "scope"),
        policy_name=_str(policy, "name", NOTICE, "policy"),
        policy_sha256=_str(policy, "sha256", NOTICE, "policy"),
        sources=tuple(sources),
        windows=tuple(windows),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointEntry:
    """One entry of ``ledger/checkpoints.json``: the stated size and the signed note."""

    index: int
    size: int
    note: str


def parse_checkpoints(data: bytes) -> tuple[CheckpointEntry, ...]:
    """Read ``ledger/checkpoints.json`` (notes are parsed and verified by the checks).

    Raises:
        RecordFileError: Malformed.
    """
    doc = loads_strict(data, source=CHECKPOINTS)
    if not isinstance(doc, list):
        raise RecordFileError(CHECKPOINTS, "", f"expected an array, got {json_kind(doc)}")
    out: list[CheckpointEntry] = []
    for i, item in enumerate(doc):
        fields = _obj(item, CHECKPOINTS, f"[{i}]")
        size = fields.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RecordFileError(CHECKPOINTS, f"[{i}].size", "expected a leaf count")
        note = fields.get("note")
        if not isinstance(note, str):
            raise RecordFileError(
                CHECKPOINTS, f"[{i}].note", f"expected text, got {json_kind(note)}"
            )
        out.append(CheckpointEntry(index=i, size=size, note=note))
    return tuple(out)
