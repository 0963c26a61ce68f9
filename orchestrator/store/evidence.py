"""Evidence at rest: the database-backed key store for per-run data keys, and master rotation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.store.crypto import FieldCipher, WrappedKey, create_master_key_file
from orchestrator.store.db import Database
from orchestrator.store.models import RunKeyRow

if TYPE_CHECKING:
    from orchestrator.context import Rio

__all__ = ["DbKeyStore", "cipher_for", "rotate_master"]


class DbKeyStore:
    """Wrapped data keys in the ``run_keys`` table.

    With a session, reads and writes join that transaction (so a run and its key are created
    together); without one, each call is its own transaction.
    """

    def __init__(self, db: Database, session: Session | None = None) -> None:
        self._db = db
        self._session = session

    def _get(self, s: Session, run_id: str) -> WrappedKey | None:
        row = s.get(RunKeyRow, run_id)
        return None if row is None else WrappedKey.from_bytes(bytes(row.wrapped))

    def get_wrapped(self, run_id: str) -> WrappedKey | None:
        if self._session is not None:
            return self._get(self._session, run_id)
        with self._db.session() as s:
            return self._get(s, run_id)

    def _put(self, s: Session, run_id: str, wrapped: WrappedKey) -> None:
        row = s.get(RunKeyRow, run_id)
        if row is None:
            s.add(
                RunKeyRow(
                    run_id=run_id, master_key_id=wrapped.master_key_id, wrapped=wrapped.to_bytes()
                )
            )
        else:
            row.master_key_id = wrapped.master_key_id
            row.wrapped = wrapped.to_bytes()
        s.flush()

    def put_wrapped(self, run_id: str, wrapped: WrappedKey) -> None:
        if self._session is not None:
            self._put(self._session, run_id, wrapped)
            return
        with self._db.session() as s:
            self._put(s, run_id, wrapped)

    def all_wrapped(self) -> Iterable[tuple[str, WrappedKey]]:
        def rows(s: Session) -> list[tuple[str, WrappedKey]]:
            return [
                (r.run_id, WrappedKey.from_bytes(bytes(r.wrapped)))
                for r in s.scalars(select(RunKeyRow).order_by(RunKeyRow.run_id))
            ]

        if self._session is not None:
            return rows(self._session)
        with self._db.session() as s:
            return rows(s)


def cipher_for(rio: Rio, session: Session | None = None) -> FieldCipher:
    return FieldCipher(rio.master_key, DbKeyStore(rio.db, session))


def rotate_master(rio: Rio, new_key_file: Path, *, session: Session | None = None) -> int:
    """Create a new master key file and re-wrap every data key under it, in one transaction:
    ``session``'s when given (the caller's unit of work), else one of its own."""
    new_master = create_master_key_file(new_key_file)
    if session is not None:
        return FieldCipher(rio.master_key, DbKeyStore(rio.db, session)).rotate_master(new_master)
    with rio.db.session() as s:
        return FieldCipher(rio.master_key, DbKeyStore(rio.db, s)).rotate_master(new_master)
