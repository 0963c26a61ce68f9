"""Revision 0002 gives findings stored before it a key (their id) and one sighting (their own)."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import create_engine, text

from orchestrator.store.db import alembic_config


def test_findings_stored_before_keys_existed_keep_their_id_as_key_and_one_sighting(
    db_url: str,
) -> None:
    engine = create_engine(db_url)
    cfg = alembic_config(db_url)
    try:
        with engine.begin() as conn:
            # Only the findings table matters here: the run it names need not exist.
            if conn.dialect.name == "sqlite":
                conn.execute(text("PRAGMA foreign_keys=OFF"))
            else:
                conn.execute(text("SET session_replication_role = replica"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
            conn.execute(
                text(
                    "INSERT INTO findings (id, run_id, leaf_seq, rule, title, severity, kind, "
                    "probe, target, ip, port, digest, remediation, refs, evidence) VALUES "
                    "('R-1/F7.0', 'R-1', 7, 'RIO-PORT-TELNET', 't', 'high', 'risk', 'port', "
                    "'cidr:127.0.10.0/27', '127.0.10.5', 23, :digest, 'r', '[]', NULL)"
                ),
                {"digest": "ab" * 32},
            )
            command.upgrade(cfg, "head")
            row = conn.execute(
                text("SELECT key, transport, scheme, server_name, path, sightings FROM findings")
            ).one()
    finally:
        engine.dispose()
    sightings = row.sightings if isinstance(row.sightings, list) else json.loads(row.sightings)
    assert (row.key, row.transport, row.scheme, row.server_name, row.path) == (
        "R-1/F7.0",
        "tcp",
        None,
        None,
        None,
    )
    assert sightings == [
        {"leaf_seq": 7, "target": "cidr:127.0.10.0/27", "server_name": None, "digest": "ab" * 32}
    ]
