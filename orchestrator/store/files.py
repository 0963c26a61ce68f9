"""Files written whole or not at all.

:func:`write_atomic` is the one place rio replaces a file it writes (documents, trusted-keys files,
archives): a temporary file beside the target, written and fsynced, given its mode, renamed over
the target, then the folder fsynced so the rename survives a crash. A reader sees the old file or
the new one, never a half-written one; on any failure the temporary file is removed.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets exactly ``mode`` (not the umask's).

    Raises:
        OSError: The file or its folder cannot be written. A failure before the rename leaves
            ``path`` untouched; only the final fsync of the folder can fail after it.
    """
    target = path.resolve()
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where the filesystem cannot)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
