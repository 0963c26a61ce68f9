"""Port sweeps leave in nmap batches: still one gate decision and intent per target, logged
before the batch starts, with what nmap actually sent in each outcome."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta

import psutil  # type: ignore[import-untyped]
import pytest
import yaml

from orchestrator.demo.farm import Farm
from orchestrator.ledger.leaves import Leaf, parse_instant
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runs import request_kill
from orchestrator.run.state import RunState

from .conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    wait_for_intents,
)

pytestmark = [
    pytest.mark.nmap,
    pytest.mark.skipif(not os.access("/usr/bin/nmap", os.X_OK), reason="nmap not installed"),
]


def _port_only(policy: bytes, ports: list[int]) -> bytes:
    doc = yaml.safe_load(policy)
    doc["probes"] = {"port": {"ports": ports, "retries": 0, "host_timeout": "20s"}}
    return yaml.safe_dump(doc, sort_keys=False).encode()


def _sends(outcome: Leaf) -> list[datetime]:
    first = parse_instant(outcome.data["sent_at"])
    return [first + timedelta(microseconds=us) for us in outcome.data["sends_us"]]


async def test_port_sweep_goes_out_in_batches_each_send_after_its_durable_intent(
    home: Home, farm: Farm
) -> None:
    now = now_utc()
    ports = sorted({*farm.open_ports, farm.http_port})
    policy = _port_only(policy_bytes(farm, rates=(20, 400, 400, 400), concurrency=16), ports)
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [around(now)]), policy, at=now - timedelta(minutes=1)
    )
    run_id = new_run(home, notice)
    runner = make_runner(home, run_id)

    assert await runner.execute() is RunState.SEALED

    assert verify_run(home.rio, run_id)
    leaves = leaves_of(home.rio, run_id)
    intents = {leaf.seq: leaf for leaf in leaves if leaf.kind == "intent"}
    outcomes = [leaf for leaf in leaves if leaf.kind == "outcome"]
    assert len(intents) == len(outcomes) == 30  # the gate decided and logged every target
    assert runner._ports is not None and 4 <= runner._ports.batches < 30  # 8 per batch at most
    for outcome in outcomes:
        intent = intents[outcome.data["intent"]]
        assert outcome.data["outcome"] == "ok"
        sends = _sends(outcome)
        assert len(sends) == outcome.data["connections"] == len(ports)
        assert min(sends) >= intent.instant  # log before send, measured from nmap's own trace
    opened = farm.counters()
    assert all(opened[ip]["tcp_accepts"] >= 1 for ip in farm.targets)


async def test_kill_terminates_the_batch_on_the_wire_and_logs_what_nmap_sent(
    home: Home, farm: Farm
) -> None:
    now = now_utc()
    # 4 connections per second for the run: the first batch is still scanning at the kill.
    policy = _port_only(policy_bytes(farm, rates=(4, 4, 4, 4), concurrency=16), [1, 2, 3, 4])
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [around(now)]), policy, at=now - timedelta(minutes=1)
    )
    run_id = new_run(home, notice)
    runner = make_runner(home, run_id)
    execution = asyncio.create_task(runner.execute())
    try:
        assert await wait_for_intents(home.rio, run_id, 1) >= 1
        for _ in range(250):  # 5 s at most
            if runner._ports is not None and runner._ports.scanning:
                break
            await asyncio.sleep(0.02)
        assert runner._ports is not None and runner._ports.scanning, "no batch on the wire"
        await asyncio.sleep(0.3)
        scanners = [p for p in psutil.Process().children(recursive=True) if p.name() == "nmap"]
        assert scanners
        with home.rio.db.session() as s:
            request_kill(s, run_id, "officer-li", "outage", now=home.rio.clock.now())
        assert await asyncio.wait_for(execution, 30.0) is RunState.SEALED
    finally:
        execution.cancel()
    for scanner in scanners:
        assert not scanner.is_running() or scanner.status() == psutil.STATUS_ZOMBIE
    leaves = leaves_of(home.rio, run_id)
    (kill,) = [leaf.seq for leaf in leaves if leaf.kind == "kill"]
    outcomes = [leaf for leaf in leaves if leaf.kind == "outcome"]
    after = [o for o in outcomes if o.seq > kill]
    assert after and {o.data["outcome"] for o in after} == {"killed"}
    assert sum(o.data["connections"] for o in after) >= 1  # nmap's trace up to the terminate
    assert all(len(_sends(o)) == o.data["connections"] for o in outcomes if "sends_us" in o.data)
    assert verify_run(home.rio, run_id)
