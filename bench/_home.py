"""A throw-away rio home for one benchmark: database, keys, people, a notice, a run.

Everything lives in a temporary folder that the caller removes; the notice is announced with a
zero lead time (the bench writes its own policy) so a run can start at once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from orchestrator.context import Rio, init_home
from orchestrator.gate.budget import BudgetLimits, RateBudget
from orchestrator.gate.decide import Gate, ProbeRequest, Refusal
from orchestrator.gate.health import HealthBreaker
from orchestrator.gate.resolve import Resolver
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair, load_public_key
from orchestrator.intake.notices import Notice, announce
from orchestrator.ledger.log import ProbeLog
from orchestrator.run.runs import create_run, get_run, run_launcher
from orchestrator.settings import load_settings
from probes.base import Permit

__all__ = ["BenchHome", "issue_permits", "policy_yaml", "scope_yaml"]

_VENDOR = "bench-vendor"
_TECHNICIAN = "bench-tech"


def scope_yaml(targets: list[str]) -> bytes:
    """A loopback scope announcing ``targets`` (YAML flow mappings such as ``{cidr: ...}``)."""
    lines = [
        "format: rio.scope/v1",
        "object: {id: bench-farm, name: Bench loopback farm, services: [idc]}",
        "contact: {name: Bench, email: bench@bench.test}",
        "targets:",
        *(f"  - {t}" for t in targets),
        "windows:",
        "  - {start: 2026-01-01T00:00:00, end: 2030-12-31T23:59:59, timezone: UTC}",
        "sources: [127.0.0.1]",
    ]
    return ("\n".join(lines) + "\n").encode()


def policy_yaml(
    *,
    per_ip: int,
    per_network: int,
    per_notice: int,
    global_: int,
    concurrency: int,
    probes: str,
    health: str = "{consecutive_failures: 3, latency_factor: 50, cooldown: 60s}",
) -> bytes:
    """A bench policy: every hour of every day, zero lead time, the given rates and probes."""
    text = f"""format: rio.policy/v1
name: bench
description: Loopback benchmark policy. Never use against real networks.
timezone: UTC
min_notice_lead: 0s
windows:
  - {{days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}}
rates: {{per_ip: {per_ip}, per_network: {per_network}, per_notice: {per_notice}, global: {global_}}}
concurrency: {concurrency}
probe_timeout: 20s
max_disruption: light
probes: {probes}
health: {health}
signoff: {{officers: 2, technicians: 1}}
"""
    return text.encode()


@dataclass
class BenchHome:
    """A temporary rio home with a vendor and a technician registered; a context manager."""

    database_url: str | None = None
    root: Path | None = None
    rio: Rio | None = None

    def __enter__(self) -> BenchHome:
        self.root = Path(tempfile.mkdtemp(prefix="rio-bench-"))
        env = {"RIO_HOME": str(self.root / "home")}
        if self.database_url is not None:
            env["RIO_DATABASE_URL"] = self.database_url
        settings = load_settings(env)
        init_home(settings)
        self.rio = Rio(settings)
        keys = self.root / "keys"
        keys.mkdir()
        generate_keypair(keys / "tech.key", keys / "tech.pub")
        now = self.rio.clock.now()
        with self.rio.db.session() as s:
            registry.add_vendor(s, _VENDOR, "Bench Security Services", now=now)
            registry.add_person(s, _TECHNICIAN, registry.Role.TECHNICIAN, "", _VENDOR, now=now)
            registry.add_key(s, _TECHNICIAN, load_public_key(keys / "tech.pub"), now=now)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.rio is not None:
            self.rio.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def opened(self) -> Rio:
        """The opened home (raises when used outside ``with``)."""
        if self.rio is None:
            raise RuntimeError("BenchHome: use it as a context manager")
        return self.rio

    def notice(self, scope: bytes, policy: bytes) -> Notice:
        """Announce ``scope`` under ``policy`` for the bench vendor."""
        with self.opened.db.session() as s:
            return announce(
                s,
                scope_bytes=scope,
                scope_name="bench-scope.yaml",
                policy_bytes=policy,
                policy_name="bench-policy.yaml",
                vendor=_VENDOR,
                now=self.opened.clock.now(),
            )

    def run(self, notice_id: str) -> str:
        """Create a run of ``notice_id`` launched by the bench technician; returns its id."""
        with self.opened.db.session() as s:
            return create_run(s, notice_id, _TECHNICIAN, now=self.opened.clock.now()).id


class _ActiveRun:
    """The gate's view of a bench run: always active (the bench never kills it)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def active(self) -> tuple[bool, str]:
        return True, "active"


async def issue_permits(
    home: BenchHome, notice: Notice, run_id: str, requests: Sequence[ProbeRequest]
) -> list[Permit]:
    """Ask the real gate for a permit per request (in order), logging each intent.

    Raises:
        RuntimeError: the gate refused one (the bench set the notice up wrong).
    """
    rio = home.opened
    with rio.db.session() as s:
        person = run_launcher(s, get_run(s, run_id))
    log = ProbeLog(rio.db, run_id, rio.signing_key, clock=rio.clock)
    rates = notice.policy.rates
    budget = RateBudget(
        BudgetLimits(
            per_ip=rates.per_ip,
            per_network=rates.per_network,
            per_notice=rates.per_notice,
            global_=rates.global_,
        )
    )
    gate = Gate(
        notice=notice,
        run=_ActiveRun(run_id),
        launcher=lambda: person,
        budget=budget,
        health=HealthBreaker(),
        resolver=Resolver(),
        sink=log,
    )
    permits: list[Permit] = []
    try:
        for req in requests:
            decision = await gate.decide(req)
            if isinstance(decision, Refusal):
                raise RuntimeError(f"bench: the gate refused {req}: {decision}")
            permits.append(decision)
        if permits:
            await log.durable(permits[-1].decision)
    finally:
        await budget.close()
        await log.close()
    return permits
