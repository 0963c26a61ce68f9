"""notices record the announcing organ and the co-inspecting organs

Revision ID: 13a_notice_organ
Revises: 0002
Create Date: 2026-12-03 13:00:00

The Art. 18 closure rule counts only officers of the organ that announced the notice (or of an
organ the notice names as co-inspecting). Notices announced before this revision take the
organisation of their announcing officer, where one is known.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "13a_notice_organ"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organ", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("co_organs", sa.JSON(), nullable=True))
    op.execute(
        "UPDATE notices SET organ = (SELECT people.organisation FROM people "
        "WHERE people.id = notices.announced_by) WHERE announced_by IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_column("co_organs")
        batch_op.drop_column("organ")
