"""Encryption at rest: confidential evidence stays confidential (MPS Order 151 Art. 5, 17)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import traceback
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import DecryptionError, InputError, KeyFileError, StoreError
from orchestrator.store import crypto
from orchestrator.store.crypto import (
    FieldCipher,
    MasterKey,
    MemoryKeyStore,
    WrappedKey,
    blob_key_ref,
    create_master_key_file,
    decrypt_field,
    encrypt_field,
    generate_master_key,
    load_master_key,
    new_data_key,
    rewrap,
    unwrap_data_key,
    wrap_data_key,
)

SENTINEL = b"SENTINEL-open-port-8443-admin-panel"
WHERE = {"table": "findings", "row": "f-0001", "column": "evidence"}


def _flip(blob: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(blob)
    out[index] ^= 1 << bit
    return bytes(out)


def _full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _secrets_of(*keys: bytes) -> list[str]:
    """Every printable form a key could leak as."""
    forms: list[str] = []
    for key in keys:
        forms += [key.hex(), base64.b64encode(key).decode(), repr(key)[2:-1]]
    return forms


# --- public surface -------------------------------------------------------------------------


def test_exported_names_are_the_intended_api() -> None:
    assert set(crypto.__all__) == {
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
    }


# --- master key -----------------------------------------------------------------------------


def test_master_key_id_is_a_prefix_of_the_labelled_sha256() -> None:
    key = bytes(range(32))
    expected = hashlib.sha256(b"rio-master-key-id:" + key).hexdigest()[:16]
    assert MasterKey.from_key(key).key_id == expected


def test_master_key_repr_and_str_hide_key_material() -> None:
    master = generate_master_key()
    for text in (repr(master), str(master), f"{master}", f"{master!r}"):
        assert master.key_id in text
        for secret in _secrets_of(master.key):
            assert secret not in text


def test_master_key_refused_when_key_id_does_not_match() -> None:
    with pytest.raises(InputError, match="key id does not match"):
        MasterKey(key_id="0" * 16, key=bytes(32))


def test_key_file_created_with_mode_0600_and_one_base64_line(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master = create_master_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text("ascii")
    assert text.count("\n") == 1 and text.endswith("\n")
    assert base64.b64decode(text.strip(), validate=True) == master.key
    assert load_master_key(file=path, env_value=None) == master


def test_key_file_mode_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_master_key_file(tmp_path / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_key_file_creation_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = create_master_key_file(path)
    with pytest.raises(KeyFileError, match="already exists"):
        create_master_key_file(path)
    assert load_master_key(file=path, env_value=None) == first


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_key_file_refused_when_group_or_others_have_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    master = create_master_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}") as info:
        load_master_key(file=path, env_value=None)
    assert str(path) in str(info.value)
    for secret in _secrets_of(master.key):
        assert secret not in _full_text(info.value)


def test_key_file_readable_by_owner_only_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master = create_master_key_file(path)
    path.chmod(0o400)
    assert load_master_key(file=path, env_value=None) == master


def test_missing_key_file_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_master_key(file=tmp_path / "absent.key", env_value=None)


def test_key_file_that_is_a_directory_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_master_key(file=tmp_path / "dir.key", env_value=None)


def _write_key_text(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, text.encode("ascii"))
    os.close(fd)
    return path


def test_key_file_of_wrong_length_refused_without_echoing_it(tmp_path: Path) -> None:
    short = base64.b64encode(b"k" * 31).decode()
    path = _write_key_text(tmp_path / "short.key", short + "\n")
    with pytest.raises(KeyFileError, match="must be 32 bytes, got 31") as info:
        load_master_key(file=path, env_value=None)
    assert short not in _full_text(info.value)


def test_key_file_that_is_not_base64_refused_without_echoing_it(tmp_path: Path) -> None:
    garbage = "this-is-not-base64-SECRETISH!!"
    path = _write_key_text(tmp_path / "bad.key", garbage)
    with pytest.raises(KeyFileError, match="not valid base64") as info:
        load_master_key(file=path, env_value=None)
    assert garbage not in _full_text(info.value)


def test_env_master_key_overrides_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    from_file = create_master_key_file(path)
    from_env = generate_master_key()
    loaded = load_master_key(file=path, env_value=base64.b64encode(from_env.key).decode())
    assert loaded == from_env != from_file


def test_env_master_key_used_without_a_file() -> None:
    master = generate_master_key()
    env = base64.b64encode(master.key).decode() + "\n"
    assert load_master_key(file=None, env_value=env) == master


def test_empty_env_master_key_falls_back_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    master = create_master_key_file(path)
    assert load_master_key(file=path, env_value="") == master


def test_bad_env_master_key_refused_naming_the_variable_not_the_value() -> None:
    value = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(KeyFileError, match="RIO_MASTER_KEY: master key must be 32 bytes") as info:
        load_master_key(file=None, env_value=value)
    assert value not in _full_text(info.value)


def test_no_master_key_source_refused() -> None:
    with pytest.raises(KeyFileError, match="RIO_MASTER_KEY"):
        load_master_key(file=None, env_value=None)


# --- data keys ------------------------------------------------------------------------------


def test_data_key_round_trips_through_wrapping() -> None:
    master, data_key = generate_master_key(), new_data_key()
    wrapped = wrap_data_key(master, "run-1", data_key)
    assert wrapped.master_key_id == master.key_id
    assert data_key not in wrapped.to_bytes()
    assert unwrap_data_key(master, "run-1", WrappedKey.from_bytes(wrapped.to_bytes())) == data_key


def test_data_keys_are_fresh_and_wrapping_uses_fresh_nonces() -> None:
    master, data_key = generate_master_key(), new_data_key()
    assert len(data_key) == 32 and data_key != new_data_key()
    assert wrap_data_key(master, "r", data_key).nonce != wrap_data_key(master, "r", data_key).nonce


def test_unwrap_with_another_master_key_names_both_key_ids() -> None:
    right, wrong = generate_master_key(), generate_master_key()
    wrapped = wrap_data_key(right, "run-1", new_data_key())
    with pytest.raises(DecryptionError, match="data key for run run-1: wrong master key") as info:
        unwrap_data_key(wrong, "run-1", wrapped)
    assert right.key_id in str(info.value) and wrong.key_id in str(info.value)


def test_unwrap_of_tampered_ciphertext_says_tampered() -> None:
    master = generate_master_key()
    wrapped = wrap_data_key(master, "run-1", new_data_key())
    bad = WrappedKey(
        master_key_id=wrapped.master_key_id,
        nonce=wrapped.nonce,
        ciphertext=_flip(wrapped.ciphertext, 5),
    )
    with pytest.raises(DecryptionError, match="data key for run run-1: tampered"):
        unwrap_data_key(master, "run-1", bad)


def test_wrapped_key_refused_for_another_run() -> None:
    master = generate_master_key()
    wrapped = wrap_data_key(master, "run-1", new_data_key())
    with pytest.raises(DecryptionError, match="data key for run run-2: tampered"):
        unwrap_data_key(master, "run-2", wrapped)


def test_wrapped_key_with_forged_key_id_fails_authentication() -> None:
    # The key id is bound into the associated data: relabelling a blob does not help.
    master, other = generate_master_key(), generate_master_key()
    wrapped = wrap_data_key(other, "run-1", new_data_key())
    forged = WrappedKey(
        master_key_id=master.key_id, nonce=wrapped.nonce, ciphertext=wrapped.ciphertext
    )
    with pytest.raises(DecryptionError, match="tampered"):
        unwrap_data_key(master, "run-1", forged)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02" + bytes(78), b"\x01\x10" + b"0" * 16 + bytes(59), b"\x01\x10" + b"\xff" * 76],
    ids=["empty", "version", "length", "key-id"],
)
def test_malformed_wrapped_key_bytes_refused(data: bytes) -> None:
    with pytest.raises(DecryptionError, match="wrapped data key"):
        WrappedKey.from_bytes(data)


def test_rewrap_moves_data_key_to_new_master_without_changing_it() -> None:
    old, new, data_key = generate_master_key(), generate_master_key(), new_data_key()
    moved = rewrap(old, new, "run-1", wrap_data_key(old, "run-1", data_key))
    assert moved.master_key_id == new.key_id
    assert unwrap_data_key(new, "run-1", moved) == data_key
    with pytest.raises(DecryptionError, match="wrong master key"):
        unwrap_data_key(old, "run-1", moved)


# --- fields ---------------------------------------------------------------------------------


def test_field_round_trips_in_its_own_place() -> None:
    key = new_data_key()
    blob = encrypt_field(key, "run-7", SENTINEL, **WHERE)
    assert SENTINEL not in blob
    assert decrypt_field(key, blob, **WHERE) == SENTINEL


def test_field_blob_layout_is_version_key_ref_nonce_ciphertext() -> None:
    blob = encrypt_field(new_data_key(), "run-7", b"abc", **WHERE)
    assert blob[0] == 0x01
    assert blob[1:3] == (5).to_bytes(2, "big") and blob[3:8] == b"run-7"
    assert len(blob) == 1 + 2 + 5 + 12 + 3 + 16
    assert blob_key_ref(blob) == "run-7"


def test_same_plaintext_encrypts_differently_each_time() -> None:
    key = new_data_key()
    assert encrypt_field(key, "r", b"x", **WHERE) != encrypt_field(key, "r", b"x", **WHERE)


def test_field_unreadable_with_another_data_key() -> None:
    blob = encrypt_field(new_data_key(), "run-7", SENTINEL, **WHERE)
    with pytest.raises(DecryptionError, match=re.escape("findings.evidence of row f-0001")) as info:
        decrypt_field(new_data_key(), blob, **WHERE)
    assert SENTINEL.decode() not in _full_text(info.value)


@pytest.mark.parametrize(
    "index",
    [0, 1, 2, 3, 7, 8, 12, 19, 20, 25, -17, -16, -8, -1],
    ids=lambda i: f"byte{i}",
)
def test_field_refused_when_any_byte_is_flipped(index: int) -> None:
    key = new_data_key()
    blob = encrypt_field(key, "run-7", SENTINEL, **WHERE)
    with pytest.raises(DecryptionError) as info:
        decrypt_field(key, _flip(blob, index), **WHERE)
    assert "findings.evidence" in str(info.value)
    assert SENTINEL.decode() not in _full_text(info.value)


@pytest.mark.parametrize(
    "moved",
    [
        {"row": "f-0002"},
        {"column": "summary"},
        {"table": "findings_archive"},
        # Length prefixes: the same letters split differently are another place.
        {"table": "findingse", "column": "vidence"},
    ],
    ids=["row", "column", "table", "boundary"],
)
def test_field_refused_when_moved_to_another_place(moved: dict[str, str]) -> None:
    key = new_data_key()
    blob = encrypt_field(key, "run-7", SENTINEL, **WHERE)
    place = {**WHERE, **moved}
    with pytest.raises(DecryptionError, match="moved from another") as info:
        decrypt_field(key, blob, **place)
    assert f"{place['table']}.{place['column']} of row {place['row']}" in str(info.value)
    assert SENTINEL.decode() not in _full_text(info.value)
    for secret in _secrets_of(key):
        assert secret not in _full_text(info.value)


def test_field_refused_when_key_ref_is_rewritten() -> None:
    key = new_data_key()
    blob = encrypt_field(key, "run-7", SENTINEL, **WHERE)
    relabelled = blob[:3] + b"run-8" + blob[8:]
    assert blob_key_ref(relabelled) == "run-8"
    with pytest.raises(DecryptionError):
        decrypt_field(key, relabelled, **WHERE)


@pytest.mark.parametrize(
    "blob", [b"", b"\x01\x00", b"\x01\x00\x05run-7", b"\x01\x00\x00" + bytes(40)]
)
def test_truncated_or_empty_ref_blob_refused(blob: bytes) -> None:
    with pytest.raises(DecryptionError, match="malformed"):
        decrypt_field(new_data_key(), blob, **WHERE)
    with pytest.raises(DecryptionError, match="malformed"):
        blob_key_ref(blob)


def test_unknown_blob_version_refused() -> None:
    key = new_data_key()
    blob = b"\x02" + encrypt_field(key, "r", b"x", **WHERE)[1:]
    with pytest.raises(DecryptionError, match="unsupported encrypted blob version 0x02"):
        decrypt_field(key, blob, **WHERE)


def test_empty_place_names_refused_as_bad_input() -> None:
    with pytest.raises(InputError, match="row: must not be empty"):
        encrypt_field(new_data_key(), "r", b"x", table="t", row="", column="c")
    with pytest.raises(InputError, match="key_ref: must not be empty"):
        encrypt_field(new_data_key(), "", b"x", **WHERE)


def test_data_key_of_wrong_length_refused_as_bad_input() -> None:
    with pytest.raises(InputError, match="data key: must be 32 bytes, got 16"):
        encrypt_field(bytes(16), "r", b"x", **WHERE)


# --- FieldCipher ----------------------------------------------------------------------------


class CountingKeyStore(MemoryKeyStore):
    """Counts reads, to show that unwrapped data keys are cached."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_wrapped(self, run_id: str) -> WrappedKey | None:
        self.reads += 1
        return super().get_wrapped(run_id)


