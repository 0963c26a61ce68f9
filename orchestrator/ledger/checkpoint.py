"""Signed checkpoints of a run's ledger: C2SP tlog-checkpoint bodies in C2SP signed notes.

A checkpoint states "the log with this origin had this many leaves and this root". Its text
(the note body) is::

    rio/<run id>
    <size in decimal>
    <base64 of the 32-byte RFC 9162 root>
    [extension lines]

and the signed note appends a blank line and one signature line per signer::

    — <key name> <base64(key hash (4 bytes) || Ed25519 signature over the body)>

where the key hash is ``SHA-256(key name || "\\n" || 0x01 || raw public key)[:4]``. Keeping to
the C2SP formats means any transparency-log tool can read and cosign rio's checkpoints.

Parsing is strict and raises :class:`~orchestrator.errors.RecordFileError`; verification
raises :class:`~orchestrator.errors.VerificationError` saying why it failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orchestrator.errors import InputError, RecordFileError, VerificationError

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "ORIGIN_PREFIX",
    "Checkpoint",
    "NoteSignature",
    "add_signature",
    "checkpoint_body",
    "key_hash",
    "parse_checkpoint_note",
    "run_origin",
    "sign_checkpoint",
    "verifier_key",
    "verify_checkpoint",
]

ORIGIN_PREFIX = "rio/"
"""Every rio log origin is ``rio/<run id>``."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (the limit Go's note package enforces)."""

MAX_NOTE_BYTES = 1 << 20
"""Largest note accepted; a checkpoint is a few hundred bytes, this only bounds the work."""

_FILE = "checkpoint"
_ROOT_SIZE = 32
_MAX_SIZE = (1 << 64) - 1  # tree sizes are uint64 in every C2SP implementation
_ED25519_TYPE = b"\x01"  # signed-note signature type byte for Ed25519
_ED25519_SIG_SIZE = 64
_SIG_PREFIX = "\u2014 "  # EM DASH + space; a hyphen is a different, invalid line
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")  # ASCII decimal without leading zeroes
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]").search


