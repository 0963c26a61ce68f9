"""Logging in to the API: a stored, single-use challenge signed with the person's key."""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator.access.identity import AUTH_PAYLOAD_TYPE
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair
from orchestrator.record.dsse import Ed25519Signer, sign_payload
from tests.api.conftest import HOST, Api


async def _answer(api: Api, key_name: str, *, keyid_of: str | None = None) -> dict[str, str]:
    challenge = (await api.client.post("/api/v1/auth/challenge")).json()
    sig = sign_payload(
        AUTH_PAYLOAD_TYPE,
        challenge["challenge"].encode(),
        Ed25519Signer.from_file(api.key(key_name)),
    ).to_json()
    keyid = Ed25519Signer.from_file(api.key(keyid_of)).keyid if keyid_of else sig["keyid"]
    return {"nonce": challenge["nonce"], "keyid": keyid, "sig": sig["sig"]}


async def test_a_signed_challenge_opens_a_session_for_the_keys_owner(api: Api) -> None:
    token = await api.login("officer-b")
    me = await api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json() == {
        "name": "officer-b",
        "role": "officer",
        "organisation": "PSB",
        "vendor": None,
    }


async def test_challenge_names_this_server_and_expires_in_a_minute(api: Api) -> None:
    body = (await api.client.post("/api/v1/auth/challenge")).json()
    assert f'"host":"{HOST}"' in body["challenge"]
    assert body["payload_type"] == AUTH_PAYLOAD_TYPE
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=59) < expires - api.clock.now() <= timedelta(seconds=60)


async def test_request_without_a_token_is_401_problem_json(api: Api) -> None:
    response = await api.client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["type"] == "/problems/unauthenticated"
    assert problem["status"] == 401
    assert problem["instance"] == "/api/v1/auth/me"


async def test_challenge_answered_twice_is_refused_the_second_time(api: Api) -> None:
    answer = await _answer(api, "officer-a")
    assert (await api.client.post("/api/v1/auth/token", json=answer)).status_code == 200
    again = await api.client.post("/api/v1/auth/token", json=answer)
    assert again.status_code == 401
    assert "already answered" in again.json()["detail"]


async def test_a_wrong_answer_still_uses_up_the_challenge(api: Api) -> None:
    # Signed by tech-t, but claiming officer-a's key id: refused, and the nonce is spent.
    bad = await _answer(api, "tech-t", keyid_of="officer-a")
    refused = await api.client.post("/api/v1/auth/token", json=bad)
    assert refused.status_code == 401
    assert "does not verify" in refused.json()["detail"]
    good_sig = await _answer(api, "officer-a")
    retry = {**good_sig, "nonce": bad["nonce"]}
    assert (
        "already answered"
        in (await api.client.post("/api/v1/auth/token", json=retry)).json()["detail"]
    )


async def test_challenge_answered_after_a_minute_is_refused(api: Api) -> None:
    answer = await _answer(api, "officer-a")
    api.clock.advance(61)
    response = await api.client.post("/api/v1/auth/token", json=answer)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_unknown_challenge_is_refused(api: Api) -> None:
    answer = await _answer(api, "officer-a")
    response = await api.client.post("/api/v1/auth/token", json={**answer, "nonce": "0" * 64})
    assert response.status_code == 401
    assert "unknown" in response.json()["detail"]


async def test_unregistered_key_cannot_log_in(api: Api, tmp_path: object) -> None:
    from pathlib import Path

    stranger = Path(str(tmp_path)) / "stranger.key"
    generate_keypair(stranger, stranger.with_suffix(".pub"))
    challenge = (await api.client.post("/api/v1/auth/challenge")).json()
    sig = sign_payload(
        AUTH_PAYLOAD_TYPE, challenge["challenge"].encode(), Ed25519Signer.from_file(stranger)
    ).to_json()
    response = await api.client.post(
        "/api/v1/auth/token", json={"nonce": challenge["nonce"], **sig}
    )
    assert response.status_code == 401
    assert "not registered" in response.json()["detail"]


async def test_session_ends_after_fifteen_minutes(api: Api) -> None:
    headers = await api.headers("officer-a")
    api.clock.advance(timedelta(minutes=14, seconds=59).total_seconds())
    assert (await api.client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    api.clock.advance(1)
    expired = await api.client.get("/api/v1/auth/me", headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]


async def test_revoking_a_person_ends_their_live_session(api: Api) -> None:
    headers = await api.headers("officer-a")
    with api.lab.rio.db.session() as s:
        registry.revoke_person(s, "officer-a", api.clock.now())
    api.clock.advance(1)
    response = await api.client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_logout_ends_the_token(api: Api) -> None:
    headers = await api.headers("auditor-u")
    assert (await api.client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await api.client.get("/api/v1/auth/me", headers=headers)).status_code == 401


async def test_the_page_cookie_works_for_reading_but_not_for_writing(api: Api) -> None:
    await api.login("officer-a")  # the token answer also set the cookie on the client
    assert api.client.cookies.get("rio_session")
    assert (await api.client.get("/api/v1/auth/me")).status_code == 200
    # A write with only the cookie (what a forged cross-site form would carry) is refused.
    assert (await api.client.post("/api/v1/auth/logout")).status_code == 401


async def test_malformed_answer_is_422_problem_naming_the_field(api: Api) -> None:
    response = await api.client.post("/api/v1/auth/token", json={"nonce": "x", "keyid": "y"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/bad-input"
    assert "body.nonce" in problem["detail"] and "body.sig" in problem["detail"]


async def test_login_on_postgresql(pg_api: Api) -> None:
    token = await pg_api.login("tech-t")
    me = await pg_api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "technician"
