"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InputError, RecordFileError, VerificationError
from orchestrator.ledger import checkpoint as checkpoint_module
from orchestrator.ledger.checkpoint import (
    Checkpoint,
    NoteSignature,
    add_signature,
    checkpoint_body,
    key_hash,
    parse_checkpoint_note,
    run_origin,
    sign_checkpoint,
    verifier_key,
    verify_checkpoint,
)
from orchestrator.ledger.merkle import leaf_hash, root_from_leaf_hashes

# Fixed seeds keep the notes byte-identical from run to run (Ed25519 signing is deterministic).
LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ORIGIN = run_origin("2024-0001")
KEY_NAME = ORIGIN
ROOT = root_from_leaf_hashes(leaf_hash(bytes([i])) for i in range(7))[1]
CP = Checkpoint(origin=ORIGIN, size=7, root=ROOT)


def _signed() -> str:
    return sign_checkpoint(CP, LOG_KEY, KEY_NAME)


def _replace_body_line(note: str, index: int, new: str) -> str:
    body, sigs = note.split("\n\n", 1)
    lines = body.split("\n")
    lines[index] = new
    return "\n".join(lines) + "\n\n" + sigs


def test_body_is_origin_size_base64_root_lines() -> None:
    want = f"rio/2024-0001\n7\n{base64.b64encode(ROOT).decode()}\n".encode()
    assert checkpoint_body(CP) == want


def test_signed_note_has_em_dash_line_with_key_hash_and_signature_over_body() -> None:
    note = _signed()
    body, sig_block = note.split("\n\n")
    assert (body + "\n").encode() == checkpoint_body(CP)
    prefix, name, blob_b64 = sig_block.rstrip("\n").split(" ")
    assert prefix == "\u2014"
    assert name == KEY_NAME
    blob = base64.b64decode(blob_b64)
    raw_public = LOG_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    want_hash = hashlib.sha256(KEY_NAME.encode() + b"\n\x01" + raw_public).digest()[:4]
    assert blob[:4] == want_hash == key_hash(KEY_NAME, LOG_KEY.public_key())
    LOG_KEY.public_key().verify(blob[4:], checkpoint_body(CP))  # raises if wrong


def test_round_trip_verifies_and_returns_the_checkpoint() -> None:
    note = _signed()
    assert verify_checkpoint(note, LOG_KEY.public_key(), KEY_NAME) == CP
    parsed, sigs = parse_checkpoint_note(note)
    assert parsed == CP
    assert [s.key_name for s in sigs] == [KEY_NAME]


def test_empty_log_checkpoint_round_trips() -> None:
    empty = Checkpoint(origin=ORIGIN, size=0, root=hashlib.sha256(b"").digest())
    note = sign_checkpoint(empty, LOG_KEY, KEY_NAME)
    assert verify_checkpoint(note, LOG_KEY.public_key(), KEY_NAME) == empty


def test_extension_lines_are_kept_and_signed() -> None:
    cp = Checkpoint(origin=ORIGIN, size=7, root=ROOT, extensions=("ext one", "ext-two"))
    note = sign_checkpoint(cp, LOG_KEY, KEY_NAME)
    assert verify_checkpoint(note, LOG_KEY.public_key(), KEY_NAME) == cp
    tampered = note.replace("ext-two", "ext-2")
    with pytest.raises(VerificationError, match="bad signature"):
        verify_checkpoint(tampered, LOG_KEY.public_key(), KEY_NAME)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (0, "rio/2024-0002"),
        (1, "8"),
        (1, "6"),
        (2, base64.b64encode(bytes(32)).decode()),
    ],
    ids=["origin", "size-up", "size-down", "root"],
)
def test_verification_fails_when_body_is_altered(line: int, value: str) -> None:
    tampered = _replace_body_line(_signed(), line, value)
    parse_checkpoint_note(tampered)  # still well-formed: it is the signature that catches it
    with pytest.raises(VerificationError, match="bad signature"):
        verify_checkpoint(tampered, LOG_KEY.public_key(), KEY_NAME)


def test_verification_fails_when_signature_bit_flips() -> None:
    note = _signed()
    body, sig_line = note.split("\n\n")
    dash, name, blob_b64 = sig_line.rstrip("\n").split(" ")
    blob = bytearray(base64.b64decode(blob_b64))
    blob[-1] ^= 1
    tampered = f"{body}\n\n{dash} {name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(VerificationError, match="bad signature"):
        verify_checkpoint(tampered, LOG_KEY.public_key(), KEY_NAME)


def test_verification_fails_with_wrong_key() -> None:
    with pytest.raises(VerificationError, match="no signature by key"):
        verify_checkpoint(_signed(), OTHER_KEY.public_key(), KEY_NAME)