class FailingKeyStore(MemoryKeyStore):
    """Fails the n-th write, like a database that drops mid-rotation."""

    def __init__(self, fail_on_write: int) -> None:
        super().__init__()
        self.fail_on_write = fail_on_write
        self.writes = 0

    def put_wrapped(self, run_id: str, wrapped: WrappedKey) -> None:
        self.writes += 1
        if self.writes == self.fail_on_write:
            raise StoreError(f"data_keys: write for run {run_id} failed")
        super().put_wrapped(run_id, wrapped)


def _seal_runs(cipher: FieldCipher, runs: Iterable[str]) -> dict[str, bytes]:
    return {
        run: cipher.seal(run, SENTINEL + run.encode(), table="t", row=run, column="c")
        for run in runs
    }


def test_cipher_round_trips_across_instances_sharing_a_store() -> None:
    master, store = generate_master_key(), MemoryKeyStore()
    blob = FieldCipher(master, store).seal("run-1", SENTINEL, **WHERE)
    assert FieldCipher(master, store).open(blob, **WHERE) == SENTINEL
    assert [run for run, _ in store.all_wrapped()] == ["run-1"]


def test_cipher_uses_one_data_key_per_run() -> None:
    store = MemoryKeyStore()
    cipher = FieldCipher(generate_master_key(), store)
    _seal_runs(cipher, ["a", "b", "a", "b", "c"])
    wrapped = dict(store.all_wrapped())
    assert sorted(wrapped) == ["a", "b", "c"]
    assert len({w.ciphertext for w in wrapped.values()}) == 3


