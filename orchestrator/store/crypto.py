"""Encryption at rest for confidential evidence (what an inspection learns stays confidential).

Envelope encryption with AES-256-GCM, in two layers:

- one **master key** per deployment (a 0600 key file, or ``RIO_MASTER_KEY``); it only wraps keys;
- one **data key** per run, stored wrapped by the master key in a :class:`KeyStore`; it encrypts
  that run's fields. Rotating the master re-wraps data keys; evidence is never re-encrypted.

An encrypted field is a self-describing blob::

    0x01 | len(key_ref) (2 bytes, big endian) | key_ref (UTF-8 run id) | nonce (12) | ciphertext+tag

Its associated data binds the blob to its place (version, key_ref, table, row, column), so a blob
copied to another row, column or table fails to decrypt, just like a tampered one. Error messages
name the key id, run, table, row and column, never plaintext or key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.errors import DecryptionError, InputError, KeyFileError

__all__ = [
    "FIELD_VERSION",
    "MASTER_KEY_ENV",
    "FieldCipher",
    "KeyStore",
    "MasterKey",
    "MemoryKeyStore",
    "WrappedKey",
    "blob_key_ref",
    "create_master_key_file",
    "decrypt_field",
    "encrypt_field",
    "generate_master_key",
    "load_master_key",
    "new_data_key",
    "rewrap",
    "unwrap_data_key",
    "wrap_data_key",
]

MASTER_KEY_ENV = "RIO_MASTER_KEY"
FIELD_VERSION = 0x01
_WRAP_VERSION = 0x01
_KEY_LEN = 32
_NONCE_LEN = 12
_TAG_LEN = 16
_KEY_ID_LEN = 16
_MAX_KEY_FILE = 4096  # a key file is ~45 bytes; refuse to slurp anything large
# Domain labels keep a wrapped key's associated data from ever equalling a field's.
_WRAP_LABEL = b"rio-data-key\x00"
_FIELD_LABEL = b"rio-field\x00"


def _key_id_of(key: bytes) -> str:
    return hashlib.sha256(b"rio-master-key-id:" + key).hexdigest()[:_KEY_ID_LEN]


def _is_key_id(value: str) -> bool:
    return len(value) == _KEY_ID_LEN and all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True, kw_only=True, slots=True)
class MasterKey:
    """The deployment's key-encryption key. Its repr shows the key id only."""

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != _KEY_LEN:
            raise InputError(f"master key: must be {_KEY_LEN} bytes, got {len(self.key)}")
        if self.key_id != _key_id_of(self.key):
            raise InputError(f"master key {self.key_id}: key id does not match the key")

    @classmethod
    def from_key(cls, key: bytes) -> MasterKey:
        """Build a master key from 32 raw bytes, deriving its key id."""
        if len(key) != _KEY_LEN:
            raise InputError(f"master key: must be {_KEY_LEN} bytes, got {len(key)}")
        return cls(key_id=_key_id_of(key), key=key)


def generate_master_key() -> MasterKey:
    """Return a fresh random master key (not written anywhere)."""
    return MasterKey.from_key(os.urandom(_KEY_LEN))


def create_master_key_file(path: Path) -> MasterKey:
    """Create a new master key file (one line of base64, mode 0600).

    Args:
        path: where to write; must not exist yet.

    Returns:
        The new master key.

    Raises:
        KeyFileError: the file exists (a master key is never overwritten) or cannot be written.
    """
    master = generate_master_key()
    line = base64.b64encode(master.key) + b"\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a master key") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # the umask may have narrowed the mode; make it exactly 0600
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)  # we created it with O_EXCL, so it is ours to remove
        raise KeyFileError(f"{path}: cannot write key file: {exc.strerror}") from exc
    os.close(fd)
    return master


def load_master_key(*, file: Path | None, env_value: str | None) -> MasterKey:
    """Load the master key: ``RIO_MASTER_KEY`` (base64) wins if set, else the key file.

    An empty ``env_value`` counts as unset (compose files often pass ``VAR=${VAR}``).

    Args:
        file: the key file, written by :func:`create_master_key_file`.
        env_value: the value of ``RIO_MASTER_KEY``, or None.

    Returns:
        The master key.

    Raises:
        KeyFileError: no source given, the file is missing, group/other-accessible, not a
            regular file, or either source is not base64 of exactly 32 bytes.
    """
    if env_value is not None and env_value.strip():
        return _parse_key_text(env_value, source=MASTER_KEY_ENV)
    if file is None:
        raise KeyFileError(f"master key: set {MASTER_KEY_ENV} or configure a key file")
    return _parse_key_text(_read_key_file(file), source=str(file))


