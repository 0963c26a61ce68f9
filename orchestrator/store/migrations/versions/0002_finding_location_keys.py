"""findings: location, stable keys, sightings

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 13:10:00

Every finding names where it was made (transport, scheme, server name, path beside the target,
IP and port it had), carries a stable key (rule + object + endpoint + subject digest) that is
unique within its run, and lists the outcomes that saw it (``sightings``). Findings stored
before this revision keep their id as their key (they were never deduplicated) and get one
sighting: their own outcome leaf.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("transport", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("scheme", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("server_name", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("path", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("sightings", sa.JSON(), nullable=True))
    findings = sa.table(
        "findings",
        sa.column("id", sa.String),
        sa.column("leaf_seq", sa.Integer),
        sa.column("target", sa.String),
        sa.column("digest", sa.String),
        sa.column("key", sa.String),
        sa.column("transport", sa.String),
        sa.column("sightings", sa.JSON),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(findings.c.id, findings.c.leaf_seq, findings.c.target, findings.c.digest)
    ).all()
    for fid, seq, target, digest in rows:
        bind.execute(
            findings.update()
            .where(findings.c.id == fid)
            .values(
                key=fid,
                transport="tcp",
                sightings=[
                    {"leaf_seq": seq, "target": target, "server_name": None, "digest": digest}
                ],
            )
        )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.alter_column("key", existing_type=sa.String(length=100), nullable=False)
        batch_op.alter_column("transport", existing_type=sa.String(length=8), nullable=False)
        batch_op.alter_column("sightings", existing_type=sa.JSON(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_findings_run_id"), ["run_id", "key"])


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_findings_run_id"), type_="unique")
        batch_op.drop_column("sightings")
        batch_op.drop_column("path")
        batch_op.drop_column("server_name")
        batch_op.drop_column("scheme")
        batch_op.drop_column("transport")
        batch_op.drop_column("key")