def test_cipher_caches_unwrapped_data_keys() -> None:
    master, store = generate_master_key(), CountingKeyStore()
    blob = FieldCipher(master, store).seal("run-1", SENTINEL, **WHERE)
    reader = FieldCipher(master, store)
    store.reads = 0
    for _ in range(3):
        assert reader.open(blob, **WHERE) == SENTINEL
    assert store.reads == 1
    reader.forget()
    reader.open(blob, **WHERE)
    assert store.reads == 2


def test_cipher_ensure_key_stores_a_key_before_any_field() -> None:
    store = MemoryKeyStore()
    FieldCipher(generate_master_key(), store).ensure_key("run-1")
    assert store.get_wrapped("run-1") is not None


def test_cipher_open_refused_when_run_has_no_data_key() -> None:
    blob = encrypt_field(new_data_key(), "run-9", SENTINEL, **WHERE)
    cipher = FieldCipher(generate_master_key(), MemoryKeyStore())
    with pytest.raises(DecryptionError, match="no data key stored for run run-9") as info:
        cipher.open(blob, **WHERE)
    assert SENTINEL.decode() not in _full_text(info.value)


def test_cipher_open_with_wrong_master_key_says_so_without_plaintext() -> None:
    store = MemoryKeyStore()
    blob = FieldCipher(generate_master_key(), store).seal("run-1", SENTINEL, **WHERE)
    wrong = generate_master_key()
    with pytest.raises(DecryptionError, match="wrong master key") as info:
        FieldCipher(wrong, store).open(blob, **WHERE)
    assert SENTINEL.decode() not in _full_text(info.value)
    for secret in _secrets_of(wrong.key):
        assert secret not in _full_text(info.value)


