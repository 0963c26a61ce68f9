"""Rules for DSSE envelopes around the inspection record."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.errors import ConflictError, KeyFileError, RecordFileError
from orchestrator.intake.keys import generate_keypair, key_id, load_public_key
from orchestrator.record.canonical import canonical_bytes
from orchestrator.record.dsse import (
    PAYLOAD_TYPE,
    Ed25519Signer,
    Envelope,
    Signature,
    Signer,
    add_signature,
    pae,
    sign_envelope,
    sign_payload,
    verified_keyids,
    verify_signature,
)

RECORD = canonical_bytes({"notice": "N-2026-0042", "version": 3, "conclusions": ["ok"]})


class _CountingSigner:
    """A stand-in hardware signer: anything with a keyid and sign() must do."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.keyid = key_id(key.public_key())
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self._key.sign(data)


@pytest.fixture
def officer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def second_officer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _envelope(*keys: Ed25519PrivateKey) -> Envelope:
    envelope = Envelope(payload_type=PAYLOAD_TYPE, payload=RECORD)
    for key in keys:
        envelope = sign_envelope(envelope, key)
    return envelope


def test_pae_matches_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("\u8bb0\u5f55", b"") == "DSSEv1 6 \u8bb0\u5f55 0 ".encode()


def test_signature_verifies_for_the_signing_key(officer: Ed25519PrivateKey) -> None:
    signature = sign_payload(PAYLOAD_TYPE, RECORD, officer)
    assert signature.keyid == key_id(officer.public_key())
    assert verify_signature(PAYLOAD_TYPE, RECORD, signature, officer.public_key())


def test_signature_covers_pae_not_bare_payload(officer: Ed25519PrivateKey) -> None:
    signature = sign_payload(PAYLOAD_TYPE, RECORD, officer)
    officer.public_key().verify(signature.sig, pae(PAYLOAD_TYPE, RECORD))


def test_verification_fails_when_payload_is_tampered(officer: Ed25519PrivateKey) -> None:
    signature = sign_payload(PAYLOAD_TYPE, RECORD, officer)
    tampered = RECORD.replace(b'"version":3', b'"version":4')
    assert tampered != RECORD
    assert not verify_signature(PAYLOAD_TYPE, tampered, signature, officer.public_key())


def test_verification_fails_when_payload_type_is_swapped(officer: Ed25519PrivateKey) -> None:
    checkpoint_type = "application/vnd.rio.checkpoint+json;version=1"
    signature = sign_payload(checkpoint_type, RECORD, officer)
    assert verify_signature(checkpoint_type, RECORD, signature, officer.public_key())
    assert not verify_signature(PAYLOAD_TYPE, RECORD, signature, officer.public_key())


def test_verification_fails_with_another_key(
    officer: Ed25519PrivateKey, second_officer: Ed25519PrivateKey
) -> None:
    signature = sign_payload(PAYLOAD_TYPE, RECORD, officer)
    # Relabel it with the other key's id so only the cryptography can catch it.
    relabelled = Signature(keyid=key_id(second_officer.public_key()), sig=signature.sig)
    assert not verify_signature(PAYLOAD_TYPE, RECORD, relabelled, second_officer.public_key())


def test_verification_fails_when_keyid_does_not_match_the_key(
    officer: Ed25519PrivateKey,
) -> None:
    signature = sign_payload(PAYLOAD_TYPE, RECORD, officer)
    mislabelled = Signature(keyid="0" * 64, sig=signature.sig)
    assert not verify_signature(PAYLOAD_TYPE, RECORD, mislabelled, officer.public_key())


@pytest.mark.parametrize("sig", [b"", b"\x00" * 63, b"\x00" * 64, b"\xff" * 200])
def test_verification_of_garbage_signature_is_false_not_an_exception(
    officer: Ed25519PrivateKey, sig: bytes
) -> None:
    garbage = Signature(keyid=key_id(officer.public_key()), sig=sig)
    assert verify_signature(PAYLOAD_TYPE, RECORD, garbage, officer.public_key()) is False


def test_envelope_round_trips_through_bytes(
    officer: Ed25519PrivateKey, second_officer: Ed25519PrivateKey
) -> None:
    envelope = _envelope(officer, second_officer)
    data = envelope.dumps()
    again = Envelope.loads(data, source="record.dsse.json")
    assert again == envelope
    assert again.dumps() == data
    assert verified_keyids(again, [officer.public_key(), second_officer.public_key()]) == {
        key_id(officer.public_key()),
        key_id(second_officer.public_key()),
    }