def _read_key_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: master key file not found") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open master key file: {exc.strerror}") from exc
    try:
        # fstat the open descriptor, not the path, so the checked file is the file we read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: master key file is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: mode {mode:04o} lets group or others access the master key; "
                f"run: chmod 600 {path}"
            )
        raw = os.read(fd, _MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read master key file: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if len(raw) > _MAX_KEY_FILE:
        raise KeyFileError(f"{path}: too large for a master key file")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{path}: not base64 text") from exc


def _parse_key_text(text: str, *, source: str) -> MasterKey:
    # Messages here name the source and the length only: never echo the text (it is the key).
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFileError(f"{source}: master key is not valid base64") from exc
    if len(key) != _KEY_LEN:
        raise KeyFileError(f"{source}: master key must be {_KEY_LEN} bytes, got {len(key)}")
    return MasterKey.from_key(key)


# --- data keys ------------------------------------------------------------------------------


def _utf8(value: str, what: str) -> bytes:
    if not value:
        raise InputError(f"{what}: must not be empty")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what}: not encodable as UTF-8") from exc


def _lp(data: bytes) -> bytes:
    # Length prefixes make the encoding injective: ("ab", "c") never equals ("a", "bc").
    return len(data).to_bytes(4, "big") + data


def _check_data_key(data_key: bytes) -> None:
    if len(data_key) != _KEY_LEN:
        raise InputError(f"data key: must be {_KEY_LEN} bytes, got {len(data_key)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class WrappedKey:
    """A run's data key encrypted under a master key (safe to store beside the evidence)."""

    master_key_id: str
    nonce: bytes
    ciphertext: bytes

    def __post_init__(self) -> None:
        if not _is_key_id(self.master_key_id):
            raise DecryptionError("wrapped data key: master_key_id is not a key id")
        if len(self.nonce) != _NONCE_LEN:
            raise DecryptionError(f"wrapped data key: nonce must be {_NONCE_LEN} bytes")
        if len(self.ciphertext) != _KEY_LEN + _TAG_LEN:
            raise DecryptionError(
                f"wrapped data key: ciphertext must be {_KEY_LEN + _TAG_LEN} bytes"
            )

    def to_bytes(self) -> bytes:
        """Serialise as ``0x01 | len | master_key_id | nonce | ciphertext``."""
        kid = self.master_key_id.encode("ascii")
        return bytes([_WRAP_VERSION, len(kid)]) + kid + self.nonce + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes) -> WrappedKey:
        """Parse :meth:`to_bytes` output.

        Raises:
            DecryptionError: the bytes are not a wrapped key of a known version.
        """
        if len(data) < 2 or data[0] != _WRAP_VERSION:
            raise DecryptionError("wrapped data key: unknown version or truncated")
        end = 2 + data[1]
        if len(data) != end + _NONCE_LEN + _KEY_LEN + _TAG_LEN:
            raise DecryptionError("wrapped data key: wrong length")
        try:
            kid = data[2:end].decode("ascii")
        except UnicodeDecodeError as exc:
            raise DecryptionError("wrapped data key: master_key_id is not a key id") from exc
        return cls(
            master_key_id=kid,
            nonce=data[end : end + _NONCE_LEN],
            ciphertext=data[end + _NONCE_LEN :],
        )


def new_data_key() -> bytes:
    """Return a fresh random 32-byte data key (one per run)."""
    return os.urandom(_KEY_LEN)


def _wrap_aad(run_id: str, master_key_id: str) -> bytes:
    return (
        _WRAP_LABEL
        + bytes([_WRAP_VERSION])
        + _lp(_utf8(run_id, "run id"))
        + _lp(master_key_id.encode("ascii"))
    )


def wrap_data_key(master: MasterKey, run_id: str, data_key: bytes) -> WrappedKey:
    """Encrypt a run's data key under the master key, bound to the run id and master key id."""
    _check_data_key(data_key)
    nonce = os.urandom(_NONCE_LEN)
    ciphertext = AESGCM(master.key).encrypt(nonce, data_key, _wrap_aad(run_id, master.key_id))
    return WrappedKey(master_key_id=master.key_id, nonce=nonce, ciphertext=ciphertext)


def unwrap_data_key(master: MasterKey, run_id: str, wrapped: WrappedKey) -> bytes:
    """Decrypt a run's data key.

    Raises:
        DecryptionError: wrapped under another master key (key ids differ), or the tag fails
            (tampered, or wrapped for another run).
    """
    if wrapped.master_key_id != master.key_id:
        raise DecryptionError(
            f"data key for run {run_id}: wrong master key (key id {master.key_id}; "
            f"the data key is wrapped under {wrapped.master_key_id})"
        )
    aad = _wrap_aad(run_id, master.key_id)
    try:
        return AESGCM(master.key).decrypt(wrapped.nonce, wrapped.ciphertext, aad)
    except InvalidTag as exc:
        raise DecryptionError(
            f"data key for run {run_id}: tampered (authentication failed under master key "
            f"{master.key_id}; or it belongs to another run)"
        ) from exc


