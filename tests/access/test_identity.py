"""Identity comes from the operator's registered key and a signed challenge, not a typed name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.access.identity import (
    AUTH_PAYLOAD_TYPE,
    KEY_FILE_ENV,
    authenticate,
    new_challenge,
    verify_challenge,
)
from orchestrator.app import build_app
from orchestrator.errors import AccessDeniedError, KeyFileError
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair, load_private_key, public_pem
from orchestrator.intake.registry import Role
from orchestrator.record.dsse import PAYLOAD_TYPE, Ed25519Signer, sign_payload
from orchestrator.settings import load_settings
from orchestrator.store.models import KeyRow
from tests.access.test_lab import Lab, build_lab, copy_lab


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    built = build_lab(tmp_path_factory.mktemp("template"))
    built.rio.close()
    return built


@pytest.fixture
def lab(template: Lab, tmp_path: Path) -> Iterator[Lab]:
    built = copy_lab(template, tmp_path)
    try:
        yield built
    finally:
        built.rio.close()


def test_registered_key_authenticates_its_owner(lab: Lab) -> None:
    person = authenticate(lab.rio, lab.keys["officer-a"])
    assert (person.name, person.role) == ("officer-a", Role.OFFICER)


def test_key_file_defaults_to_rio_key_file(lab: Lab) -> None:
    env = {"RIO_HOME": str(lab.rio.settings.home), KEY_FILE_ENV: str(lab.keys["tech-b"])}
    rio = build_app(load_settings(env))
    try:
        assert authenticate(rio).name == "tech-b"
    finally:
        rio.close()


def test_refused_without_any_key_file(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings are read once: a variable set after they were loaded changes nothing.
    assert lab.rio.settings.key_file is None
    monkeypatch.setenv(KEY_FILE_ENV, str(lab.keys["tech-b"]))
    with pytest.raises(KeyFileError, match=KEY_FILE_ENV):
        authenticate(lab.rio)


def test_refused_when_key_is_not_registered(lab: Lab, tmp_path: Path) -> None:
    generate_keypair(tmp_path / "stranger.key", tmp_path / "stranger.pub")
    with pytest.raises(AccessDeniedError, match="not registered"):
        authenticate(lab.rio, tmp_path / "stranger.key")


def test_refused_when_key_is_revoked(lab: Lab) -> None:
    kid = Ed25519Signer.from_file(lab.keys["officer-a"]).keyid
    with lab.rio.db.session() as s:
        registry.revoke_key(s, kid, when=lab.rio.clock.now())
    with pytest.raises(AccessDeniedError, match="revoked"):
        authenticate(lab.rio, lab.keys["officer-a"])


def test_refused_when_key_has_expired(lab: Lab) -> None:
    kid = Ed25519Signer.from_file(lab.keys["auditor-u"]).keyid
    with lab.rio.db.session() as s:
        row = s.get(KeyRow, kid)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(AccessDeniedError, match="expired"):
        authenticate(lab.rio, lab.keys["auditor-u"])


def test_refused_when_person_is_revoked(lab: Lab) -> None:
    with lab.rio.db.session() as s:
        registry.revoke_person(s, "tech-a", when=lab.rio.clock.now())
    with pytest.raises(AccessDeniedError, match="tech-a, revoked"):
        authenticate(lab.rio, lab.keys["tech-a"])


def test_refused_when_key_belongs_to_another_person_than_claimed(lab: Lab) -> None:
    with pytest.raises(AccessDeniedError, match="belongs to tech-b, not to officer-a"):
        authenticate(lab.rio, lab.keys["tech-b"], claimed="officer-a")


def test_refused_when_key_file_is_readable_by_others(lab: Lab) -> None:
    os.chmod(lab.keys["officer-b"], 0o644)
    with pytest.raises(KeyFileError, match="group or others"):
        authenticate(lab.rio, lab.keys["officer-b"])


def test_refused_when_registry_row_holds_another_key_under_this_id(lab: Lab) -> None:
    # An edited database pairs officer-a's key id with tech-b's public key.
    kid = Ed25519Signer.from_file(lab.keys["officer-a"]).keyid
    with lab.rio.db.session() as s:
        row = s.get(KeyRow, kid)
        assert row is not None
        row.public_pem = public_pem(load_private_key(lab.keys["tech-b"]))
    with pytest.raises(AccessDeniedError, match="does not verify"):
        authenticate(lab.rio, lab.keys["officer-a"])


def test_stale_challenge_refused(lab: Lab) -> None:
    signer = Ed25519Signer.from_file(lab.keys["officer-a"])
    issued = datetime.now(UTC) - timedelta(minutes=5)
    challenge = new_challenge(now=issued)
    signature = sign_payload(AUTH_PAYLOAD_TYPE, challenge.to_bytes(), signer)
    with lab.rio.db.session() as s, pytest.raises(AccessDeniedError, match="stale"):
        verify_challenge(s, challenge, signature, now=lab.rio.clock.now())


def test_challenge_for_another_host_refused(lab: Lab) -> None:
    signer = Ed25519Signer.from_file(lab.keys["officer-a"])
    challenge = new_challenge(host="elsewhere.invalid", now=lab.rio.clock.now())
    signature = sign_payload(AUTH_PAYLOAD_TYPE, challenge.to_bytes(), signer)
    with lab.rio.db.session() as s, pytest.raises(AccessDeniedError, match="another host"):
        verify_challenge(s, challenge, signature, now=lab.rio.clock.now())


def test_signature_of_another_payload_type_does_not_authenticate(lab: Lab) -> None:
    # A record signature over the challenge bytes must not count as a login.
    signer = Ed25519Signer.from_file(lab.keys["officer-a"])
    challenge = new_challenge(now=lab.rio.clock.now())
    signature = sign_payload(PAYLOAD_TYPE, challenge.to_bytes(), signer)
    with lab.rio.db.session() as s, pytest.raises(AccessDeniedError, match="does not verify"):
        verify_challenge(s, challenge, signature, now=lab.rio.clock.now())


def test_each_challenge_is_fresh() -> None:
    now = datetime.now(UTC)
    assert new_challenge(now=now).nonce != new_challenge(now=now).nonce
