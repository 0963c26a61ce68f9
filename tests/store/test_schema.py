"""rio init gives the same schema on SQLite and PostgreSQL, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from orchestrator.errors import StoreError
from orchestrator.store.db import Database, upgrade
from orchestrator.store.migrations._filters import include_object
from orchestrator.store.models import Base


def _schema(db: Database) -> dict[str, set[str]]:
    insp = inspect(db.engine)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}


def test_migrations_agree_with_models(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db)
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": False}
        )
        diff = compare_metadata(ctx, Base.metadata)
    db.dispose()
    assert diff == []


def test_init_is_idempotent_and_creates_every_model_table(db_url: str) -> None:
    db = Database(db_url)
    assert not db.is_initialised()
    upgrade(db)
    upgrade(db)
    schema = _schema(db)
    db.dispose()
    assert set(Base.metadata.tables) <= set(schema)
    for name, table in Base.metadata.tables.items():
        assert {c.name for c in table.columns} == schema[name]


def test_ledger_tables_refuse_update_and_delete(db_url: str) -> None:
    import pytest

    db = Database(db_url)
    upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_leaves (run_id, seq, kind, body, leaf_hash) VALUES ('r', 0, 'state', :b, :h)"
            ),
            {"b": b"{}", "h": b"\x00" * 32},
        )
    for statement in ("UPDATE ledger_leaves SET kind = 'x'", "DELETE FROM ledger_leaves"):
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT kind FROM ledger_leaves")).scalar_one() == "state"
    db.dispose()


def test_same_schema_on_sqlite_and_postgresql(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    lite = Database(f"sqlite:///{tmp_path / 'ref.db'}")
    upgrade(lite)
    other = Database(db_url)
    upgrade(other)
    assert _schema(lite) == _schema(other)
    lite.dispose()
    other.dispose()


def test_uninitialised_database_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreError, match="not initialised: run `rio init`"):
        db.require_initialised()
