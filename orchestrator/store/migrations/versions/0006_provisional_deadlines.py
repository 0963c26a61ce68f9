"""rectification orders remember their working-day count and whether a date was provisional

Revision ID: 0006_provisional_deadlines
Revises: 0005_api_sessions
Create Date: 2026-12-04 01:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_provisional_deadlines"
down_revision = "0005_api_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("working_days", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("provisional", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.drop_column("provisional")
        batch_op.drop_column("working_days")