def rewrap(
    old_master: MasterKey, new_master: MasterKey, run_id: str, wrapped: WrappedKey
) -> WrappedKey:
    """Re-wrap a run's data key under a new master key (the evidence is not re-encrypted)."""
    return wrap_data_key(new_master, run_id, unwrap_data_key(old_master, run_id, wrapped))


# --- fields ---------------------------------------------------------------------------------


def _where(table: str, row: str, column: str) -> str:
    return f"field {table}.{column} of row {row}"


def _field_aad(key_ref: bytes, table: str, row: str, column: str) -> bytes:
    return (
        _FIELD_LABEL
        + bytes([FIELD_VERSION])
        + _lp(key_ref)
        + _lp(_utf8(table, "table"))
        + _lp(_utf8(row, "row"))
        + _lp(_utf8(column, "column"))
    )


def encrypt_field(
    data_key: bytes, key_ref: str, plaintext: bytes, *, table: str, row: str, column: str
) -> bytes:
    """Encrypt one field value for one place (table, row, column).

    Args:
        data_key: the data key of run ``key_ref``.
        key_ref: the run id whose data key this is; stored in the blob in the clear.
        plaintext: the value.
        table: table name; row: stable row id (known before the insert); column: column name.

    Returns:
        The self-describing blob (see the module docstring).
    """
    _check_data_key(data_key)
    ref = _utf8(key_ref, "key_ref")
    if len(ref) > 0xFFFF:
        raise InputError("key_ref: longer than 65535 bytes")
    nonce = os.urandom(_NONCE_LEN)
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, _field_aad(ref, table, row, column))
    return bytes([FIELD_VERSION]) + len(ref).to_bytes(2, "big") + ref + nonce + sealed


def _split_blob(blob: bytes, what: str) -> tuple[bytes, bytes, bytes]:
    if len(blob) < 3:
        raise DecryptionError(f"{what}: malformed encrypted blob (truncated)")
    if blob[0] != FIELD_VERSION:
        raise DecryptionError(f"{what}: unsupported encrypted blob version {blob[0]:#04x}")
    end = 3 + int.from_bytes(blob[1:3], "big")
    if end == 3 or len(blob) < end + _NONCE_LEN + _TAG_LEN:
        raise DecryptionError(f"{what}: malformed encrypted blob (truncated)")
    return blob[3:end], blob[end : end + _NONCE_LEN], blob[end + _NONCE_LEN :]


def blob_key_ref(blob: bytes) -> str:
    """Return the run id whose data key encrypted ``blob``.

    Raises:
        DecryptionError: the blob is malformed.
    """
    ref, _, _ = _split_blob(blob, "encrypted field")
    try:
        return ref.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionError("encrypted field: key_ref is not UTF-8 (tampered)") from exc


def decrypt_field(data_key: bytes, blob: bytes, *, table: str, row: str, column: str) -> bytes:
    """Decrypt a blob made by :func:`encrypt_field` for the same place.

    Raises:
        DecryptionError: wrong data key, tampered blob, or a blob moved from another
            table, row or column (AES-GCM cannot tell these apart).
    """
    _check_data_key(data_key)
    what = _where(table, row, column)
    ref, nonce, sealed = _split_blob(blob, what)
    try:
        return AESGCM(data_key).decrypt(nonce, sealed, _field_aad(ref, table, row, column))
    except InvalidTag as exc:
        raise DecryptionError(
            f"{what}: cannot decrypt: wrong data key, tampered, or moved from another "
            "table, row or column"
        ) from exc


# --- key store and convenience cipher --------------------------------------------------------


class KeyStore(Protocol):
    """Where wrapped data keys live (one per run); the database model implements this."""

    def get_wrapped(self, run_id: str) -> WrappedKey | None:
        """Return the run's wrapped data key, or None if it has none yet."""
        ...

    def put_wrapped(self, run_id: str, wrapped: WrappedKey) -> None:
        """Store (or, during rotation, replace) the run's wrapped data key."""
        ...

    def all_wrapped(self) -> Iterable[tuple[str, WrappedKey]]:
        """Yield every (run id, wrapped data key)."""
        ...


