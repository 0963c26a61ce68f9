"""the HTTP API's login challenges (single-use) and session tokens (stored hashed)

Revision ID: 0005_api_sessions
Revises: 13b_recheck_feedback
Create Date: 2026-12-03 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import orchestrator.store.models

revision = "0005_api_sessions"
down_revision = "13b_recheck_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_challenges",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column(
            "issued_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "expires_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("used_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_auth_challenges")),
    )
    with op.batch_alter_table("auth_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_auth_challenges_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "api_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column(
            "issued_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "expires_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("ended_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_api_sessions_person_id_people")
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_api_sessions")),
    )
    with op.batch_alter_table("api_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_sessions_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_sessions_person_id"))
    op.drop_table("api_sessions")
    with op.batch_alter_table("auth_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_challenges_expires_at"))
    op.drop_table("auth_challenges")