@dataclass(frozen=True, kw_only=True, slots=True)
class Checkpoint:
    """A tree head of one log: origin, size and root.

    Attributes:
        origin: The log's name, ``rio/<run id>`` for rio's ledgers.
        size: Number of leaves.
        root: The 32-byte RFC 9162 root over those leaves.
        extensions: Optional extra body lines (C2SP allows them; rio writes none). They are
            kept so a parsed checkpoint re-serialises to the exact bytes that were signed.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise RecordFileError(_FILE, "origin", "must be a non-empty string")
        if _has_control(self.origin):
            raise RecordFileError(_FILE, "origin", "must not contain newlines or control chars")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise RecordFileError(_FILE, "size", f"{self.size!r} is not an integer")
        if not 0 <= self.size <= _MAX_SIZE:
            raise RecordFileError(_FILE, "size", f"{self.size} is outside [0, 2**64)")
        if not isinstance(self.root, bytes) or len(self.root) != _ROOT_SIZE:
            raise RecordFileError(_FILE, "root", f"must be {_ROOT_SIZE} bytes")
        for i, line in enumerate(self.extensions):
            if not isinstance(line, str) or not line or _has_control(line):
                raise RecordFileError(
                    _FILE, f"extensions[{i}]", "must be a non-empty line without control chars"
                )


@dataclass(frozen=True, kw_only=True, slots=True)
class NoteSignature:
    """One signature line of a signed note, parsed but not verified.

    Attributes:
        key_name: The signer's key name as written on the line.
        key_hash: The 4-byte key hash that tells keys of the same name apart.
        signature: The signature bytes (64 for Ed25519; other key types may differ).
    """

    key_name: str
    key_hash: bytes
    signature: bytes


def run_origin(run_id: str) -> str:
    """Return the log origin of a run, ``rio/<run id>``.

    Args:
        run_id: The run's identifier.

    Raises:
        InputError: The id is empty or contains whitespace or control characters.
    """
    if not run_id or any(ch.isspace() or ch < " " for ch in run_id):
        raise InputError(f"run id {run_id!r}: cannot name a log origin")
    return ORIGIN_PREFIX + run_id


def _has_control(text: str) -> bool:
    return _CONTROL(text) is not None


def _check_key_name(key_name: str) -> None:
    # signed-note: a key name is non-empty and has no Unicode whitespace and no "+"
    # (the "+" separates fields of a verifier key string).
    if (
        not isinstance(key_name, str)
        or not key_name
        or "+" in key_name
        or any(ch.isspace() or ch < " " for ch in key_name)
    ):
        raise InputError(f"note key name {key_name!r}: must be non-empty, no spaces and no '+'")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """Return the 4-byte signed-note key hash of an Ed25519 key.

    Args:
        key_name: The key's name.
        public_key: The Ed25519 public key.

    Returns:
        ``SHA-256(key_name || "\\n" || 0x01 || raw public key)[:4]``.
    """
    material = key_name.encode() + b"\n" + _ED25519_TYPE + _raw_public(public_key)
    return hashlib.sha256(material).digest()[:4]


def verifier_key(key_name: str, public_key: Ed25519PublicKey) -> str:
    """Return the signed-note verifier key string ``<name>+<hex hash>+<base64(0x01 || key)>``.

    This is the form in which an auditor is told which checkpoint key to trust.

    Args:
        key_name: The key's name.
        public_key: The Ed25519 public key.

    Raises:
        InputError: The key name is not a valid note key name.
    """
    _check_key_name(key_name)
    encoded = base64.b64encode(_ED25519_TYPE + _raw_public(public_key)).decode("ascii")
    return f"{key_name}+{key_hash(key_name, public_key).hex()}+{encoded}"


def checkpoint_body(cp: Checkpoint) -> bytes:
    """Return the note text of a checkpoint: the exact bytes a signature covers.

    Args:
        cp: The checkpoint.

    Returns:
        ``origin\\nsize\\nbase64(root)\\n`` followed by any extension lines, UTF-8 encoded.
    """
    lines = [cp.origin, str(cp.size), base64.b64encode(cp.root).decode("ascii")]
    lines.extend(cp.extensions)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _signature_line(body: bytes, private_key: Ed25519PrivateKey, key_name: str) -> str:
    _check_key_name(key_name)
    signature = private_key.sign(body)
    blob = key_hash(key_name, private_key.public_key()) + signature
    return f"{_SIG_PREFIX}{key_name} {base64.b64encode(blob).decode('ascii')}\n"


def sign_checkpoint(cp: Checkpoint, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """Sign a checkpoint and return the signed note.

    Args:
        cp: The checkpoint to sign.
        private_key: The log's Ed25519 signing key.
        key_name: The signer's key name (rio uses the origin).

    Returns:
        The note text: body, blank line, one signature line.

    Raises:
        InputError: The key name is not a valid note key name.
    """
    body = checkpoint_body(cp)
    return body.decode("utf-8") + "\n" + _signature_line(body, private_key, key_name)


def add_signature(note: str, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """Add a cosignature to an already signed checkpoint note.

    Args:
        note: A signed checkpoint note (it is parsed strictly first).
        private_key: The cosigner's Ed25519 key.
        key_name: The cosigner's key name.

    Returns:
        The note with one more signature line at the end.

    Raises:
        RecordFileError: The note is malformed.
        InputError: The key name is not a valid note key name.
    """
    body, _, _ = _parse_note(note)
    return note + _signature_line(body.encode("utf-8"), private_key, key_name)


def _b64_strict(text: str, field: str) -> bytes:
    # Only canonical standard base64 is accepted, so that one value has one spelling.
    if not _B64_RE.fullmatch(text) or len(text) % 4:
        raise RecordFileError(_FILE, field, "is not standard base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordFileError(_FILE, field, "is not standard base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise RecordFileError(_FILE, field, "is not canonical base64")
    return raw


def _parse_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise RecordFileError(_FILE, "text", "needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise RecordFileError(_FILE, "origin", "is empty")
    if not _SIZE_RE.fullmatch(size_text):
        raise RecordFileError(
            _FILE, "size", f"{size_text!r} is not a decimal number without leading zeroes"
        )
    size = int(size_text)
    if size > _MAX_SIZE:
        raise RecordFileError(_FILE, "size", f"{size_text} does not fit in 64 bits")
    root = _b64_strict(root_text, "root")
    if len(root) != _ROOT_SIZE:
        raise RecordFileError(_FILE, "root", f"is {len(root)} bytes, expected {_ROOT_SIZE}")
    for i, line in enumerate(extensions):
        if not line:
            raise RecordFileError(_FILE, f"extensions[{i}]", "is an empty line")
    return Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))


def _parse_signature(line: str, index: int) -> NoteSignature:
    field = f"signatures[{index}]"
    if not line.startswith(_SIG_PREFIX):
        raise RecordFileError(_FILE, field, "does not start with an em dash and a space")
    parts = line[len(_SIG_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise RecordFileError(_FILE, field, "must be '— <key name> <base64 signature>'")
    name, encoded = parts
    try:
        _check_key_name(name)
    except InputError as exc:
        raise RecordFileError(_FILE, field, f"key name {name!r} is invalid") from exc
    blob = _b64_strict(encoded, field)
    if len(blob) < 5:
        raise RecordFileError(_FILE, field, "is too short to hold a key hash and a signature")
    return NoteSignature(key_name=name, key_hash=blob[:4], signature=blob[4:])


def _parse_note(text: str) -> tuple[str, Checkpoint, list[NoteSignature]]:
    """Split and parse a note; return the signed body text as well as its parsed parts."""
    if not isinstance(text, str):
        raise RecordFileError(_FILE, "text", "is not a string")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordFileError(_FILE, "text", "is not valid UTF-8") from exc
    if len(encoded) > MAX_NOTE_BYTES:
        raise RecordFileError(_FILE, "text", f"is longer than {MAX_NOTE_BYTES} bytes")
    if _CONTROL_BUT_NEWLINE(text):
        raise RecordFileError(_FILE, "text", "contains control characters")
    # The signatures follow the LAST blank line: the body itself never holds one.
    split = text.rfind("\n\n")
    if split < 0:
        raise RecordFileError(_FILE, "text", "has no blank line before the signatures")
    body, signature_block = text[: split + 1], text[split + 2 :]
    if not signature_block:
        raise RecordFileError(_FILE, "signatures", "there are none")
    if not signature_block.endswith("\n"):
        raise RecordFileError(_FILE, "signatures", "the last line does not end in a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise RecordFileError(_FILE, "signatures", f"more than {MAX_SIGNATURES} lines")
    signatures = [_parse_signature(line, i) for i, line in enumerate(lines)]
    return body, _parse_body(body), signatures


def parse_checkpoint_note(text: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a signed checkpoint note without verifying any signature.

    Args:
        text: The note: checkpoint body, a blank line, then one or more signature lines.

    Returns:
        The checkpoint and its signature lines in order.

    Raises:
        RecordFileError: (file ``checkpoint``) the note or one of its lines is malformed.
    """
    _, cp, signatures = _parse_note(text)
    return cp, signatures


