"""The plan's stream: the same requests, in the same order, as building every unit's own list.

The stream builds the requests of address and host units once (the policy alone decides them)
and gives each unit its own target, ip and host; URL and domain units get their own. This test
replays the plain definition (each round, every unit's full request list, its round-th entry)
over every shipped scope and policy, so any difference in an item, its order or its count fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.gate.decide import ProbeRequest
from orchestrator.intake.policy import load_policy
from orchestrator.intake.scope import load_scope
from orchestrator.run.plan import Plan, plan_for

ROOT = Path(__file__).resolve().parents[2]
SCOPES = sorted((ROOT / "scopes").glob("*.yaml"))
POLICIES = sorted((ROOT / "policies").glob("*.yaml"))


def _reference(plan: Plan) -> Iterator[ProbeRequest]:
    item = round_no = 0
    while True:
        produced = False
        for unit in plan._units():
            reqs = plan._requests(unit)
            if round_no < len(reqs):
                produced = True
                yield replace(reqs[round_no], item=item)
                item += 1
        if not produced:
            return
        round_no += 1


@pytest.mark.parametrize("policy_path", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("scope_path", SCOPES, ids=lambda p: p.name)
def test_the_stream_is_every_units_own_requests_round_robin(
    scope_path: Path, policy_path: Path
) -> None:
    scope = load_scope(scope_path)[0]
    policy = load_policy(policy_path)[0]
    plan = plan_for(scope, policy)
    expected = list(_reference(plan))
    got = list(plan_for(scope, policy))
    assert got == expected
    assert plan_for(scope, policy).count() == len(expected)
    assert got
