"""The API over the record lab (tests/record/conftest.py): a sealed run with a ledger, every role.

Requests go through httpx's ASGI transport (no socket); logging in signs the server's stored
challenge with the person's real key file, as a client would. The lab is built once per session
on SQLite and copied per test; ``pg_api`` builds it on a fresh PostgreSQL schema.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from orchestrator.access.identity import AUTH_PAYLOAD_TYPE
from orchestrator.context import Rio
from orchestrator.interfaces.api import ApiConfig, create_app
from orchestrator.record.dsse import Ed25519Signer, sign_payload
from orchestrator.settings import load_settings
from tests.record.conftest import Lab, build_lab
from tests.support.postgres import loopback_pg_url

HOST = "rio-test-host"


class ShiftedClock:
    """Real time plus an offset tests move forward: record versions and keys carry real
    creation times (a signature counts only after them), and sessions must be able to expire."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)


@dataclass
class Api:
    """An app over a lab, its clock and an ASGI client."""

    lab: Lab
    clock: ShiftedClock
    client: httpx.AsyncClient

    def key(self, name: str, index: int = 0) -> Path:
        return self.lab.key_files[name][index]

    async def login(self, name: str, index: int = 0) -> str:
        """Log in as ``name`` with their key; returns the bearer token."""
        return await login(self.client, self.key(name, index))

    async def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.login(name)}"}


async def login(client: httpx.AsyncClient, key_file: Path) -> str:
    challenge = (await client.post("/api/v1/auth/challenge")).json()
    signer = Ed25519Signer.from_file(key_file)
    signature = sign_payload(AUTH_PAYLOAD_TYPE, challenge["challenge"].encode(), signer)
    answer = signature.to_json()
    response = await client.post(
        "/api/v1/auth/token",
        json={"nonce": challenge["nonce"], "keyid": answer["keyid"], "sig": answer["sig"]},
    )
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert isinstance(token, str)
    return token


def config() -> ApiConfig:
    return ApiConfig(host_name=HOST, public_rate="1000/minute")


@pytest.fixture(scope="session")
def _api_lab_template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    built = build_lab(tmp_path_factory.mktemp("api-lab") / "home")
    built.rio.close()
    return built


@pytest.fixture
def api_lab(_api_lab_template: Lab, tmp_path: Path) -> Iterator[Lab]:
    home = tmp_path / "home"
    shutil.copytree(_api_lab_template.home, home)
    copy = Lab(
        home=home,
        rio=Rio(load_settings({"RIO_HOME": str(home)})),
        notice_id=_api_lab_template.notice_id,
        run_id=_api_lab_template.run_id,
        vendor=_api_lab_template.vendor,
        key_files={
            name: [home / p.relative_to(_api_lab_template.home) for p in files]
            for name, files in _api_lab_template.key_files.items()
        },
        findings={run: list(ids) for run, ids in _api_lab_template.findings.items()},
    )
    try:
        yield copy
    finally:
        copy.rio.close()


async def _serve(lab: Lab, cfg: ApiConfig | None = None) -> AsyncIterator[Api]:
    clock = ShiftedClock()
    app = create_app(lab.rio, clock=clock, config=cfg or config())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://rio.test") as client:
        yield Api(lab=lab, clock=clock, client=client)


@pytest.fixture
async def api(api_lab: Lab) -> AsyncIterator[Api]:
    async for served in _serve(api_lab):
        yield served


@pytest.fixture
def pg_lab(tmp_path: Path) -> Iterator[Lab]:
    """The lab on a fresh PostgreSQL schema (skips, with the reason, without PostgreSQL)."""
    url = loopback_pg_url()
    admin = create_engine(url, connect_args={"connect_timeout": 2})
    schema = f"t_api_{secrets.token_hex(5)}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc.orig}")
    sep = "&" if "?" in url else "?"
    lab = build_lab(tmp_path / "home", database_url=f"{url}{sep}options=-csearch_path%3D{schema}")
    try:
        yield lab
    finally:
        lab.rio.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
async def pg_api(pg_lab: Lab) -> AsyncIterator[Api]:
    async for served in _serve(pg_lab):
        yield served
