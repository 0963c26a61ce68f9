"""A reference builder of rio archives, written from docs/archive-format.md alone, for tests.

It generates its own keys (deterministically from a seed), writes every member the format lists,
in order, as a deterministic ustar file, and signs the manifest, the checkpoints and the record.
The lower-level pieces (:func:`leaf_lines`, :func:`checkpoint_notes`, :func:`write_archive`) let
the tamper tests forge archives the way an attacker with or without keys would.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.intake.keys import key_id, public_pem
from orchestrator.ledger.checkpoint import Checkpoint, run_origin, sign_checkpoint
from orchestrator.ledger.leaves import make_leaf
from orchestrator.ledger.merkle import root_from_leaves
from orchestrator.record.canonical import canonical_bytes, ns_timestamp
from orchestrator.record.dsse import PAYLOAD_TYPE, Envelope, sign_envelope

MANIFEST_TYPE = "application/vnd.rio.archive-manifest+json;version=1"
KEY_NAME = "rio-orchestrator"
RUN = "R-20260302-test"
VENDOR = "acme-sec"

SCOPE_YAML = b"""format: rio.scope/v1
object:
  id: demo-isp
  name: Demo Loopback ISP (lab)
  services: [access, idc]
contact:
  name: Demo NOC
targets:
  - cidr: 127.0.10.0/27
  - host: www.demo.test
excludes:
  - ip: 127.0.10.13
  - host: admin.demo.test
windows:
  - start: 2026-03-02T08:00:00
    end: 2026-03-02T20:00:00
    timezone: Asia/Shanghai
sources: [127.0.0.1]
"""

POLICY_YAML = b"""format: rio.policy/v1
name: test
timezone: Asia/Shanghai
min_notice_lead: 1h
windows:
  - days: [mon, tue, wed, thu, fri, sat, sun]
    start: "00:00"
    end: "24:00"
rates:
  per_ip: 4
  per_network: 20
  per_notice: 50
  global: 100
concurrency: 8
probe_timeout: 10s
max_disruption: light
probes:
  port:
    ports: [80, 443]
  http:
    ports: [80]
  tls:
    ports: [443]
signoff:
  officers: 2
  technicians: 1
