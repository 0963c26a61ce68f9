"""Schemathesis fuzzes every operation of the published OpenAPI document: no 5xx, ever.

It runs against the real app over the record lab (SQLite), as an officer (a real session from
a signed challenge), so the fuzzer reaches past the login into every route.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from orchestrator.context import Rio
from orchestrator.settings import load_settings
from tests.api.conftest import ShiftedClock, config, login
from tests.record.conftest import build_lab

schemathesis = pytest.importorskip("schemathesis")

pytestmark = pytest.mark.slow

_HOME = Path(__import__("tempfile").mkdtemp(prefix="rio-fuzz-")) / "home"
_LAB = build_lab(_HOME)
_LAB.rio.close()
atexit.register(shutil.rmtree, _HOME.parent, ignore_errors=True)


def _app() -> object:
    import httpx

    from orchestrator.interfaces.api import create_app

    app = create_app(
        Rio(load_settings({"RIO_HOME": str(_HOME)})), clock=ShiftedClock(), config=config()
    )

    async def token() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rio.test") as client:
            return await login(client, _LAB.key_files["officer-a"][0])

    app.state.fuzz_token = asyncio.run(token())
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: object) -> None:
    headers = {"Authorization": f"Bearer {APP.state.fuzz_token}"}  # type: ignore[attr-defined]
    response = case.call(headers=headers)  # type: ignore[attr-defined]
    assert response.status_code < 500, (case, response.status_code, response.text[:500])
