"""Workers pinned to egresses, measured at the target (issue #18): nginx's ``$remote_addr``.

Two ``rio worker --egress`` processes, each pinned to one loopback source address of the test's
own block; the notice announces both; every request nginx logs came from one of them, and both
were used. With the deployment's egress not announced, nothing reaches nginx at all and each
probe's outcome in the (verified) ledger says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import timedelta

import pytest
import yaml

from orchestrator.context import Rio
from orchestrator.ledger.verify import verify_run
from orchestrator.run.state import RunState
from tests.run.conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
)

from .conftest import CeleryHome, Nginx

pytestmark = pytest.mark.slow


def _run(home: CeleryHome, nginx: Nginx, announced: list[str], egress: tuple[str, ...]) -> str:
    doc = yaml.safe_load(policy_bytes(None, http_port=80, rates=(4, 60, 60, 24)))
    doc["probes"]["http"]["paths"] = ["/a", "/b"]
    now = now_utc()
    scope = yaml.safe_load(scope_bytes(f"{nginx.block.prefix}.0/29", [around(now)]))
    scope["sources"] = announced
    rio = Rio(dataclasses.replace(home.settings, egress=egress))
    as_home = Home(settings=rio.settings, rio=rio, path=home.settings.home)
    try:
        notice = announce_notice(
            as_home,
            yaml.safe_dump(scope).encode(),
            yaml.safe_dump(doc).encode(),
            at=now - timedelta(minutes=1),
        )
        runner = make_runner(as_home, new_run(as_home, notice))
        state = asyncio.run(runner.execute())
        assert state is RunState.SEALED
        assert verify_run(rio, runner.run_id)
        return runner.run_id
    finally:
        rio.close()


def test_probes_leave_only_from_the_announced_egresses_of_pinned_workers(
    redis_celery: CeleryHome, nginx: Nginx
) -> None:
    a, b = nginx.block.ip(201), nginx.block.ip(202)
    redis_celery.workers.start("wa", egress=a)
    redis_celery.workers.start("wb", egress=b)
    redis_celery.workers.wait_ready(["wa", "wb"])

    run_id = _run(redis_celery, nginx, [a, b], (a, b))

    peers = nginx.peers()
    print(f"at the target, requests by source address: {peers}")
    assert set(peers) == {a, b}, peers
    assert sum(peers.values()) == 6 * 2
    outcomes = Counter(
        leaf.data["outcome"] for leaf in leaves_of(redis_celery.rio, run_id)
        if leaf.kind == "outcome"
    )  # fmt: skip
    assert outcomes == {"ok": 6}
    assert redis_celery.workers.received("wa") > 0 and redis_celery.workers.received("wb") > 0


def test_no_probe_leaves_when_the_egress_is_not_announced(
    redis_celery: CeleryHome, nginx: Nginx
) -> None:
    announced, pinned = nginx.block.ip(201), nginx.block.ip(203)
    redis_celery.workers.start("wc", egress=pinned)
    redis_celery.workers.wait_ready(["wc"])

    run_id = _run(redis_celery, nginx, [announced], (pinned,))

    assert nginx.peers() == {}
    outcomes = [leaf.data for leaf in leaves_of(redis_celery.rio, run_id) if leaf.kind == "outcome"]
    assert len(outcomes) == 6
    assert {o["outcome"] for o in outcomes} == {"error"}
    assert all("no announced source" in str(o["error"]) for o in outcomes)
    assert redis_celery.workers.received("wc") == 0
