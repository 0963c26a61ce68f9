"""The tls probe's inspect step and the smtp probe, as policy, plan and gate see them."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import PolicyFileError
from orchestrator.gate.params import params_problem
from orchestrator.intake.policy import Policy, parse_policy
from orchestrator.intake.scope import parse_scope
from orchestrator.run.plan import plan_for
from tests.support.servers import CertFactory

_POLICY = """
format: rio.policy/v1
name: tls-inspect
timezone: UTC
min_notice_lead: 0s
windows: [{days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}]
rates: {per_ip: 10, per_network: 50, per_notice: 50, global: 50}
concurrency: 4
max_disruption: light
probes:
  tls: TLS
  smtp: {}
"""
_SCOPE = b"""
format: rio.scope/v1
object: {id: lab, name: Lab, services: [access]}
contact: {name: Lab, email: lab@rio.invalid}
targets: [{ip: "127.0.0.9"}]
windows: [{start: "2026-12-01T00:00:00", end: "2026-12-02T00:00:00", timezone: UTC}]
sources: [127.0.0.1]
"""


def _policy(tls: str) -> Policy:
    return parse_policy(_POLICY.replace("TLS", tls).encode(), "tls-inspect.yaml")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return CertFactory(tmp_path).ca_path


def test_inspect_costs_two_handshakes_more(bundle: Path) -> None:
    policy = _policy(f"{{ports: [443], check_legacy: true, inspect: true, ca_bundle: {bundle}}}")
    assert dict((p, c) for p, c, _ in policy.probes.costs())["tls"] == 3 + 2
    (tls,) = [r for r in plan_for(parse_scope(_SCOPE, "lab.yaml"), policy) if r.probe == "tls"]
    assert tls.cost == 5
    assert tls.params["inspect"] is True and tls.params["ca_bundle"] == str(bundle)


def test_gate_refuses_inspection_the_policy_does_not_allow() -> None:
    policy = _policy("{ports: [443], check_legacy: false}")
    problem = params_problem(
        "tls", {"inspect": True}, target="ip:127.0.0.9", port=443, ports=(), policy=policy
    )
    assert problem == "the tls inspection handshakes are not allowed by the policy"


def test_gate_refuses_a_ca_bundle_other_than_the_policys(bundle: Path) -> None:
    policy = _policy(f"{{ports: [443], inspect: true, ca_bundle: {bundle}}}")
    params = {"inspect": True, "ca_bundle": "/etc/ssl/certs/ca-certificates.crt"}
    problem = params_problem(
        "tls", params, target="ip:127.0.0.9", port=443, ports=(), policy=policy
    )
    assert problem == "ca_bundle '/etc/ssl/certs/ca-certificates.crt' is not the policy's"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("certs/ca.pem", "is not an absolute path"),
        ("/nonexistent/ca.pem", "cannot be read"),
        ("/etc/hostname", "holds no PEM certificate"),
    ],
)
def test_policy_refuses_a_ca_bundle_that_is_no_bundle(value: str, why: str) -> None:
    with pytest.raises(PolicyFileError, match=why):
        _policy(f"{{ports: [443], inspect: true, ca_bundle: {value}}}")


def test_plan_asks_smtp_once_on_port_25_for_one_connection() -> None:
    policy = _policy("{ports: [443]}")
    smtp = [r for r in plan_for(parse_scope(_SCOPE, "lab.yaml"), policy) if r.probe == "smtp"]
    assert [(r.port, r.cost) for r in smtp] == [(25, 1)]
    assert (
        params_problem(
            "smtp", {"timeout": 5.0}, target="ip:127.0.0.9", port=587, ports=(), policy=policy
        )
        == "port 587 is not a smtp port of the policy"
    )