def test_verification_fails_when_signed_by_another_key_under_the_trusted_name() -> None:
    forged = sign_checkpoint(CP, OTHER_KEY, KEY_NAME)
    with pytest.raises(VerificationError, match="no signature by key"):
        verify_checkpoint(forged, LOG_KEY.public_key(), KEY_NAME)


def test_verification_fails_when_only_another_key_name_signed() -> None:
    note = sign_checkpoint(CP, LOG_KEY, "witness.example/w1")
    with pytest.raises(VerificationError, match="no signature by key"):
        verify_checkpoint(note, LOG_KEY.public_key(), KEY_NAME)


def test_signature_by_another_key_name_is_ignored() -> None:
    note = add_signature(_signed(), OTHER_KEY, "witness.example/w1")
    _, sigs = parse_checkpoint_note(note)
    assert [s.key_name for s in sigs] == [KEY_NAME, "witness.example/w1"]
    assert verify_checkpoint(note, LOG_KEY.public_key(), KEY_NAME) == CP
    assert verify_checkpoint(note, OTHER_KEY.public_key(), "witness.example/w1") == CP


def test_unverifiable_signature_by_unknown_key_is_ignored() -> None:
    junk = base64.b64encode(b"\xde\xad\xbe\xef" + bytes(64)).decode()
    note = f"{_signed()}\u2014 someone.else {junk}\n"
    assert verify_checkpoint(note, LOG_KEY.public_key(), KEY_NAME) == CP


def test_first_signature_by_trusted_key_decides() -> None:
    good = _signed()
    body, good_line = good.split("\n\n")
    dash, name, blob_b64 = good_line.rstrip("\n").split(" ")
    blob = bytearray(base64.b64decode(blob_b64))
    blob[5] ^= 0x80
    bad_line = f"{dash} {name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(VerificationError, match="bad signature"):
        verify_checkpoint(f"{body}\n\n{bad_line}{good_line}", LOG_KEY.public_key(), KEY_NAME)


def test_verification_fails_when_origin_is_not_the_expected_run() -> None:
    with pytest.raises(VerificationError, match="origin"):
        verify_checkpoint(_signed(), LOG_KEY.public_key(), KEY_NAME, origin=run_origin("2024-0002"))
    assert verify_checkpoint(_signed(), LOG_KEY.public_key(), KEY_NAME, origin=ORIGIN) == CP


def test_verification_of_malformed_note_raises_verification_error_chained() -> None:
    with pytest.raises(VerificationError, match="malformed") as info:
        verify_checkpoint("not a note", LOG_KEY.public_key(), KEY_NAME)
    assert isinstance(info.value.__cause__, RecordFileError)


def _sig_line() -> str:
    return _signed().split("\n\n")[1]


ROOT_B64 = base64.b64encode(ROOT).decode()