"""

ANNOUNCED_AT = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
WINDOW_START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai
WINDOW_END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

LeafSpec = tuple[str, datetime, dict[str, Any]]


def _key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


@dataclass(frozen=True)
class Keys:
    """The orchestrator's key and the people's keys (name -> key)."""

    orchestrator: Ed25519PrivateKey = field(default_factory=lambda: _key("orchestrator"))
    officers: dict[str, Ed25519PrivateKey] = field(
        default_factory=lambda: {"officer-li": _key("li"), "officer-wang": _key("wang")}
    )
    technician: tuple[str, Ed25519PrivateKey] = field(
        default_factory=lambda: ("tech-zhao", _key("zhao"))
    )


def intent(i: int, at: datetime, ip: str, *, probe: str = "port", cost: int = 1) -> dict[str, Any]:
    """The data of an intent leaf as the gate writes it."""
    return {
        "item": i,
        "probe": probe,
        "target": "cidr:127.0.10.0/27",
        "ip": ip,
        "port": None if probe == "port" else 80,
        "ports": [80, 443] if probe == "port" else [],
        "server_name": None,
        "cost": cost,
        "deadline": (at + timedelta(seconds=10)).isoformat(),
        "max_rate": 4,
        "resolution": None,
    }


def outcome(seq: int, result: str = "ok") -> dict[str, Any]:
    """The data of an outcome leaf."""
    return {
        "intent": seq,
        "outcome": result,
        "elapsed_us": 10000,
        "connections": 2,
        "evidence_digest": None,
        "findings": [],
    }


def default_leaves(
    intents: int = 24, *, step: float = 0.3, start: datetime | None = None
) -> list[LeafSpec]:
    """A clean run: running, ``intents`` port probes over 12 addresses each with its outcome,
    completed. Every intent is followed by its outcome."""
    t = start or WINDOW_START + timedelta(hours=1)
    out: list[LeafSpec] = [("state", t, {"state": "running", "reason": None})]
    for i in range(intents):
        at = t + timedelta(seconds=step * (i + 1))
        host = 1 + i % 12
        host = 14 if host == 13 else host  # .13 is excluded
        out.append(("intent", at, intent(i, at, f"127.0.10.{host}")))
        out.append(("outcome", at + timedelta(milliseconds=5), outcome(len(out) - 1)))
    out.append(("refusal", t + timedelta(seconds=step * (intents + 1)), _refusal(t)))
    out.append(
        (
            "state",
            t + timedelta(seconds=step * (intents + 2)),
            {"state": "completed", "reason": None},
        )
    )
    return out


def _refusal(at: datetime) -> dict[str, Any]:
    return {
        "request": {
            "item": 999,
            "probe": "port",
            "target": "ip:127.0.10.13",
            "ip": "127.0.10.13",
            "host": None,
            "server_name": None,
            "port": None,
            "ports": [80],
            "cost": 1,
        },
        "check": "scope",
        "reason": "excluded",
        "sentence": "127.0.10.13 is excluded by the scope.",
        "at": at.isoformat(),
        "resolution": None,
    }


def leaf_lines(leaves: Sequence[LeafSpec], run: str = RUN) -> list[bytes]:
    """Canonical leaf bytes, numbered in order."""
    return [make_leaf(run, seq, kind, at, data) for seq, (kind, at, data) in enumerate(leaves)]


def checkpoint_notes(
    lines: Sequence[bytes], sizes: Sequence[int], key: Ed25519PrivateKey, run: str = RUN
) -> list[dict[str, Any]]:
    """Signed checkpoints at each size (ascending)."""
    out = []
    for size in sizes:
        _, root = root_from_leaves(lines[:size])
        cp = Checkpoint(origin=run_origin(run), size=size, root=root)
        out.append({"size": size, "note": sign_checkpoint(cp, key, KEY_NAME)})
    return out


def _cb(obj: Any) -> bytes:
    return canonical_bytes(obj)


def keys_json(keys: Keys) -> bytes:
    """``keys.json`` for the officers and the technician."""
    created = ns_timestamp(datetime(2025, 1, 1, tzinfo=UTC))

    def person(name: str, role: str, vendor: str | None, k: Ed25519PrivateKey) -> dict[str, Any]:
        return {
            "name": name,
            "role": role,
            "organisation": vendor or "PSB",
            "vendor": vendor,
            "revoked_at": None,
            "keys": [
                {
                    "key_id": key_id(k.public_key()),
                    "public_pem": public_pem(k),
                    "created_at": created,
                    "expires_at": None,
                    "revoked_at": None,
                }
            ],
        }

    people = [person(n, "officer", None, k) for n, k in keys.officers.items()]
    people.append(person(keys.technician[0], "technician", VENDOR, keys.technician[1]))
    orch = keys.orchestrator
    return _cb(
        {
            "orchestrator": {
                "key_name": KEY_NAME,
                "public_pem": public_pem(orch),
                "key_id": key_id(orch.public_key()),
            },
            "people": people,
        }
    )


def trusted_keys_json(keys: Keys) -> bytes:
    """A trusted-keys file (``rio keys export-trust``) vouching for ``keys``."""
    doc = json.loads(keys_json(keys))
    doc["format"] = "rio.trust/v1"
    doc["exported_at"] = ns_timestamp(SIGNED_AT)
    return _cb(doc)


def orchestrator_key_id(keys: Keys | None = None) -> str:
    """The key id an auditor pins for archives built with ``keys``."""
    return key_id((keys or Keys()).orchestrator.public_key())


def notice_json(scope: bytes = SCOPE_YAML, policy: bytes = POLICY_YAML) -> bytes:
    """``notice.json`` for the documents."""
    return _cb(
        {
            "id": "N-20260301-abcdef",
            "object": "demo-isp",
            "vendor": VENDOR,
            "organ": "PSB",
            "co_inspecting": [],
            "announced_at": ANNOUNCED_AT.isoformat(),
            "scope": {"name": "scopes/demo.yaml", "sha256": hashlib.sha256(scope).hexdigest()},
            "policy": {"name": "policies/test.yaml", "sha256": hashlib.sha256(policy).hexdigest()},
            "sources": ["127.0.0.1"],
            "windows": [{"start": WINDOW_START.isoformat(), "end": WINDOW_END.isoformat()}],
        }
    )


def record_json(checkpoints: Sequence[dict[str, Any]], keys: Keys, run: str = RUN) -> bytes:
    """The record's canonical bytes, naming the final checkpoint."""
    final = checkpoints[-1]
    from orchestrator.ledger.checkpoint import parse_checkpoint_note

    cp, _ = parse_checkpoint_note(final["note"])
    return _cb(
        {
            "format": "rio.record/v1",
            "run": run,
            "version": 1,
            "notice": {
                "id": "N-20260301-abcdef",
                "announced_at": ANNOUNCED_AT.isoformat(),
                "scope_sha256": hashlib.sha256(SCOPE_YAML).hexdigest(),
                "policy_sha256": hashlib.sha256(POLICY_YAML).hexdigest(),
            },
            "object": {"id": "demo-isp"},
            "vendor": {"name": VENDOR},
            "technicians": [keys.technician[0]],
            "span": {"start": ns_timestamp(WINDOW_START), "end": ns_timestamp(WINDOW_END)},
            "counts": {},
            "ledger": {
                "origin": run_origin(run),
                "size": cp.size,
                "root": base64.b64encode(cp.root).decode("ascii"),
                "checkpoint": final["note"],
            },
            "findings": [],
            "conclusions": {},
            "rectifications": [],
            "signoff": {"officers": 2, "technicians": 1},
            "created_at": ns_timestamp(WINDOW_END + timedelta(hours=2)),
        }
    )


