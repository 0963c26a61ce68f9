"""DSSE envelopes: signatures over a payload *and* its declared type.

The inspection record is carried in a Dead Simple Signing Envelope
(https://github.com/secure-systems-lab/dsse, ``protocol.md``). Each signature covers
``PAE(payloadType, payload)``, so a signature made over some other kind of document (a log
checkpoint, say) can never be replayed as a signature over a record, even if the bytes match.

Signing goes through the small :class:`Signer` protocol (a key id and ``sign(data)``), so a
hardware-backed signer can be added later without touching the envelope code;
:class:`Ed25519Signer` is the file-backed implementation.

Verification returns a result and never raises (:func:`verify_signature`,
:func:`verified_keyids`); the closure code decides what a missing signature means.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from orchestrator.errors import ConflictError, RecordFileError
from orchestrator.intake.keys import key_id, load_private_key
from orchestrator.record.canonical import (
    canonical_bytes,
    field_path,
    json_kind,
    loads_strict,
)

__all__ = [
    "PAYLOAD_TYPE",
    "Ed25519Signer",
    "Envelope",
    "Signature",
    "Signer",
    "add_signature",
    "pae",
    "sign_envelope",
    "sign_payload",
    "verified_keyids",
    "verify_signature",
]

#: The DSSE payload type of rio's remote inspection record.
PAYLOAD_TYPE = "application/vnd.rio.inspection-record+json;version=1"

_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})
# Base64 per RFC 4648, standard or URL-safe alphabet (DSSE allows either), with padding.
_BASE64_RE = re.compile(
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
    r"|(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?",
    re.ASCII,
)


@runtime_checkable
class Signer(Protocol):
    """Something that signs bytes with one key and knows that key's id."""

    @property
    def keyid(self) -> str:
        """The key id (see :func:`orchestrator.intake.keys.key_id`)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the signature over ``data``."""
        ...


class Ed25519Signer:
    """A :class:`Signer` backed by an Ed25519 private key held in memory."""

    __slots__ = ("_keyid", "_private_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        """Wrap a private key.

        Args:
            private_key: The Ed25519 private key to sign with.
        """
        self._private_key = private_key
        self._keyid = key_id(private_key.public_key())

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Signer:
        """Load the private key from a mode-0600 PKCS#8 PEM file.

        Args:
            path: The private key file.

        Returns:
            A signer for that key.

        Raises:
            KeyFileError: The file is missing, too widely readable, or not an Ed25519 key.
        """
        return cls(load_private_key(path))

    @property
    def keyid(self) -> str:
        """The key id of this signer's public key."""
        return self._keyid

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half, for registering the signer."""
        return self._private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature over ``data``."""
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        # Never show the key; the id is enough to tell signers apart.
        return f"Ed25519Signer(keyid={self._keyid!r})"


@dataclass(frozen=True, kw_only=True, slots=True)
class Signature:
    """One signature in an envelope.

    Attributes:
        keyid: Id of the key that made it.
        sig: The raw signature bytes.
    """

    keyid: str
    sig: bytes

    def to_json(self) -> dict[str, str]:
        """Return the DSSE JSON form: ``{"keyid": ..., "sig": <base64>}``."""
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode("ascii")}

    @classmethod
    def from_json(cls, data: Any, *, source: str, path: str = "") -> Signature:
        """Read a signature from its parsed JSON form.

        Args:
            data: The parsed JSON value.
            source: Names the document in error messages.
            path: Where this signature sits in the document, e.g. ``signatures[0]``.

        Returns:
            The signature.

        Raises:
            RecordFileError: A field is missing, unknown, of the wrong type, empty, or not
                base64; the error names it.
        """
        fields = _object(data, _SIGNATURE_FIELDS, source=source, path=path)
        keyid = _string(fields, "keyid", source=source, path=path)
        sig = _base64(fields, "sig", source=source, path=path)
        if not keyid:
            raise RecordFileError(source, field_path(path, "keyid"), "must not be empty")
        if not sig:
            raise RecordFileError(source, field_path(path, "sig"), "must not be empty")
        return cls(keyid=keyid, sig=sig)


