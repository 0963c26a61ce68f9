"""What every interface needs: settings, the database, and the orchestrator's own keys.

``rio init`` creates RIO_HOME, the database schema (through Alembic), the orchestrator's Ed25519
key (it signs ledger checkpoints) and the evidence master key (mode 0600). Every other command
opens an existing home and refuses, with a clear message, when ``rio init`` has not been run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from orchestrator.clock import Clock, SystemClock
from orchestrator.intake.keys import generate_keypair, key_id, load_private_key
from orchestrator.settings import Settings
from orchestrator.store.crypto import MasterKey, create_master_key_file, load_master_key
from orchestrator.store.db import Database, upgrade
from orchestrator.telemetry import Telemetry

__all__ = ["Rio", "init_home", "privacy_problems", "private_files"]


@dataclass
class Rio:
    """An opened rio home: settings, database, keys, the clock every service reads, and what
    this process measures (:class:`~orchestrator.telemetry.Telemetry`).

    Built by :func:`orchestrator.app.build_app` (the composition root).
    """

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    db: Database = field(init=False)
    telemetry: Telemetry = field(default_factory=Telemetry, init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.database_url)

    @cached_property
    def signing_key(self) -> Ed25519PrivateKey:
        """The orchestrator's checkpoint-signing key."""
        return load_private_key(self.settings.orchestrator_key_file)

    @cached_property
    def verify_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    @cached_property
    def signing_key_id(self) -> str:
        return key_id(self.verify_key)

    @cached_property
    def master_key(self) -> MasterKey:
        return load_master_key(
            file=self.settings.master_key_file, env_value=self.settings.master_key_env
        )

    def close(self) -> None:
        self.db.dispose()


def init_home(settings: Settings) -> list[str]:
    """Create or upgrade everything ``rio init`` owns; returns what was done, one line each."""
    done: list[str] = []
    # The home holds evidence ciphertext, key metadata and the access log: private to its
    # owner. The umask makes every file created here 0600 (SQLite gives its -wal and -shm
    # files the database file's mode), and an existing home is tightened.
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.home.chmod(0o700)
    old_umask = os.umask(0o077)
    rio = Rio(settings)
    try:
        if rio.db.sqlite_file is not None:
            rio.db.sqlite_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = not rio.db.is_initialised()
        upgrade(rio.db)
        done.append(f"database {rio.db.safe_url}: {'created' if fresh else 'up to date'}")
        key_file = settings.orchestrator_key_file
        if not key_file.exists():
            kid = generate_keypair(key_file, key_file.with_suffix(".pub"))
            done.append(f"orchestrator key {key_file} created (key id {kid[:16]}...)")
        else:
            done.append(
                f"orchestrator key {key_file} present (key id {rio.signing_key_id[:16]}...)"
            )
        if settings.master_key_env is None and not settings.master_key_file.exists():
            mk = create_master_key_file(settings.master_key_file)
            done.append(f"master key {settings.master_key_file} created (key id {mk.key_id})")
        else:
            done.append(f"master key present (key id {rio.master_key.key_id})")
        for path in private_files(settings):
            path.chmod(0o600)
    finally:
        os.umask(old_umask)
        rio.close()
    return done


def private_files(settings: Settings) -> list[Path]:
    """The files in RIO_HOME that must be readable by their owner only (those that exist)."""
    home = settings.home
    names = ("rio.db", "rio.db-wal", "rio.db-shm", "orchestrator.key", "master.key")
    return [home / name for name in names if (home / name).exists()]


def privacy_problems(settings: Settings) -> list[str]:
    """What makes RIO_HOME readable by others (``rio doctor``); empty when it is private."""
    problems = []
    home = settings.home
    if home.exists() and home.stat().st_mode & 0o077:
        problems.append(f"{home} is mode {home.stat().st_mode & 0o777:04o}, not 0700")
    for path in private_files(settings):
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            problems.append(f"{path} is mode {mode:04o}, not 0600")
    return problems
