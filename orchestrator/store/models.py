"""SQLAlchemy models: registries, notices, runs, the probe log, findings, records.

Schema changes go through Alembic migrations (``orchestrator/store/migrations``); a test proves the
models and the migrations agree. The probe log tables (``ledger_leaves``, ``ledger_checkpoints``)
are append-only: triggers installed by the migration make the database itself refuse UPDATE and
DELETE on them, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AccessEntry",
    "ApiSessionRow",
    "AuthChallengeRow",
    "Base",
    "CheckpointRow",
    "EvidenceGrant",
    "FindingRow",
    "InspectedObjectRow",
    "KeyRow",
    "LeafRow",
    "NoticeRow",
    "PersonRow",
    "RecordRow",
    "RectificationRow",
    "RunKeyRow",
    "RunRow",
    "SignatureRow",
    "UTCDateTime",
    "VendorRow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no timezone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class VendorRow(Base):
    """An entrusted network security service institution (Art. 17)."""

    __tablename__ = "vendors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organisation: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PersonRow(Base):
    """An officer, technician, auditor or administrator."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    organisation: Mapped[str] = mapped_column(String(200))
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KeyRow(Base):
    """A person's Ed25519 public key; the key id is SHA-256 of its DER SubjectPublicKeyInfo."""

    __tablename__ = "keys"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    public_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InspectedObjectRow(Base):
    """An inspected entity (an internet service provider)."""

    __tablename__ = "objects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    services: Mapped[list[str]] = mapped_column(JSON)
    key_supervision: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NoticeRow(Base):
    """An announced inspection: immutable once stored."""

    __tablename__ = "notices"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    object_id: Mapped[str] = mapped_column(ForeignKey("objects.id"))
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"), nullable=True)
    scope_name: Mapped[str] = mapped_column(String(300))
    scope_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    scope_sha256: Mapped[str] = mapped_column(String(64))
    policy_name: Mapped[str] = mapped_column(String(300))
    policy_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    policy_sha256: Mapped[str] = mapped_column(String(64))
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    sources: Mapped[list[str]] = mapped_column(JSON)
    announced_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"), nullable=True)
    organ: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The announcing public security organ; only its officers count towards closure."""
    co_organs: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """Organs the notice names as co-inspecting; their officers count too."""


class RunRow(Base):
    """One execution of a notice's probe plan."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    notice_id: Mapped[str] = mapped_column(ForeignKey("notices.id"), index=True)
    technician_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    pause_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    recheck_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    planned: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    kill_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    killed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    kill_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    archive_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LeafRow(Base):
    """One probe-log leaf: canonical JSON bytes and its RFC 9162 leaf hash. Append-only."""

    __tablename__ = "ledger_leaves"
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class CheckpointRow(Base):
    """A signed checkpoint (C2SP tlog-checkpoint) over the first ``size`` leaves. Append-only."""

    __tablename__ = "ledger_checkpoints"
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunKeyRow(Base):
    """A run's evidence data key, wrapped by the master key."""

    __tablename__ = "run_keys"
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    master_key_id: Mapped[str] = mapped_column(String(32))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)


class FindingRow(Base):
    """A finding of a run, linked to the outcome leaf that first produced it.

    One row per stable key and run: when the same fault is seen again in the run (the same
    service reached as ``ip:`` and as ``host:``, an open resolver asked about several domains),
    the later outcome is appended to ``sightings`` instead of making a second finding.
    ``sightings`` lists every outcome that saw it, the first included:
    ``[{"leaf_seq", "target", "server_name", "digest"}]``.
    """

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("run_id", "key"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    leaf_seq: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(10))
    probe: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(300))
    ip: Mapped[str] = mapped_column(String(45))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transport: Mapped[str] = mapped_column(String(8))
    scheme: Mapped[str | None] = mapped_column(String(16), nullable=True)
    server_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    digest: Mapped[str] = mapped_column(String(64))
    remediation: Mapped[str] = mapped_column(Text)
    refs: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    sightings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    evidence: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class RecordRow(Base):
    """A version of a run's remote inspection record (canonical JSON bytes)."""

    __tablename__ = "records"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignatureRow(Base):
    """A signature over one record version (a DSSE signature; the key id names the key)."""

    __tablename__ = "signatures"
    __table_args__ = (UniqueConstraint("run_id", "version", "key_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    key_id: Mapped[str] = mapped_column(String(64))
    sig: Mapped[bytes] = mapped_column(LargeBinary)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RectificationRow(Base):
    """A rectification order (Art. 19) and its re-check."""

    __tablename__ = "rectifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    findings: Mapped[list[str]] = mapped_column(JSON)
    ordered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[date] = mapped_column(Date)
    applied_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    recheck_due: Mapped[date] = mapped_column(Date)
    recheck_run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    feedback_due: Mapped[date | None] = mapped_column(Date, nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """When the re-check result was fed back to the object (Art. 19)."""
    feedback_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    feedback_document: Mapped[str | None] = mapped_column(String(300), nullable=True)
    feedback_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(20))
    working_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The deadline as ordered in working days (None: a date was given)."""
    provisional: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A date of the order was counted in a year without a State Council notice."""


class EvidenceGrant(Base):
    """An officer's grant letting an auditor read a run's evidence."""

    __tablename__ = "evidence_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    auditor_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    granted_by: Mapped[int] = mapped_column(ForeignKey("people.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccessEntry(Base):
    """Append-only access log: who read what, when and why."""

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_run", "run_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    person: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    subject: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    allowed: Mapped[bool] = mapped_column(Boolean)


class AuthChallengeRow(Base):
    """A login challenge the HTTP API issued: single-use, short-lived (``access.sessions``)."""

    __tablename__ = "auth_challenges"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApiSessionRow(Base):
    """A short-lived API session token, stored as its SHA-256 only (never the token)."""

    __tablename__ = "api_sessions"
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