class MemoryKeyStore:
    """An in-memory :class:`KeyStore` for tests and the embedded demo."""

    def __init__(self) -> None:
        self._keys: dict[str, WrappedKey] = {}

    def get_wrapped(self, run_id: str) -> WrappedKey | None:
        """Return the run's wrapped data key, or None."""
        return self._keys.get(run_id)

    def put_wrapped(self, run_id: str, wrapped: WrappedKey) -> None:
        """Store or replace the run's wrapped data key."""
        self._keys[run_id] = wrapped

    def all_wrapped(self) -> Iterable[tuple[str, WrappedKey]]:
        """Return a snapshot of every (run id, wrapped data key)."""
        return list(self._keys.items())


class FieldCipher:
    """Seal and open fields with per-run data keys kept wrapped in a :class:`KeyStore`.

    Unwrapped data keys are cached in memory for the life of the object (Python cannot wipe
    them reliably; :meth:`forget` drops the references).
    """

    def __init__(self, master: MasterKey, store: KeyStore) -> None:
        self._master = master
        self._store = store
        self._cache: dict[str, bytes] = {}

    @property
    def master_key_id(self) -> str:
        """The key id of the master key currently in use."""
        return self._master.key_id

    def ensure_key(self, run_id: str) -> None:
        """Create and store the run's data key if it has none (:meth:`seal` and :meth:`derive`
        do the same on first use; rio itself leaves it to them).

        Two processes that both created a key for the same run would overwrite each other's.
        In rio only the holder of the run's lease (its runner,
        :class:`~orchestrator.run.lease.RunLease`) seals or derives, so one process at a time
        can create a run's key; a caller outside the lease must make sure it is the only one.
        """
        self._data_key(run_id, create=True)

    def seal(self, run_id: str, plaintext: bytes, *, table: str, row: str, column: str) -> bytes:
        """Encrypt a field with the run's data key (created on first use)."""
        data_key = self._data_key(run_id, create=True)
        return encrypt_field(data_key, run_id, plaintext, table=table, row=row, column=column)

    def open(self, blob: bytes, *, table: str, row: str, column: str) -> bytes:
        """Decrypt a field sealed for this (table, row, column).

        Raises:
            DecryptionError: no data key for the blob's run, wrong master key, or the blob was
                tampered with or moved.
        """
        what = _where(table, row, column)
        ref, _, _ = _split_blob(blob, what)
        try:
            run_id = ref.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptionError(f"{what}: key_ref is not UTF-8 (tampered)") from exc
        data_key = self._data_key(run_id, create=False, what=what)
        return decrypt_field(data_key, blob, table=table, row=row, column=column)

    def rotate_master(self, new_master: MasterKey) -> int:
        """Re-wrap every stored data key under ``new_master``; all or nothing.

        Every key is unwrapped first; if any fails, nothing is written. Keys already under
        ``new_master`` (left by an interrupted rotation) are verified and skipped, so a failed
        rotation can simply be run again.

        Returns:
            The number of data keys re-wrapped.

        Raises:
            DecryptionError: a stored data key opens under neither master key.
        """
        pending: list[tuple[str, bytes]] = []
        for run_id, wrapped in list(self._store.all_wrapped()):
            if wrapped.master_key_id == new_master.key_id:
                unwrap_data_key(new_master, run_id, wrapped)
            else:
                pending.append((run_id, unwrap_data_key(self._master, run_id, wrapped)))
        for run_id, data_key in pending:
            self._store.put_wrapped(run_id, wrap_data_key(new_master, run_id, data_key))
        self._master = new_master
        return len(pending)

    def derive(self, run_id: str, label: str) -> bytes:
        """A 32-byte secret derived from the run's data key (e.g. a salt for evidence digests).

        Only holders of the master key can recompute it, so a salted digest in the probe log
        cannot be used to guess low-entropy evidence such as a server banner.
        """
        data_key = self._data_key(run_id, create=True)
        return hmac.new(data_key, b"rio-derive:" + label.encode("utf-8"), hashlib.sha256).digest()

    def forget(self) -> None:
        """Drop every cached data key."""
        self._cache.clear()

    def _data_key(self, run_id: str, *, create: bool, what: str = "") -> bytes:
        cached = self._cache.get(run_id)
        if cached is not None:
            return cached
        wrapped = self._store.get_wrapped(run_id)
        if wrapped is None:
            if not create:
                raise DecryptionError(f"{what}: no data key stored for run {run_id}")
            data_key = new_data_key()
            self._store.put_wrapped(run_id, wrap_data_key(self._master, run_id, data_key))
        else:
            data_key = unwrap_data_key(self._master, run_id, wrapped)
        self._cache[run_id] = data_key
        return data_key
