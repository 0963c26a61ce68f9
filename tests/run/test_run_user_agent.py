"""The User-Agent a run's HTTP probes carry, as a real HTTP server on loopback receives it: it
names the notice, and with ``RIO_PUBLIC_BASE_URL`` set it points to the notice's public check
(``BASE/verify/NOTICE``), where the object's staff confirm the traffic was announced."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.context import Rio, init_home
from orchestrator.intake import registry
from orchestrator.run.state import RunState
from tests.run.conftest import (
    TECHNICIAN,
    VENDOR,
    Home,
    announce_notice,
    around,
    make_runner,
    make_settings,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)
from tests.support.servers import WELL_CONFIGURED, LoopbackHttpServer


def _home(path: Path, **env: str) -> Home:
    settings = make_settings(path, **env)
    init_home(settings)
    rio = Rio(settings)
    with rio.db.session() as s:
        registry.add_vendor(s, VENDOR, "Run Test Security Co.", now=rio.clock.now())
        registry.add_person(
            s, TECHNICIAN, registry.Role.TECHNICIAN, "", VENDOR, now=rio.clock.now()
        )
    return Home(settings=settings, rio=rio, path=path)


@pytest.mark.parametrize("base", [None, "https://rio.psb.example/inspections"])
async def test_http_probes_carry_the_notice_and_its_public_check(
    tmp_path: Path, base: str | None
) -> None:
    home = _home(tmp_path / "home", **({"RIO_PUBLIC_BASE_URL": base + "/"} if base else {}))
    network = unique_network()
    host = str(next(ipaddress.IPv4Network(network).hosts()))
    try:
        with LoopbackHttpServer(WELL_CONFIGURED, host=host) as server:
            now = now_utc()
            notice = announce_notice(
                home,
                scope_bytes(network, [around(now)]),
                policy_bytes(None, http_port=server.port),
                at=now - timedelta(minutes=1),
            )
            run_id = new_run(home, notice)
            assert await make_runner(home, run_id).execute() is RunState.SEALED
        agents = {r.user_agent for r in server.requests}
    finally:
        home.rio.close()
    assert len(agents) == 1, agents
    (agent,) = agents
    assert agent is not None and agent.startswith("rio/")
    assert f"(+notice {notice.id}; remote inspection by Run Test Security Co." in agent
    if base is None:
        assert "verify" not in agent
    else:
        assert agent.endswith(f"; +{base}/verify/{notice.id})")
