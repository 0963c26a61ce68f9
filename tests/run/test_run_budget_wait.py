"""#12 defect 2: a probe refused for rate budget is never lost; a budget refusal means *wait*.

Many DNS probes share one name server whose per-IP budget admits one probe per second. The
server (a loopback UDP listener that records what arrives and never answers) times out, so the
health breaker halves its per-IP rate below one probe's cost: that used to refuse the next
probes ``rate:per_ip`` at once, and they were lost. Now every planned probe waits for budget and
gets a real outcome with its send time, no refusal for rate is logged, and the run is sealed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from datetime import timedelta

import yaml

from orchestrator.gate.resolve import Resolver
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runner import Runner
from orchestrator.run.state import RunState

from .conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
    unique_network,
)

DOMAINS = 5
COST = 6
"""the cost run/plan.py gives a dns probe of two record types (A, TXT) under this policy"""


async def test_dns_probes_sharing_a_name_server_wait_for_budget_and_all_get_outcomes(
    home: Home,
) -> None:
    network = unique_network()
    ns_ip = str(ipaddress.ip_network(network)[2])
    arrivals: list[float] = []

    class Silent(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            arrivals.append(time.monotonic())

    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(Silent, local_addr=(ns_ip, 0))
    port = int(udp.get_extra_info("sockname")[1])
    try:
        now = now_utc()
        scope = yaml.safe_load(scope_bytes(network, [around(now)]))
        scope["targets"] = [
            {"domain": f"d{i}.demo.test", "nameservers": [ns_ip]} for i in range(DOMAINS)
        ]
        policy = yaml.safe_load(policy_bytes(None, rates=(COST, 50, 50, 50)))
        # One probe's cost is the whole per-IP budget: one probe at a time per second.
        policy["probes"] = {
            "dns": {"record_types": ["A", "TXT"], "recursion_check": False, "timeout": "1s"}
        }
        # Two timeouts in a row halve the per-IP rate, below one probe's cost.
        policy["health"] = {"consecutive_failures": 2, "latency_factor": 10, "cooldown": "30s"}
        notice = announce_notice(
            home,
            yaml.safe_dump(scope).encode(),
            yaml.safe_dump(policy).encode(),
            at=now - timedelta(minutes=1),
        )
        run_id = new_run(home, notice)
        runner = Runner(
            home.rio,
            run_id,
            resolver=Resolver(["127.0.0.1"], port=9, timeout=0.5),
            dns_port=port,
            poll_seconds=0.05,
        )
        state = await runner.execute()
    finally:
        udp.close()

    leaves = leaves_of(home.rio, run_id)
    assert {int(leaf.data["cost"]) for leaf in leaves if leaf.kind == "intent"} == {COST}
    assert state is RunState.SEALED
    assert [leaf for leaf in leaves if leaf.kind == "refusal"] == []
    intents = {leaf.seq: leaf for leaf in leaves if leaf.kind == "intent"}
    outcomes = [leaf for leaf in leaves if leaf.kind == "outcome"]
    assert sorted(str(intents[o.data["intent"]].data["server_name"]) for o in outcomes) == [
        f"d{i}.demo.test" for i in range(DOMAINS)
    ]
    assert all(o.data["outcome"] != "unsent" and o.data["sent_at"] for o in outcomes)
    cut = [leaf for leaf in leaves if leaf.kind == "health" and leaf.data["factor"] < 1.0]
    assert cut, "the breaker never cut the rate: the test did not reach the defect's condition"
    assert len(arrivals) >= DOMAINS  # the listener saw every probe
    verdict = verify_run(home.rio, run_id)
    assert verdict, verdict.problems
