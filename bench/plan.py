"""Figure 7: planning a large scope: seconds and peak memory, in a child process.

The child parses a scope of ``127.64.0.0/15`` (131,070 host addresses inside loopback; a plan
sends nothing) under a policy with three probes per host (port, http, tls), counts the plan as
the runner does and then streams every request, and reports its time and ``ru_maxrss``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench._common import Figure, Settings
from bench._home import policy_yaml, scope_yaml

__all__ = ["plan_child", "plan_figures", "plan_sample"]

PLAN_CIDR = "127.64.0.0/15"
QUICK_CIDR = "127.64.0.0/17"
_CHILD_TIMEOUT = 300.0


def plan_child(cidr: str) -> dict[str, float]:
    """Plan ``cidr`` x 3 probes here; returns seconds, requests and peak RSS (MiB)."""
    import resource

    from orchestrator.intake.policy import parse_policy
    from orchestrator.intake.scope import parse_scope
    from orchestrator.run.plan import Plan

    started = time.perf_counter()
    scope = parse_scope(scope_yaml([f"{{cidr: {cidr}}}"]), "bench-plan-scope.yaml")
    policy = parse_policy(
        policy_yaml(
            per_ip=10,
            per_network=100,
            per_notice=1000,
            global_=1000,
            concurrency=64,
            probes="{port: {ports: [22, 80, 443], retries: 0, host_timeout: 20s}, "
            "http: {ports: [80], https_ports: [], paths: ['/']}, tls: {ports: [443]}}",
        ),
        "bench-plan-policy.yaml",
    )
    plan = Plan(scope, policy)
    counted = plan.count()
    streamed = sum(1 for _ in plan)
    seconds = time.perf_counter() - started
    if counted != streamed:
        raise RuntimeError(f"bench: plan counted {counted} but streamed {streamed}")
    # Linux reports ru_maxrss in KiB.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "requests": float(streamed), "peak_mib": peak}


def plan_sample(cidr: str = PLAN_CIDR) -> dict[str, float]:
    """Run :func:`plan_child` in a fresh interpreter and return what it reported."""
    code = (
        "import json, sys; from bench.plan import plan_child; "
        f"print(json.dumps(plan_child({cidr!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=_CHILD_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench: plan child failed: {done.stderr.strip()[-500:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def plan_figures(settings: Settings) -> list[Figure]:
    """Figures 7a (seconds) and 7b (peak RSS)."""
    cidr = QUICK_CIDR if settings.quick else PLAN_CIDR
    samples = [plan_sample(cidr) for _ in range(max(1, settings.repeats - 1))]
    requests = int(samples[-1]["requests"])
    hosts = requests // 3
    where = (
        f"{hosts:,} hosts ({cidr}) x 3 probes = {requests:,} requests, count + stream; "
        "seconds scaled linearly to 100k hosts"
    )
    return [
        Figure(
            key="7a",
            name="plan 100k targets x 3 probes: seconds",
            unit="s",
            samples=tuple(s["seconds"] * 100_000 / (s["requests"] / 3) for s in samples),
            op="<=",
            goal=30.0,
            detail=where,
        ),
        Figure(
            key="7b",
            name=f"plan {hosts // 1000}k targets x 3 probes: peak RSS",
            unit="MiB",
            samples=tuple(s["peak_mib"] for s in samples),
            op="<=",
            goal=1024.0,
            detail="ru_maxrss of the child process (interpreter and imports included)",
        ),
    ]