MALFORMED = {
    "no-blank-line": (f"{ORIGIN}\n7\n{ROOT_B64}\n", "text"),
    "no-signatures": (f"{ORIGIN}\n7\n{ROOT_B64}\n\n", "signatures"),
    "signature-without-newline": (
        f"{ORIGIN}\n7\n{ROOT_B64}\n\n" + "{sig_no_newline}",
        "signatures",
    ),
    "hyphen-not-em-dash": (f"{ORIGIN}\n7\n{ROOT_B64}\n\n- x AAAAAAAA\n", "signatures[0]"),
    "signature-extra-field": (
        f"{ORIGIN}\n7\n{ROOT_B64}\n\n\u2014 x AAAAAAAA extra\n",
        "signatures[0]",
    ),
    "signature-name-with-plus": (
        f"{ORIGIN}\n7\n{ROOT_B64}\n\n\u2014 a+b AAAAAAAA\n",
        "signatures[0]",
    ),
    "signature-not-base64": (f"{ORIGIN}\n7\n{ROOT_B64}\n\n\u2014 x !!!!\n", "signatures[0]"),
    "signature-too-short": (f"{ORIGIN}\n7\n{ROOT_B64}\n\n\u2014 x AAAAAA==\n", "signatures[0]"),
    "two-lines-only": (f"{ORIGIN}\n7\n\n" + "{sig}", "text"),
    "empty-origin": (f"\n7\n{ROOT_B64}\n\n" + "{sig}", "origin"),
    "size-leading-zero": (f"{ORIGIN}\n07\n{ROOT_B64}\n\n" + "{sig}", "size"),
    "size-negative": (f"{ORIGIN}\n-7\n{ROOT_B64}\n\n" + "{sig}", "size"),
    "size-non-ascii-digit": (f"{ORIGIN}\n\u0667\n{ROOT_B64}\n\n" + "{sig}", "size"),
    "size-over-64-bits": (f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n\n" + "{sig}", "size"),
    "root-not-base64": (f"{ORIGIN}\n7\n{ROOT_B64[:-2]}!=\n\n" + "{sig}", "root"),
    "root-urlsafe-base64": (
        f"{ORIGIN}\n7\n{base64.urlsafe_b64encode(bytes([0xFB] * 32)).decode()}\n\n" + "{sig}",
        "root",
    ),
    "root-wrong-length": (
        f"{ORIGIN}\n7\n{base64.b64encode(bytes(20)).decode()}\n\n" + "{sig}",
        "root",
    ),
    "carriage-return": (f"{ORIGIN}\r\n7\n{ROOT_B64}\n\n" + "{sig}", "text"),
    "tab-in-origin": (f"rio/\t1\n7\n{ROOT_B64}\n\n" + "{sig}", "text"),
    "empty-extension-line-in-body": (f"{ORIGIN}\n7\n{ROOT_B64}\n\nx\n\n" + "{sig}", None),
}


@pytest.mark.parametrize(("case"), sorted(MALFORMED))
def test_malformed_note_raises_record_file_error(case: str) -> None:
    template, field = MALFORMED[case]
    line = _sig_line()
    text = template.replace("{sig}", line).replace("{sig_no_newline}", line.rstrip("\n"))
    with pytest.raises(RecordFileError) as info:
        parse_checkpoint_note(text)
    assert info.value.file == "checkpoint"
    if field is not None:
        assert info.value.field == field


def test_note_with_too_many_signatures_is_malformed() -> None:
    line = _sig_line()
    text = _signed() + line * checkpoint_module.MAX_SIGNATURES
    with pytest.raises(RecordFileError, match="more than 100"):
        parse_checkpoint_note(text)


def test_note_that_is_not_text_is_malformed() -> None:
    with pytest.raises(RecordFileError):
        parse_checkpoint_note(b"rio/x\n1\n" + b"\n")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"origin": "", "size": 1, "root": ROOT}, "origin"),
        ({"origin": "rio/a\nb", "size": 1, "root": ROOT}, "origin"),
        ({"origin": ORIGIN, "size": -1, "root": ROOT}, "size"),
        ({"origin": ORIGIN, "size": True, "root": ROOT}, "size"),
        ({"origin": ORIGIN, "size": 2**64, "root": ROOT}, "size"),
        ({"origin": ORIGIN, "size": 1, "root": ROOT[:31]}, "root"),
        ({"origin": ORIGIN, "size": 1, "root": ROOT, "extensions": ("",)}, "extensions[0]"),
    ],
    ids=["empty-origin", "newline-origin", "negative", "bool", "too-big", "short-root", "ext"],
)
def test_checkpoint_refuses_values_that_cannot_be_serialised(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(RecordFileError) as info:
        Checkpoint(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("name", ["", "has space", "a+b", "tab\tname"])
def test_signing_refused_for_invalid_key_name(name: str) -> None:
    with pytest.raises(InputError, match="key name"):
        sign_checkpoint(CP, LOG_KEY, name)


def test_run_origin_refuses_blank_run_id() -> None:
    with pytest.raises(InputError, match="run id"):
        run_origin("a b")


def test_verifier_key_names_key_hash_and_public_key() -> None:
    vkey = verifier_key(KEY_NAME, LOG_KEY.public_key())
    name, hash_hex, key_b64 = vkey.split("+", 2)
    assert name == KEY_NAME
    assert bytes.fromhex(hash_hex) == key_hash(KEY_NAME, LOG_KEY.public_key())
    raw_public = LOG_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert base64.b64decode(key_b64) == b"\x01" + raw_public


def test_parsed_signature_splits_key_hash_from_signature() -> None:
    _, (sig,) = parse_checkpoint_note(_signed())
    assert sig == NoteSignature(
        key_name=KEY_NAME,
        key_hash=key_hash(KEY_NAME, LOG_KEY.public_key()),
        signature=LOG_KEY.sign(checkpoint_body(CP)),
    )


@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=40))
def test_a_note_or_origin_is_refused_for_exactly_the_control_characters(text: str) -> None:
    # C0 controls and DEL; a note may also hold newlines (its line breaks).
    assert checkpoint_module._has_control(text) == any(ch < " " or ch == "\x7f" for ch in text)
    note_refused = any(ch < " " and ch != "\n" for ch in text) or "\x7f" in text
    assert bool(checkpoint_module._CONTROL_BUT_NEWLINE(text)) == note_refused
