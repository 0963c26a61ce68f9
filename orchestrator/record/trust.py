"""The trusted-keys file an auditor verifies archives against (``rio keys export-trust``).

An archive carries its own ``keys.json``; trusting it would let anyone who rebuilds an archive
with a key of their own pass the audit. The trusted-keys file is the auditor's anchor, obtained
from the inspecting organ by a channel the auditor trusts: the orchestrator's public key (it
signs checkpoints and the archive manifest) and every officer's and technician's public keys
with their organisation, vendor and life spans. It has the shape of ``keys.json`` plus a
``format`` field, so one reader serves both (:func:`orchestrator.audit.parse_trusted_keys`).
It holds public keys only.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from orchestrator.errors import StoreError
from orchestrator.intake.registry import Role
from orchestrator.record.archive import orchestrator_entry, people_entries
from orchestrator.record.canonical import canonical_bytes, ns_timestamp
from orchestrator.store.db import Database
from orchestrator.store.files import write_atomic
from orchestrator.store.models import PersonRow

__all__ = ["TRUST_FORMAT", "export_trust", "trust_document"]

TRUST_FORMAT = "rio.trust/v1"


def trust_document(db: Database, orchestrator_key: Ed25519PublicKey, *, now: datetime) -> bytes:
    """The trusted-keys file of a home: its orchestrator key and every signer's keys.

    Args:
        db: The database (its people registry).
        orchestrator_key: The home's orchestrator public key.
        now: The export time written into the file.

    Returns:
        Canonical JSON bytes.
    """
    signing = [Role.OFFICER.value, Role.TECHNICIAN.value]
    with db.session() as s:
        names = list(s.scalars(select(PersonRow.name).where(PersonRow.role.in_(signing))))
        people = people_entries(s, names)
    doc = {
        "format": TRUST_FORMAT,
        "exported_at": ns_timestamp(now),
        "orchestrator": orchestrator_entry(orchestrator_key),
        "people": people,
    }
    return canonical_bytes(doc, source="trusted keys")


def export_trust(
    db: Database, orchestrator_key: Ed25519PublicKey, out: Path, *, now: datetime
) -> int:
    """Write :func:`trust_document` to ``out`` atomically; returns the number of people in it.

    Raises:
        StoreError: The file cannot be written.
    """
    data = trust_document(db, orchestrator_key, now=now)
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the trusted-keys file: {exc.strerror}") from exc
    people = json.loads(data)["people"]
    assert isinstance(people, list)
    return len(people)
