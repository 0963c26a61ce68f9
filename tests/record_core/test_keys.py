"""Rules for rio's Ed25519 key files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from orchestrator.errors import KeyFileError
from orchestrator.intake.keys import (
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    public_pem,
)


def _pair(tmp_path: Path) -> tuple[Path, Path, str]:
    private_path = tmp_path / "officer.key"
    public_path = tmp_path / "officer.pub"
    return private_path, public_path, generate_keypair(private_path, public_path)


def _pem_body(path: Path) -> str:
    """The base64 lines of a PEM file: the key material that must never leak."""
    lines = path.read_text().splitlines()
    return "".join(line for line in lines if not line.startswith("-----"))


def test_generated_private_key_file_is_owner_only(tmp_path: Path) -> None:
    private_path, public_path, _ = _pair(tmp_path)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_generated_private_key_file_is_owner_only_even_with_permissive_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        private_path, _, _ = _pair(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600


def test_generated_key_round_trips_and_key_id_matches(tmp_path: Path) -> None:
    private_path, public_path, kid = _pair(tmp_path)
    private_key = load_private_key(private_path)
    public_key = load_public_key(public_path)
    assert key_id(public_key) == kid
    assert key_id(private_key.public_key()) == kid
    # Same key from the file and from PEM bytes (as the database would hand them over).
    assert key_id(load_public_key(public_path.read_bytes())) == kid
    assert public_pem(private_key) == public_path.read_text()


def test_key_id_is_sha256_of_der_subject_public_key_info() -> None:
    public_key = Ed25519PrivateKey.generate().public_key()
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hashlib.sha256(der).hexdigest()
    assert key_id(public_key) == expected
    assert len(expected) == 64 and expected == expected.lower()


def test_key_ids_differ_between_keys() -> None:
    first = Ed25519PrivateKey.generate().public_key()
    second = Ed25519PrivateKey.generate().public_key()
    assert key_id(first) != key_id(second)


def test_generate_refuses_to_overwrite_existing_private_key(tmp_path: Path) -> None:
    private_path, public_path, _ = _pair(tmp_path)
    before = private_path.read_bytes()
    public_path.unlink()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair(private_path, public_path)
    assert private_path.read_bytes() == before
    assert not public_path.exists()


def test_generate_refuses_to_overwrite_existing_public_key_and_leaves_no_private_key(
    tmp_path: Path,
) -> None:
    public_path = tmp_path / "officer.pub"
    public_path.write_text("keep me")
    private_path = tmp_path / "officer.key"
    with pytest.raises(KeyFileError, match=r"officer\.pub: already exists"):
        generate_keypair(private_path, public_path)
    assert not private_path.exists()
    assert public_path.read_text() == "keep me"


def test_generate_refuses_same_path_for_both_halves(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    with pytest.raises(KeyFileError, match="must differ"):
        generate_keypair(path, path)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_private_key_refused_when_group_or_world_can_read(tmp_path: Path, mode: int) -> None:
    private_path, _, _ = _pair(tmp_path)
    private_path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(private_path)
    message = str(caught.value)
    assert str(private_path) in message
    assert "chmod 600" in message
    assert _pem_body(private_path) not in message


def test_private_key_accepted_when_owner_read_only(tmp_path: Path) -> None:
    private_path, _, kid = _pair(tmp_path)
    private_path.chmod(0o400)
    assert key_id(load_private_key(private_path).public_key()) == kid


def test_missing_key_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"nope\.key: private key file does not exist"):
        load_private_key(tmp_path / "nope.key")
    with pytest.raises(KeyFileError, match=r"nope\.pub: public key file does not exist"):
        load_public_key(tmp_path / "nope.pub")


def test_non_pem_private_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"\x00\x01secret-ish bytes")
    with pytest.raises(KeyFileError, match=r"garbage\.key: not a PEM file") as caught:
        load_private_key(path)
    assert "secret-ish" not in str(caught.value)


def test_corrupt_pem_private_key_refused_without_quoting_it(tmp_path: Path) -> None:
    private_path, _, _ = _pair(tmp_path)
    text = private_path.read_text()
    body = _pem_body(private_path)
    private_path.write_text(text.replace(body[:20], "A" * 20))
    with pytest.raises(KeyFileError, match="not a valid PEM private key") as caught:
        load_private_key(private_path)
    assert body[20:40] not in str(caught.value)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def test_encrypted_private_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "enc.key"
    _write_private(
        path,
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        ),
    )
    with pytest.raises(KeyFileError, match=r"enc\.key: private key is encrypted"):
        load_private_key(path)


def test_non_ed25519_private_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.key"
    _write_private(
        path,
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    with pytest.raises(
        KeyFileError, match=r"ec\.key: holds a .* private key; rio keys are Ed25519"
    ):
        load_private_key(path)


def test_non_ed25519_public_key_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFileError, match="rio keys are Ed25519"):
        load_public_key(pem)


def test_private_key_given_where_public_key_expected_is_refused(tmp_path: Path) -> None:
    private_path, _, _ = _pair(tmp_path)
    with pytest.raises(KeyFileError, match="holds a private key where a public key") as caught:
        load_public_key(private_path.read_bytes())
    assert _pem_body(private_path) not in str(caught.value)


def test_public_key_given_where_private_key_expected_is_refused(tmp_path: Path) -> None:
    _, public_path, _ = _pair(tmp_path)
    public_path.chmod(0o600)
    with pytest.raises(KeyFileError, match="holds a public key"):
        load_private_key(public_path)


def test_non_pem_public_key_bytes_refused() -> None:
    with pytest.raises(KeyFileError, match="not a PEM file"):
        load_public_key(b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI")


def test_loaded_keys_are_ed25519(tmp_path: Path) -> None:
    private_path, public_path, _ = _pair(tmp_path)
    assert isinstance(load_private_key(private_path), Ed25519PrivateKey)
    assert isinstance(load_public_key(public_path), Ed25519PublicKey)


def test_public_key_given_as_the_private_key_is_named_so_without_chmod_advice(
    tmp_path: Path,
) -> None:
    # #19: `--key keys/li.pub` got "chmod 600" advice, which would not have helped.
    private_path, public_path, _ = _pair(tmp_path)
    public_path.chmod(0o644)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(public_path)
    message = str(caught.value)
    assert message.startswith(f"{public_path}: holds a public key")
    assert "private key" in message
    assert "chmod" not in message
    assert str(private_path) in message  # the private half beside it is named