def test_rotation_keeps_every_blob_readable_with_new_master_only() -> None:
    old, new, store = generate_master_key(), generate_master_key(), MemoryKeyStore()
    cipher = FieldCipher(old, store)
    blobs = _seal_runs(cipher, [f"run-{i}" for i in range(5)])
    before = dict(store.all_wrapped())

    assert cipher.rotate_master(new) == 5
    assert cipher.master_key_id == new.key_id
    after = dict(store.all_wrapped())
    assert all(w.master_key_id == new.key_id for w in after.values())
    # Evidence was not re-encrypted: the data keys are the same, only their wrapping changed.
    for run in before:
        assert unwrap_data_key(old, run, before[run]) == unwrap_data_key(new, run, after[run])

    for run, blob in blobs.items():
        place = {"table": "t", "row": run, "column": "c"}
        assert FieldCipher(new, store).open(blob, **place) == SENTINEL + run.encode()
        assert cipher.open(blob, **place) == SENTINEL + run.encode()
        with pytest.raises(DecryptionError, match="wrong master key"):
            FieldCipher(old, store).open(blob, **place)


def test_rotation_writes_nothing_when_any_data_key_fails_to_unwrap() -> None:
    old, new, stranger = generate_master_key(), generate_master_key(), generate_master_key()
    store = MemoryKeyStore()
    _seal_runs(FieldCipher(old, store), ["a", "b"])
    store.put_wrapped("z", wrap_data_key(stranger, "z", new_data_key()))
    before = dict(store.all_wrapped())
    cipher = FieldCipher(old, store)
    with pytest.raises(DecryptionError, match="data key for run z: wrong master key"):
        cipher.rotate_master(new)
    assert dict(store.all_wrapped()) == before
    assert cipher.master_key_id == old.key_id


