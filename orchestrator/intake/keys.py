"""Ed25519 key files for officers, vendor technicians and the log's checkpoint signer.

A private key lives in a PKCS#8 PEM file that only its owner can read (mode 0600); the public
key lives beside it as a SubjectPublicKeyInfo PEM. A key is named by its *key id*: the lowercase
hex SHA-256 of the DER SubjectPublicKeyInfo, so the id follows from the public key alone and
anyone holding the public PEM can recompute it.

Every failure is a :class:`~orchestrator.errors.KeyFileError` that names the file and what is
wrong with it. Messages never quote the file's content: a key file that is malformed may still
hold secret material.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from orchestrator.errors import KeyFileError

__all__ = [
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_pem",
]

_PEM_BEGIN = b"-----BEGIN "
_PRIVATE_KEY_MODE = 0o600
_PUBLIC_KEY_MODE = 0o644
# Bits that would let anyone but the owner read, write or run the private key file.
_NOT_OWNER_BITS = stat.S_IRWXG | stat.S_IRWXO
# A PEM Ed25519 key is a few hundred bytes; refuse to slurp a large file named by mistake.
_MAX_KEY_FILE_BYTES = 64 * 1024


def key_id(public_key: Ed25519PublicKey) -> str:
    """Return the key id of a public key.

    Args:
        public_key: The Ed25519 public key.

    Returns:
        The lowercase hex SHA-256 of the key's DER-encoded SubjectPublicKeyInfo.
    """
    der = public_key.public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return hashlib.sha256(der).hexdigest()


def public_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """Return the SubjectPublicKeyInfo PEM text of a key's public half.

    Args:
        key: An Ed25519 public key, or a private key whose public half is wanted.

    Returns:
        The PEM text, ending with a newline.
    """
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode("ascii")


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Create a new Ed25519 key pair in two files.

    The private key file is created with mode 0600 in the same call that creates it, so it is
    never readable by others, not even for an instant. Neither file may exist beforehand: an
    existing key is never overwritten.

    Args:
        private_path: Where to write the private key (PKCS#8 PEM, unencrypted, mode 0600).
        public_path: Where to write the public key (SubjectPublicKeyInfo PEM, mode 0644).

    Returns:
        The key id of the new key.

    Raises:
        KeyFileError: Either file already exists, the two paths are the same, or a file
            cannot be created.
    """
    if Path(os.path.abspath(private_path)) == Path(os.path.abspath(public_path)):
        raise KeyFileError(f"{private_path}: private and public key paths must differ")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key file")

    private_key = Ed25519PrivateKey.generate()
    private_bytes = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public_bytes = public_pem(private_key).encode("ascii")

    _write_new_file(private_path, private_bytes, _PRIVATE_KEY_MODE)
    try:
        _write_new_file(public_path, public_bytes, _PUBLIC_KEY_MODE)
    except KeyFileError:
        # A private key without its public half is useless and would block a retry.
        private_path.unlink(missing_ok=True)
        raise
    return key_id(private_key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted Ed25519 private key from a PKCS#8 PEM file.

    Args:
        path: The key file. It must be readable by its owner only (mode 0600 or stricter).

    Returns:
        The private key.

    Raises:
        KeyFileError: The file is missing, unreadable, readable by group or others, not PEM,
            encrypted, not a private key, or not an Ed25519 key.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: private key file does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read private key file: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise KeyFileError(f"{path}: private key path is not a regular file")
    # A public key (NAME.pub) given where the private key belongs is the likelier mistake
    # than a private key left readable: say that first, not "chmod 600" on a public key.
    peek = _read_key_file(path, "private")
    if b"PRIVATE KEY" not in peek and b"PUBLIC KEY" in peek:
        beside = path.with_suffix(".key")
        hint = f" ({beside}, if it is yours)" if beside != path and beside.is_file() else ""
        raise KeyFileError(
            f"{path}: holds a public key; --key and RIO_KEY_FILE take your private key, the "
            f"NAME.key that rio keys generate wrote beside NAME.pub{hint}"
        )
    if mode & _NOT_OWNER_BITS:
        raise KeyFileError(
            f"{path}: private key file is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); refusing to use it. Run: chmod 600 {path}"
        )

    data = peek
    if b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise KeyFileError(
            f"{path}: private key is encrypted; rio needs an unencrypted PKCS#8 key "
            "kept in a mode 0600 file"
        )
    if b"PRIVATE KEY" not in data:
        raise KeyFileError(f"{path}: does not hold a private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        # cryptography raises TypeError when a password would be needed.
        raise KeyFileError(f"{path}: private key is encrypted") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not a valid PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: holds a {_key_kind(key)} private key; rio keys are Ed25519")
    return key


def load_public_key(source: Path | bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a SubjectPublicKeyInfo PEM file or PEM bytes.

    Args:
        source: A path to the PEM file, or the PEM bytes themselves (e.g. from the database).

    Returns:
        The public key.

    Raises:
        KeyFileError: The file is missing or unreadable, or the data is not PEM, not a public
            key, or not an Ed25519 key.
    """
    if isinstance(source, bytes):
        name = "<public key PEM>"
        data = source
    else:
        name = str(source)
        if not source.exists():
            raise KeyFileError(f"{name}: public key file does not exist")
        data = _read_key_file(source, "public")

    if not data.lstrip().startswith(_PEM_BEGIN):
        raise KeyFileError(f"{name}: not a PEM file")
    if b"PRIVATE KEY" in data:
        # Someone handed over the wrong half; say so instead of a parse error.
        raise KeyFileError(f"{name}: holds a private key where a public key was expected")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{name}: not a valid PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{name}: holds a {_key_kind(key)} public key; rio keys are Ed25519")
    return key


def _read_key_file(path: Path, kind: str) -> bytes:
    """Read a key file's bytes, refusing huge files and non-PEM content."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: {kind} key file does not exist") from exc
    except IsADirectoryError as exc:
        raise KeyFileError(f"{path}: {kind} key path is a directory") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read {kind} key file: {exc.strerror}") from exc
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large for a {kind} key file")
    if not data.lstrip().startswith(_PEM_BEGIN):
        raise KeyFileError(f"{path}: not a PEM file")
    return data


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` and write ``data`` to it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key file") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise KeyFileError(f"{path}: cannot write key file: {exc.strerror}") from exc


def _key_kind(key: object) -> str:
    """Name the algorithm of a non-Ed25519 key for an error message (never its material)."""
    name = type(key).__name__
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    return name.lstrip("_") or "non-Ed25519"
