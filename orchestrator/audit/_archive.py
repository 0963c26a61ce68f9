"""Reading a rio archive (docs/archive-format.md): members by name, leaves as a stream.

The archive is an uncompressed tar. Small members (JSON and YAML documents) are read whole, with
a size cap so a hostile archive cannot make the verifier allocate without bound; the leaves are
read line by line from the tar member, so memory stays flat however long the log is.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from orchestrator.errors import InputError, RecordFileError

__all__ = [
    "ARCHIVE_FORMAT",
    "CHECKPOINTS",
    "FINDINGS",
    "KEYS",
    "LEAVES",
    "MANIFEST",
    "MANIFEST_PAYLOAD_TYPE",
    "MANIFEST_SIG",
    "MAX_DOCUMENT_BYTES",
    "MAX_LEAF_BYTES",
    "MEMBER_ORDER",
    "NOTICE",
    "POLICY",
    "RECORD",
    "RECORD_DSSE",
    "RECORD_SIGNATURES",
    "RECTIFICATION",
    "SCOPE",
    "Archive",
    "LeafLine",
]

ARCHIVE_FORMAT = "rio.archive/v1"
MANIFEST_PAYLOAD_TYPE = "application/vnd.rio.archive-manifest+json;version=1"

MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
NOTICE = "notice.json"
SCOPE = "scope.yaml"
POLICY = "policy.yaml"
KEYS = "keys.json"
LEAVES = "ledger/leaves.jsonl"
CHECKPOINTS = "ledger/checkpoints.json"
FINDINGS = "findings.json"
RECORD = "record.json"
RECORD_DSSE = "record.dsse.json"
RECORD_SIGNATURES = "record.signatures.json"
RECTIFICATION = "rectification.json"

MEMBER_ORDER = (
    MANIFEST,
    MANIFEST_SIG,
    NOTICE,
    SCOPE,
    POLICY,
    KEYS,
    LEAVES,
    CHECKPOINTS,
    FINDINGS,
    RECORD,
    RECORD_DSSE,
    RECORD_SIGNATURES,
    RECTIFICATION,
)
"""The members of an archive, in the order the format prescribes."""

MAX_DOCUMENT_BYTES = 64 << 20
"""Largest member read whole (every member but the leaves); bounds what a hostile file costs."""

MAX_LEAF_BYTES = 1 << 20
"""Longest leaf line accepted; a leaf is a few hundred bytes."""

_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True, slots=True)
class LeafLine:
    """One line of ``ledger/leaves.jsonl``.

    Attributes:
        index: Zero-based line number (the leaf's position in the log).
        raw: The line without its newline: the leaf's bytes.
        problem: Why the line is not a well-formed leaf line (too long, no final newline),
            or ``None``.
    """

    index: int
    raw: bytes
    problem: str | None = None


class Archive:
    """An open archive file. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        """Open the archive.

        Args:
            path: The archive file.

        Raises:
            InputError: The file does not exist or cannot be read.
            RecordFileError: The file is not an uncompressed tar archive.
        """
        self.path = path
        if not path.is_file():
            raise InputError(f"{path}: no such archive file")
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
        except (tarfile.TarError, OSError) as exc:
            raise RecordFileError(str(path), "", f"not an uncompressed tar archive: {exc}") from exc
        try:
            self.members: tuple[tarfile.TarInfo, ...] = tuple(self._tar.getmembers())
        except (tarfile.TarError, OSError) as exc:
            self._tar.close()
            raise RecordFileError(str(path), "", f"corrupt tar archive: {exc}") from exc
        self._by_name: dict[str, tarfile.TarInfo] = {}
        for info in self.members:
            # The first of two same-named members wins; the manifest check reports the duplicate.
            self._by_name.setdefault(info.name, info)

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying file."""
        self._tar.close()

    @property
    def names(self) -> tuple[str, ...]:
        """Member names in archive order (duplicates included)."""
        return tuple(info.name for info in self.members)

    def has(self, name: str) -> bool:
        """Tell whether a regular-file member of that name exists."""
        info = self._by_name.get(name)
        return info is not None and info.isfile()

    def _info(self, name: str) -> tarfile.TarInfo:
        info = self._by_name.get(name)
        if info is None:
            raise RecordFileError(str(self.path), name, "member is missing")
        if not info.isfile():
            raise RecordFileError(str(self.path), name, "member is not a regular file")
        return info

    def read(self, name: str) -> bytes:
        """Read a whole member.

        Raises:
            RecordFileError: The member is missing, not a regular file, or larger than
                :data:`MAX_DOCUMENT_BYTES`.
        """
        info = self._info(name)
        if info.size > MAX_DOCUMENT_BYTES:
            raise RecordFileError(
                str(self.path), name, f"member is {info.size} bytes, over {MAX_DOCUMENT_BYTES}"
            )
        handle = self._tar.extractfile(info)
        if handle is None:  # pragma: no cover - regular files always have a handle
            raise RecordFileError(str(self.path), name, "member cannot be read")
        with handle:
            return handle.read()

    def digest(self, name: str) -> tuple[str, int]:
        """Return ``(sha256 hex, size)`` of a member, reading it in chunks.

        Raises:
            RecordFileError: The member is missing or not a regular file.
        """
        info = self._info(name)
        handle = self._tar.extractfile(info)
        if handle is None:  # pragma: no cover
            raise RecordFileError(str(self.path), name, "member cannot be read")
        sha = hashlib.sha256()
        size = 0
        with handle:
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
                size += len(chunk)
        return sha.hexdigest(), size

    def leaf_lines(self) -> Iterator[LeafLine]:
        """Stream the lines of ``ledger/leaves.jsonl``.

        Yields:
            One :class:`LeafLine` per line; a line longer than :data:`MAX_LEAF_BYTES` is
            yielded truncated with a problem, and the rest of it skipped.

        Raises:
            RecordFileError: The member is missing or not a regular file.
        """
        info = self._info(LEAVES)
        handle = self._tar.extractfile(info)
        if handle is None:  # pragma: no cover
            raise RecordFileError(str(self.path), LEAVES, "member cannot be read")
        with handle:
            index = 0
            while True:
                line = handle.readline(MAX_LEAF_BYTES + 1)
                if not line:
                    return
                if not line.endswith(b"\n"):
                    if len(line) > MAX_LEAF_BYTES:
                        # Skip the remainder of the over-long line in bounded reads.
                        while (rest := handle.readline(_CHUNK)) and not rest.endswith(b"\n"):
                            pass
                        yield LeafLine(
                            index=index,
                            raw=line[:MAX_LEAF_BYTES],
                            problem=f"longer than {MAX_LEAF_BYTES} bytes",
                        )
                    else:
                        yield LeafLine(index=index, raw=line, problem="no terminating newline")
                else:
                    yield LeafLine(index=index, raw=line[:-1])
                index += 1