@dataclass(frozen=True, kw_only=True, slots=True)
class Envelope:
    """A DSSE envelope: a typed payload and the signatures over it.

    Attributes:
        payload_type: What the payload is, e.g. :data:`PAYLOAD_TYPE`.
        payload: The payload bytes (for a record, its canonical JSON).
        signatures: The signatures, in the order they were added.
    """

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the DSSE JSON form of the envelope."""
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [signature.to_json() for signature in self.signatures],
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str) -> Envelope:
        """Read an envelope from its parsed JSON form, strictly.

        Args:
            data: The parsed JSON value.
            source: Names the document in error messages.

        Returns:
            The envelope. Signatures are read, not verified.

        Raises:
            RecordFileError: A field is missing, unknown, of the wrong type or malformed;
                the error names it.
        """
        fields = _object(data, _ENVELOPE_FIELDS, source=source, path="")
        payload_type = _string(fields, "payloadType", source=source, path="")
        if not payload_type:
            raise RecordFileError(source, "payloadType", "must not be empty")
        payload = _base64(fields, "payload", source=source, path="")
        raw_signatures = fields["signatures"]
        if not isinstance(raw_signatures, list):
            raise RecordFileError(
                source, "signatures", f"expected an array, got {json_kind(raw_signatures)}"
            )
        signatures = tuple(
            Signature.from_json(item, source=source, path=field_path("signatures", i))
            for i, item in enumerate(raw_signatures)
        )
        return cls(payload_type=payload_type, payload=payload, signatures=signatures)

    def dumps(self) -> bytes:
        """Return the envelope as canonical JSON bytes (RFC 8785)."""
        return canonical_bytes(self.to_json(), source="<envelope>")

    @classmethod
    def loads(cls, data: bytes, *, source: str) -> Envelope:
        """Parse an envelope from JSON bytes, strictly.

        Args:
            data: The envelope's bytes.
            source: Names the document in error messages (usually a file path).

        Returns:
            The envelope. Signatures are read, not verified.

        Raises:
            RecordFileError: The bytes are not strict JSON (see
                :func:`~orchestrator.record.canonical.loads_strict`) or not a well-formed
                envelope; the error names the field.
        """
        return cls.from_json(loads_strict(data, source=source), source=source)


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE pre-authentication encoding of a typed payload.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, with lengths in bytes written as
    ASCII decimal. This, not the bare payload, is what gets signed.

    Args:
        payload_type: The payload type (encoded as UTF-8).
        payload: The payload bytes.

    Returns:
        The bytes to sign or verify.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_payload(
    payload_type: str, payload: bytes, signer: Signer | Ed25519PrivateKey
) -> Signature:
    """Sign a typed payload.

    Args:
        payload_type: The payload type the signature commits to.
        payload: The payload bytes.
        signer: A :class:`Signer`, or an Ed25519 private key to sign with directly.

    Returns:
        The signature, carrying the signer's key id.
    """
    if isinstance(signer, Ed25519PrivateKey):
        signer = Ed25519Signer(signer)
    return Signature(keyid=signer.keyid, sig=signer.sign(pae(payload_type, payload)))


def add_signature(envelope: Envelope, signature: Signature) -> Envelope:
    """Return a copy of ``envelope`` with one more signature.

    Args:
        envelope: The envelope.
        signature: The signature to add. It is not verified here.

    Returns:
        A new envelope; the original is unchanged.

    Raises:
        ConflictError: The envelope already holds a signature with the same key id (one key
            signs a record once; a second copy would only muddle counting).
    """
    if any(existing.keyid == signature.keyid for existing in envelope.signatures):
        raise ConflictError(f"envelope already holds a signature by key {signature.keyid}")
    return Envelope(
        payload_type=envelope.payload_type,
        payload=envelope.payload,
        signatures=(*envelope.signatures, signature),
    )


def sign_envelope(envelope: Envelope, signer: Signer | Ed25519PrivateKey) -> Envelope:
    """Sign an envelope's typed payload and return the envelope with the signature added.

    Args:
        envelope: The envelope.
        signer: A :class:`Signer`, or an Ed25519 private key.

    Returns:
        A new envelope with the signature appended.

    Raises:
        ConflictError: This key has already signed the envelope.
    """
    signature = sign_payload(envelope.payload_type, envelope.payload, signer)
    return add_signature(envelope, signature)


def verify_signature(
    payload_type: str, payload: bytes, signature: Signature, public_key: Ed25519PublicKey
) -> bool:
    """Tell whether ``signature`` is ``public_key``'s signature over the typed payload.

    Never raises: anything wrong (another key id, another payload type, altered payload,
    a malformed signature) is simply ``False``.

    Args:
        payload_type: The payload type the signature must commit to.
        payload: The payload bytes.
        signature: The signature to check.
        public_key: The key expected to have made it.

    Returns:
        True only if the signature's key id is this key's id and the signature verifies
        over ``PAE(payload_type, payload)``.
    """
    try:
        if signature.keyid != key_id(public_key):
            return False
        public_key.verify(signature.sig, pae(payload_type, payload))
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        return False
    return True


def verified_keyids(
    envelope: Envelope,
    public_keys: Iterable[Ed25519PublicKey],
    *,
    payload_type: str = PAYLOAD_TYPE,
) -> frozenset[str]:
    """Return the ids of the given keys whose signatures on the envelope verify.

    Never raises. An envelope of another payload type verifies no key.

    Args:
        envelope: The envelope to check.
        public_keys: The keys whose signatures count (e.g. the active officers' keys).
        payload_type: The payload type the envelope must carry.

    Returns:
        The key ids, among ``public_keys``, with a valid signature on the envelope.
    """
    if envelope.payload_type != payload_type:
        return frozenset()
    keys_by_id: dict[str, Ed25519PublicKey] = {}
    for public_key in public_keys:
        try:
            keys_by_id[key_id(public_key)] = public_key
        except (ValueError, TypeError, AttributeError):
            continue
    verified: set[str] = set()
    for signature in envelope.signatures:
        signer_key = keys_by_id.get(signature.keyid)
        if signer_key is not None and verify_signature(
            payload_type, envelope.payload, signature, signer_key
        ):
            verified.add(signature.keyid)
    return frozenset(verified)


def _object(data: Any, allowed: frozenset[str], *, source: str, path: str) -> dict[str, Any]:
    """Check that ``data`` is an object with exactly the ``allowed`` fields."""
    if not isinstance(data, dict):
        raise RecordFileError(source, path, f"expected an object, got {json_kind(data)}")
    missing = sorted(allowed - data.keys())
    if missing:
        raise RecordFileError(source, field_path(path, missing[0]), "missing")
    unknown = sorted(data.keys() - allowed)
    if unknown:
        raise RecordFileError(source, field_path(path, unknown[0]), "unknown field")
    return data


def _string(fields: dict[str, Any], name: str, *, source: str, path: str) -> str:
    """Return a string field or say what it is instead."""
    value = fields[name]
    if not isinstance(value, str):
        raise RecordFileError(
            source, field_path(path, name), f"expected a string, got {json_kind(value)}"
        )
    return value


def _base64(fields: dict[str, Any], name: str, *, source: str, path: str) -> bytes:
    """Decode a base64 field (standard or URL-safe alphabet, padded)."""
    text = _string(fields, name, source=source, path=path)
    if not _BASE64_RE.fullmatch(text):
        raise RecordFileError(source, field_path(path, name), "not valid base64")
    urlsafe = "-" in text or "_" in text
    try:
        decoded = (
            base64.urlsafe_b64decode(text) if urlsafe else base64.b64decode(text, validate=True)
        )
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex rejects these
        raise RecordFileError(source, field_path(path, name), "not valid base64") from exc
    # Unused low bits in the last group must be zero, so each value has one spelling.
    again = base64.urlsafe_b64encode(decoded) if urlsafe else base64.b64encode(decoded)
    if again.decode("ascii") != text:
        raise RecordFileError(source, field_path(path, name), "not canonical base64")
    return decoded
