"""Schemathesis fuzzes every operation of the published OpenAPI document: no 5xx, ever.

It runs against the real app over the record lab (SQLite), as an officer (a real session from
a signed challenge), so the fuzzer reaches past the login into every route.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

from orchestrator.context import Rio
from orchestrator.interfaces.api import create_app
from orchestrator.settings import load_settings
from tests.api.conftest import ShiftedClock, config, login
from tests.record.conftest import build_lab

schemathesis = pytest.importorskip("schemathesis")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home: Path = tmp_path_factory.mktemp("fuzz") / "home"
    lab = build_lab(home)
    lab.rio.close()
    app = create_app(
        Rio(load_settings({"RIO_HOME": str(home)})), clock=ShiftedClock(), config=config()
    )

    async def token() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rio.test") as client:
            return await login(client, lab.key_files["officer-a"][0])

    app.state.fuzz_token = asyncio.run(token())
    yield app
    app.state.ctx.rio.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzzed_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: Any, fuzzed_app: Any) -> None:
    headers = {"Authorization": f"Bearer {fuzzed_app.state.fuzz_token}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, (case, response.status_code, response.text[:500])
