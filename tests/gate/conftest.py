"""Fakes at the gate's boundaries: a decision sink, a run view, notices built from bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.clock import Clock
from orchestrator.gate.budget import BudgetLimits, RateBudget
from orchestrator.gate.decide import Gate
from orchestrator.gate.health import HealthBreaker
from orchestrator.gate.resolve import Resolver
from orchestrator.intake.notices import Notice
from orchestrator.intake.registry import Person, Role

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Asia/Shanghai


@dataclass
class ListSink:
    """Collects decisions like the probe log would, handing out sequence numbers."""

    leaves: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def log_decision(self, kind: str, body: dict[str, Any], at: datetime) -> int:
        self.leaves.append((kind, body))
        return len(self.leaves) - 1


@dataclass
class RunStub:
    run_id: str = "R-test"
    killed: bool = False

    def active(self) -> tuple[bool, str]:
        return (False, "killed") if self.killed else (True, "active")


def scope_yaml(
    targets: str,
    *,
    excludes: str = "[]",
    start: str = "2026-12-01T00:00:00",
    end: str = "2026-12-31T00:00:00",
) -> bytes:
    return f"""
format: rio.scope/v1
object: {{id: lab, name: Lab, services: [access]}}
contact: {{name: NOC, email: noc@lab.test}}
targets: {targets}
excludes: {excludes}
windows:
  - {{start: {start}, end: {end}, timezone: Asia/Shanghai}}
sources: [127.0.0.1]
""".encode()


def policy_yaml(
    *,
    lead: str = "1h",
    probes: str | None = None,
    timeout: str = "10s",
    windows: str = '[{days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}]',
    blackouts: str = "[]",
    per_ip: int = 1000,
) -> bytes:
    probes = (
        probes
        or "{port: {ports: [80, 443]}, http: {ports: [80], https_ports: [443]}, tls: {}, dns: {}}"
    )
    return f"""
format: rio.policy/v1
name: test
timezone: Asia/Shanghai
min_notice_lead: {lead}
windows: {windows}
blackouts: {blackouts}
rates: {{per_ip: {per_ip}, per_network: 100000, per_notice: 100000, global: 100000}}
concurrency: 4
probe_timeout: {timeout}
max_disruption: light
probes: {probes}
""".encode()


def make_notice(
    scope: bytes, policy: bytes, *, announced_at: datetime, vendor: str | None = "acme"
) -> Notice:
    return Notice(
        id="N-test",
        object_id="lab",
        vendor=vendor,
        scope_name="scope.yaml",
        scope_bytes=scope,
        scope_sha256=hashlib.sha256(scope).hexdigest(),
        policy_name="policy.yaml",
        policy_bytes=policy,
        policy_sha256=hashlib.sha256(policy).hexdigest(),
        announced_at=announced_at,
        sources=("127.0.0.1",),
    )


TECH = Person(
    id=1, name="zhang", role=Role.TECHNICIAN, organisation="Acme", vendor="acme", revoked_at=None
)


def make_gate(
    notice: Notice,
    *,
    clock: Clock,
    person: Person | None = TECH,
    resolver: Resolver | None = None,
    run: RunStub | None = None,
    sink: ListSink | None = None,
) -> Gate:
    r = notice.policy.rates
    budget = RateBudget(
        BudgetLimits(
            per_ip=r.per_ip, per_network=r.per_network, per_notice=r.per_notice, global_=r.global_
        )
    )
    return Gate(
        notice=notice,
        run=run or RunStub(),
        launcher=lambda: person,
        budget=budget,
        health=HealthBreaker(),
        resolver=resolver or Resolver(["127.0.0.1"], port=9, timeout=0.5),
        sink=sink or ListSink(),
        clock=clock,
    )


def announced(hours_before: float) -> datetime:
    return T0 - timedelta(hours=hours_before)
