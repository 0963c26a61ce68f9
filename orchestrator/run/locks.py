"""Only one scheduler fires jobs: a PostgreSQL session advisory lock, or a lock file for SQLite.

Several ``rio serve`` processes may run for availability; the one holding the lock fires jobs,
the others wait and retry. ``rio serve --once`` fires nothing when another instance holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.context import Rio
from orchestrator.errors import StoreError

__all__ = ["SchedulerLock", "scheduler_lock"]

_LOG = logging.getLogger("orchestrator.run.scheduler")

# A fixed 63-bit key (a domain-separated hash, so never a run lease's key): every rio scheduler
# on one PostgreSQL database contends for this same lock.
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"rio scheduler").digest()[:8], "big") >> 1


class SchedulerLock(Protocol):
    """Held by the one scheduler that fires jobs."""

    @property
    def held(self) -> bool: ...

    def acquire(self) -> bool:
        """Try once, without blocking; True when this process now holds the lock."""
        ...

    def release(self) -> None: ...


class _FileLock:
    """An exclusive ``flock`` on a file in RIO_HOME (SQLite: one host, one scheduler)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        import fcntl

        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return True

    def release(self) -> None:
        import fcntl

        if self._file is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None


class _AdvisoryLock:
    """A PostgreSQL session-level advisory lock, held on a connection of its own."""

    def __init__(self, rio: Rio, key: int = _ADVISORY_KEY) -> None:
        self._rio = rio
        self._key = key
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self) -> bool:
        if self._conn is not None:
            return True
        try:
            conn = self._rio.db.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self._rio.db.safe_url}: {exc}") from exc
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar()
            )
            conn.commit()
        except SQLAlchemyError as exc:
            conn.invalidate()
            conn.close()
            raise StoreError(f"database {self._rio.db.safe_url}: advisory lock: {exc}") from exc
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            conn.commit()
        except SQLAlchemyError:
            _LOG.warning("advisory unlock failed; closing the connection releases it")
        finally:
            # A session lock lives as long as the session: never hand this one back to the pool.
            conn.invalidate()
            conn.close()


def scheduler_lock(rio: Rio) -> SchedulerLock:
    """The lock for this rio home: advisory lock on PostgreSQL, a lock file otherwise."""
    if rio.db.dialect == "postgresql":
        return _AdvisoryLock(rio)
    return _FileLock(rio.settings.home / "scheduler.lock")
