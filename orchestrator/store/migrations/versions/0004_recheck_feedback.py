"""rectification orders record the feedback of the re-check result (Art. 19)

Revision ID: 13b_recheck_feedback
Revises: 13a_notice_organ
Create Date: 2026-12-03 14:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import orchestrator.store.models

revision = "13b_recheck_feedback"
down_revision = "13a_notice_organ"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "feedback_at", orchestrator.store.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("feedback_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("feedback_document", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("feedback_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.drop_column("feedback_sha256")
        batch_op.drop_column("feedback_document")
        batch_op.drop_column("feedback_by")
        batch_op.drop_column("feedback_at")
