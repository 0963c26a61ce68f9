"""The gate holds the single-port service probes (ssh, redis, memcached, ftp) to the policy."""

from __future__ import annotations

from pathlib import Path

from orchestrator.gate.params import params_problem
from orchestrator.intake.policy import load_policy, parse_policy
from orchestrator.intake.scope import parse_scope
from orchestrator.run.plan import plan_for

POLICIES = Path(__file__).resolve().parents[2] / "policies"
_POLICY = b"""
format: rio.policy/v1
name: services
timezone: UTC
min_notice_lead: 0s
windows: [{days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}]
rates: {per_ip: 5, per_network: 50, per_notice: 50, global: 50}
concurrency: 4
max_disruption: light
probes:
  ssh: {ports: [22], timeout: 10s, auth_methods: false}
  redis: {}
"""


def _problem(probe: str, params: dict[str, object], port: int) -> str | None:
    policy = parse_policy(_POLICY, "services.yaml")
    return params_problem(probe, params, target="ip:127.0.0.9", port=port, ports=(), policy=policy)


def test_ssh_probe_within_the_policy_is_allowed() -> None:
    assert _problem("ssh", {"timeout": 10.0, "auth_methods": False}, 22) is None


def test_ssh_probe_refused_on_a_port_the_policy_does_not_list() -> None:
    assert _problem("ssh", {"timeout": 10.0}, 2222) == "port 2222 is not a ssh port of the policy"


def test_ssh_auth_methods_refused_when_the_policy_does_not_allow_it() -> None:
    assert _problem("ssh", {"auth_methods": True}, 22) == (
        "ssh auth_methods is not allowed by the policy"
    )


def test_service_probe_refused_with_a_longer_timeout_or_unknown_parameter() -> None:
    assert _problem("redis", {"timeout": 60}, 6379) == "timeout 60 exceeds the policy's 5"
    assert _problem("redis", {"command": "FLUSHALL"}, 6379) == (
        "parameters ['command'] are not part of the policy"
    )


def test_plan_asks_each_service_probe_once_per_port_with_its_connection_cost() -> None:
    policy, _ = load_policy(POLICIES / "default.yaml")
    scope = parse_scope(
        b"""
format: rio.scope/v1
object: {id: lab, name: Lab, services: [access]}
contact: {name: Lab, email: lab@rio.invalid}
targets: [{ip: "127.0.0.9"}]
windows: [{start: "2026-12-01T00:00:00", end: "2026-12-02T00:00:00", timezone: UTC}]
sources: [127.0.0.1]
""",
        "lab.yaml",
    )
    ssh = [r for r in plan_for(scope, policy) if r.probe == "ssh"]
    assert [(r.port, r.cost, r.params["auth_methods"]) for r in ssh] == [(22, 2, True)]


def test_policy_whose_tls_enumeration_exceeds_the_per_ip_budget_is_refused() -> None:
    import pytest

    from orchestrator.errors import PolicyFileError

    text = _POLICY.replace(b"  redis: {}\n", b"  tls: {ports: [443], enumerate: true}\n")
    with pytest.raises(PolicyFileError, match=r"max_handshakes: a tls probe would cost 27"):
        parse_policy(text, "services.yaml")