def sign_record(record: bytes, signers: Sequence[Ed25519PrivateKey]) -> bytes:
    """``record.dsse.json`` with one signature per signer."""
    envelope = Envelope(payload_type=PAYLOAD_TYPE, payload=record)
    for k in signers:
        envelope = sign_envelope(envelope, k)
    return envelope.dumps()


SIGNED_AT = WINDOW_END + timedelta(hours=3)
"""When the reference signers signed (after the record's creation)."""
CLOSED_AT = SIGNED_AT + timedelta(hours=1)
AUDITED_AT = CLOSED_AT + timedelta(days=30)
"""When the tests' auditor verifies (a fixed time: no verdict depends on the wall clock)."""
"""When the reference record was closed."""


def signature_times(
    signers: Sequence[Ed25519PrivateKey],
    when: datetime | None = None,
    *,
    closed_at: datetime | None = None,
) -> bytes:
    """``record.signatures.json``: when each signature (in envelope order) was made, and when
    the record was closed."""
    at = ns_timestamp(when or SIGNED_AT)
    return _cb(
        {
            "closed_at": ns_timestamp(closed_at or CLOSED_AT),
            "signatures": [{"keyid": key_id(k.public_key()), "signed_at": at} for k in signers],
        }
    )


def write_archive(
    path: Path, members: dict[str, bytes], orchestrator: Ed25519PrivateKey, run: str = RUN
) -> Path:
    """Write the tar: manifest and its signature first, then ``members`` in the given order."""
    files = [
        {"name": n, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
        for n, b in members.items()
    ]
    manifest = _cb({"format": "rio.archive/v1", "run": run, "files": files})
    sig = sign_envelope(
        Envelope(payload_type=MANIFEST_TYPE, payload=manifest), orchestrator
    ).dumps()
    ordered = {"manifest.json": manifest, "manifest.sig": sig, **members}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in ordered.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


def members_for(
    leaves: Sequence[LeafSpec],
    keys: Keys,
    *,
    checkpoint_every: int = 10,
    lines: Sequence[bytes] | None = None,
    signers: Sequence[Ed25519PrivateKey] | None = None,
) -> dict[str, bytes]:
    """Every member but the manifest and its signature, in format order."""
    lines = list(lines) if lines is not None else leaf_lines(leaves)
    n = len(lines)
    sizes = [*range(checkpoint_every, n, checkpoint_every), n]
    checkpoints = checkpoint_notes(lines, sizes, keys.orchestrator)
    record = record_json(checkpoints, keys)
    if signers is None:
        signers = [*keys.officers.values(), keys.technician[1]]
    return {
        "notice.json": notice_json(),
        "scope.yaml": SCOPE_YAML,
        "policy.yaml": POLICY_YAML,
        "keys.json": keys_json(keys),
        "ledger/leaves.jsonl": b"".join(line + b"\n" for line in lines),
        "ledger/checkpoints.json": _cb(checkpoints),
        "findings.json": _cb([]),
        "record.json": record,
        "record.dsse.json": sign_record(record, signers),
        "record.signatures.json": signature_times(signers),
        "rectification.json": _cb([]),
    }


def build_archive(
    path: Path,
    leaves: Sequence[LeafSpec] | None = None,
    *,
    keys: Keys | None = None,
    checkpoint_every: int = 10,
) -> Path:
    """Build a valid archive (an insider with every key can build an invalid one too)."""
    keys = keys or Keys()
    members = members_for(
        leaves if leaves is not None else default_leaves(), keys, checkpoint_every=checkpoint_every
    )
    return write_archive(path, members, keys.orchestrator)


def read_members(path: Path) -> dict[str, bytes]:
    """Every member of an archive by name, in order."""
    out: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:") as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
    return out


def rewrite(src: Path, dst: Path, edits: dict[str, bytes]) -> Path:
    """Copy an archive replacing some members' bytes, the manifest left as it was (an outsider)."""
    members = read_members(src)
    members.update(edits)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    dst.write_bytes(buffer.getvalue())
    return dst


def json_load(data: bytes) -> Any:
    """Parse JSON bytes."""
    return json.loads(data)