def test_envelope_json_uses_dsse_field_names(officer: Ed25519PrivateKey) -> None:
    doc = json.loads(_envelope(officer).dumps())
    assert set(doc) == {"payload", "payloadType", "signatures"}
    assert doc["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(doc["payload"]) == RECORD
    assert set(doc["signatures"][0]) == {"keyid", "sig"}


def test_verified_keyids_ignores_untrusted_and_invalid_signatures(
    officer: Ed25519PrivateKey, second_officer: Ed25519PrivateKey
) -> None:
    outsider = Ed25519PrivateKey.generate()
    envelope = _envelope(officer, outsider)
    forged = Signature(keyid=key_id(second_officer.public_key()), sig=b"\x01" * 64)
    envelope = add_signature(envelope, forged)
    trusted = [officer.public_key(), second_officer.public_key()]
    assert verified_keyids(envelope, trusted) == {key_id(officer.public_key())}


def test_verified_keyids_is_empty_for_another_payload_type(officer: Ed25519PrivateKey) -> None:
    other = Envelope(payload_type="text/plain", payload=RECORD)
    other = sign_envelope(other, officer)
    assert verified_keyids(other, [officer.public_key()]) == frozenset()


def test_same_key_cannot_sign_an_envelope_twice(officer: Ed25519PrivateKey) -> None:
    envelope = _envelope(officer)
    with pytest.raises(ConflictError, match=key_id(officer.public_key())):
        sign_envelope(envelope, officer)


def test_add_signature_leaves_the_original_envelope_unchanged(
    officer: Ed25519PrivateKey,
) -> None:
    unsigned = Envelope(payload_type=PAYLOAD_TYPE, payload=RECORD)
    signed = sign_envelope(unsigned, officer)
    assert unsigned.signatures == ()
    assert len(signed.signatures) == 1


def test_any_signer_protocol_implementation_can_sign(officer: Ed25519PrivateKey) -> None:
    signer = _CountingSigner(officer)
    assert isinstance(signer, Signer)
    envelope = sign_envelope(Envelope(payload_type=PAYLOAD_TYPE, payload=RECORD), signer)
    assert signer.calls == 1
    assert verified_keyids(envelope, [officer.public_key()]) == {signer.keyid}


def test_file_backed_signer_signs_with_the_key_in_the_file(tmp_path: Path) -> None:
    kid = generate_keypair(tmp_path / "o.key", tmp_path / "o.pub")
    signer = Ed25519Signer.from_file(tmp_path / "o.key")
    assert signer.keyid == kid
    assert "PRIVATE" not in repr(signer) and kid in repr(signer)
    signature = sign_payload(PAYLOAD_TYPE, RECORD, signer)
    assert verify_signature(PAYLOAD_TYPE, RECORD, signature, load_public_key(tmp_path / "o.pub"))


def test_file_backed_signer_refuses_world_readable_key(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "o.key", tmp_path / "o.pub")
    (tmp_path / "o.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Ed25519Signer.from_file(tmp_path / "o.key")


def _valid_doc(officer: Ed25519PrivateKey) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_envelope(officer).dumps())
    return doc


def _load(doc: Any) -> Envelope:
    return Envelope.loads(json.dumps(doc).encode(), source="rec.dsse.json")


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d.pop("payload"), "payload", "missing"),
        (lambda d: d.pop("payloadType"), "payloadType", "missing"),
        (lambda d: d.pop("signatures"), "signatures", "missing"),
        (lambda d: d.update(extra=1), "extra", "unknown field"),
        (lambda d: d.update(payload="not base64!"), "payload", "not valid base64"),
        (lambda d: d.update(payload="QR=="), "payload", "not canonical base64"),
        (lambda d: d.update(payload=42), "payload", "expected a string, got an integer"),
        (lambda d: d.update(payloadType=""), "payloadType", "must not be empty"),
        (lambda d: d.update(signatures={}), "signatures", "expected an array, got an object"),
        (lambda d: d["signatures"].append("sig"), "signatures[1]", "expected an object"),
        (lambda d: d["signatures"][0].pop("sig"), "signatures[0].sig", "missing"),
        (lambda d: d["signatures"][0].pop("keyid"), "signatures[0].keyid", "missing"),
        (lambda d: d["signatures"][0].update(keyid=""), "signatures[0].keyid", "must not be empty"),
        (lambda d: d["signatures"][0].update(sig="@@@@"), "signatures[0].sig", "not valid base64"),
        (lambda d: d["signatures"][0].update(sig=None), "signatures[0].sig", "got null"),
        (lambda d: d["signatures"][0].update(cert="x"), "signatures[0].cert", "unknown field"),
    ],
)
def test_malformed_envelope_refused_with_the_field_named(
    officer: Ed25519PrivateKey, mutate: Any, field: str, problem: str
) -> None:
    doc = _valid_doc(officer)
    mutate(doc)
    with pytest.raises(RecordFileError) as caught:
        _load(doc)
    assert caught.value.file == "rec.dsse.json"
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_envelope_with_duplicate_payload_key_refused(officer: Ed25519PrivateKey) -> None:
    doc = _valid_doc(officer)
    other = base64.b64encode(b'{"version":4}').decode()
    text = json.dumps(doc)[:-1] + f', "payload": "{other}"}}'
    with pytest.raises(RecordFileError) as caught:
        Envelope.loads(text.encode(), source="rec.dsse.json")
    assert caught.value.field == "payload"
    assert "duplicate key" in caught.value.problem


def test_envelope_that_is_not_an_object_refused() -> None:
    with pytest.raises(RecordFileError, match="expected an object, got an array"):
        Envelope.loads(b"[]", source="rec.dsse.json")


def test_url_safe_base64_payload_is_accepted(officer: Ed25519PrivateKey) -> None:
    payload = b"\xfb\xff\xfe" * 5  # encodes with '+' and '/' in the standard alphabet
    envelope = sign_envelope(Envelope(payload_type=PAYLOAD_TYPE, payload=payload), officer)
    doc = envelope.to_json()
    doc["payload"] = base64.urlsafe_b64encode(payload).decode()
    assert "-" in doc["payload"] or "_" in doc["payload"]
    again = _load(doc)
    assert again.payload == payload
    assert verified_keyids(again, [officer.public_key()]) == {key_id(officer.public_key())}


def test_unsigned_envelope_round_trips() -> None:
    envelope = Envelope(payload_type=PAYLOAD_TYPE, payload=RECORD)
    assert Envelope.loads(envelope.dumps(), source="x") == envelope