def test_rotation_interrupted_by_store_failure_can_be_run_again() -> None:
    old, new = generate_master_key(), generate_master_key()
    store = FailingKeyStore(fail_on_write=6)  # 4 writes create keys; the 2nd rotation write fails
    cipher = FieldCipher(old, store)
    blobs = _seal_runs(cipher, ["a", "b", "c", "d"])
    with pytest.raises(StoreError):
        cipher.rotate_master(new)
    assert cipher.master_key_id == old.key_id
    assert {w.master_key_id for _, w in store.all_wrapped()} == {old.key_id, new.key_id}

    assert cipher.rotate_master(new) == 3
    reader = FieldCipher(new, store)
    for run, blob in blobs.items():
        assert reader.open(blob, table="t", row=run, column="c") == SENTINEL + run.encode()


def test_rotation_to_the_same_master_rewrites_nothing() -> None:
    master, store = generate_master_key(), MemoryKeyStore()
    cipher = FieldCipher(master, store)
    _seal_runs(cipher, ["a", "b"])
    before = dict(store.all_wrapped())
    assert cipher.rotate_master(master) == 0
    assert dict(store.all_wrapped()) == before


# --- properties -----------------------------------------------------------------------------

names = st.text(min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(plaintext=st.binary(max_size=512), run=names, table=names, row=names, column=names)
def test_any_field_round_trips(
    plaintext: bytes, run: str, table: str, row: str, column: str
) -> None:
    key = new_data_key()
    blob = encrypt_field(key, run, plaintext, table=table, row=row, column=column)
    assert blob_key_ref(blob) == run
    assert decrypt_field(key, blob, table=table, row=row, column=column) == plaintext


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=64), run=names, data=st.data())
def test_any_single_bit_flip_in_a_field_blob_fails(
    plaintext: bytes, run: str, data: st.DataObject
) -> None:
    key = new_data_key()
    blob = encrypt_field(key, run, plaintext, **WHERE)
    index = data.draw(st.integers(0, len(blob) - 1), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    with pytest.raises(DecryptionError):
        decrypt_field(key, _flip(blob, index, bit), **WHERE)


@settings(max_examples=100, deadline=None)
@given(run=names, data=st.data())
def test_any_single_bit_flip_in_a_wrapped_key_fails(run: str, data: st.DataObject) -> None:
    master = generate_master_key()
    raw = wrap_data_key(master, run, new_data_key()).to_bytes()
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    with pytest.raises(DecryptionError):
        unwrap_data_key(master, run, WrappedKey.from_bytes(_flip(raw, index, bit)))