def verify_checkpoint(
    text: str,
    public_key: Ed25519PublicKey,
    key_name: str,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note against one trusted key and return its checkpoint.

    Signature lines of other keys (another name, or the same name with another key hash) are
    ignored. As in Go's ``note.Open``, the first line by the trusted key decides: if it does not
    verify the note is rejected, even if a later line by the same key would.

    Args:
        text: The signed note.
        public_key: The trusted Ed25519 public key.
        key_name: The trusted key's name.
        origin: When given, the checkpoint's origin must equal it, so that a checkpoint of
            another run signed by the same key is not taken for this run's.

    Returns:
        The verified checkpoint.

    Raises:
        VerificationError: The note is malformed, carries no signature by the key, the
            signature does not verify, or the origin is not the expected one.
    """
    try:
        body, cp, signatures = _parse_note(text)
    except RecordFileError as exc:
        raise VerificationError(f"checkpoint: malformed note: {exc}") from exc
    expected = key_hash(key_name, public_key)
    mine = [s for s in signatures if s.key_name == key_name and s.key_hash == expected]
    if not mine:
        raise VerificationError(
            f"checkpoint {cp.origin}@{cp.size}: no signature by key {key_name!r} ({expected.hex()})"
        )
    signature = mine[0].signature
    try:
        if len(signature) != _ED25519_SIG_SIZE:
            raise InvalidSignature
        # Verify the bytes as received, not a re-serialisation of what was parsed from them.
        public_key.verify(signature, body.encode("utf-8"))
    except InvalidSignature as exc:
        raise VerificationError(
            f"checkpoint {cp.origin}@{cp.size}: bad signature by key {key_name!r}"
        ) from exc
    if origin is not None and cp.origin != origin:
        raise VerificationError(
            f"checkpoint {cp.origin}@{cp.size}: origin is not the expected {origin!r}"
        )
    return cp
