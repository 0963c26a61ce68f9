"""Engine, sessions and schema upgrades (``rio init``).

One engine per process, made from the settings' URL. SQLite gets WAL and foreign keys; the schema
is created and upgraded only through Alembic migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.errors import StoreError

__all__ = ["Database", "alembic_config", "upgrade"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Database:
    """An engine and a session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        #: the SQLite file, if this is one (it is created only by `rio init`, never by a look)
        self.sqlite_file: Path | None = None
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if str(path) not in ("", ":memory:"):
                self.sqlite_file = path
        try:
            # A ping per checkout finds a server that dropped the connection; a SQLite file
            # has no server to drop it, and the ping was a query before every transaction.
            ping = not url.startswith("sqlite")
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=ping)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"database {self.safe_url}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return (
            self.engine.url.render_as_string(hide_password=True)
            if hasattr(self, "engine")
            else self.url.split("@")[-1]
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except SQLAlchemyError as exc:
                s.rollback()
                raise StoreError(
                    f"database {self.safe_url}: {exc.__class__.__name__}: {exc}"
                ) from exc
            except BaseException:
                s.rollback()
                raise

    def is_initialised(self) -> bool:
        if self.sqlite_file is not None and not self.sqlite_file.exists():
            return False  # connecting would create an empty file
        try:
            return inspect(self.engine).has_table("alembic_version")
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.safe_url}: {exc}") from exc

    def require_initialised(self) -> None:
        if not self.is_initialised():
            raise StoreError(f"database {self.safe_url} is not initialised: run `rio init` first")

    def dispose(self) -> None:
        self.engine.dispose()


def upgrade(db: Database) -> None:
    """Create or upgrade the schema to the newest migration."""
    cfg = alembic_config(db.url)
    try:
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"database {db.safe_url}: migration failed: {exc}") from exc
