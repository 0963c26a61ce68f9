"""``rio demo``: a full announced inspection against loopback, on the embedded defaults.

It starts the loopback target farm, registers a demo public security organ (two officers), a
vendor and its technician with fresh keys in RIO_HOME/demo-keys, announces
``scopes/demo-loopback.yaml`` under ``policies/demo.yaml``, waits out the policy's lead time,
runs the inspection through the gate with the live progress display, and prints the findings and
the final signed checkpoint. Then (where those capabilities are installed) the officers and the
technician sign the record, it is closed, archived and verified offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from sqlalchemy import func, select

from orchestrator.app import build_app
from orchestrator.context import Rio, init_home
from orchestrator.demo.farm import Farm, FarmSpec
from orchestrator.errors import ConflictError, InputError
from orchestrator.gate.resolve import Resolver
from orchestrator.intake import registry
from orchestrator.intake._types import format_duration
from orchestrator.intake.keys import generate_keypair, load_public_key
from orchestrator.intake.notices import announce
from orchestrator.intake.policy import load_policy
from orchestrator.intake.scope import load_scope
from orchestrator.run.runs import create_run
from orchestrator.settings import load_settings
from orchestrator.shipped import shipped_file
from orchestrator.store.models import FindingRow
from orchestrator.terminal import console, live_progress, print_summary

__all__ = ["DEMO_OFFICERS", "DEMO_TECHNICIAN", "DEMO_VENDOR", "demo_files", "run_demo"]

DEMO_OFFICERS = ("officer-li", "officer-wang")
DEMO_TECHNICIAN = "tech-zhang"
DEMO_VENDOR = "demo-vendor"
DEMO_ORGAN = "Demo City PSB Cyber Security Detachment"


def demo_files() -> tuple[Path, Path]:
    """The demo scope and policy files (package data, :mod:`orchestrator.shipped`)."""
    scope = shipped_file("scopes", "demo-loopback.yaml")
    policy = shipped_file("policies", "demo.yaml")
    for f in (scope, policy):
        if not f.is_file():
            raise InputError(f"{f}: demo file not found (the rio package is incomplete)")
    return scope, policy


def _ensure_people(rio: Rio, keys: Path) -> None:
    keys.mkdir(parents=True, exist_ok=True)
    people: list[tuple[str, registry.Role, str, str | None]] = [
        (name, registry.Role.OFFICER, DEMO_ORGAN, None) for name in DEMO_OFFICERS
    ]
    people.append((DEMO_TECHNICIAN, registry.Role.TECHNICIAN, "", DEMO_VENDOR))
    now = rio.clock.now()
    with rio.db.session() as s, contextlib.suppress(ConflictError):
        registry.add_vendor(s, DEMO_VENDOR, "Demo Security Services Co.", now=now)
    for name, role, org, vendor in people:
        private, public = keys / f"{name}.key", keys / f"{name}.pub"
        if not private.exists():
            generate_keypair(private, public)
        with rio.db.session() as s:
            with contextlib.suppress(ConflictError):
                registry.add_person(s, name, role, org, vendor, now=now)
            with contextlib.suppress(ConflictError):
                registry.add_key(s, name, load_public_key(public), now=now)


def run_demo(*, quiet: bool = False) -> str:
    """Run the whole demo; returns the run id."""
    from orchestrator.services.runs import execute_run, run_summary

    # A short demo run still shows several signed checkpoints and their consistency.
    settings = load_settings(defaults={"RIO_CHECKPOINT_EVERY": "64"})
    for line in init_home(settings):
        console.print(line)
    scope_file, policy_file = demo_files()
    _, scope_bytes = load_scope(scope_file)
    policy, policy_bytes = load_policy(policy_file)
    rio = build_app(settings)
    keys = settings.home / "demo-keys"
    spec = FarmSpec(count=29, lifetime=900.0)
    try:
        _ensure_people(rio, keys)
        console.print(
            f"demo organ: officers {', '.join(DEMO_OFFICERS)}; "
            f"vendor {DEMO_VENDOR}, technician {DEMO_TECHNICIAN}"
        )
        with Farm(spec, clock=rio.clock) as farm:
            console.print(
                f"loopback farm: {len(farm.targets)} targets {farm.targets[0]}..{farm.targets[-1]} "
                f"(http {farm.http_port}, https {farm.https_port}, "
                f"tcp {', '.join(map(str, farm.open_ports))}), "
                f"dns {farm.dns_ip}:{farm.dns_port}"
            )
            with rio.db.session() as s:
                notice = announce(
                    s,
                    scope_bytes=scope_bytes,
                    scope_name=str(scope_file.name),
                    policy_bytes=policy_bytes,
                    policy_name=str(policy_file.name),
                    vendor=DEMO_VENDOR,
                    announced_by=registry.get_person(s, DEMO_OFFICERS[0]).id,
                    now=rio.clock.now(),
                )
            console.print(
                f"announced notice {notice.id} (scope sha256 {notice.scope_sha256[:16]}...)"
            )
            wait = (notice.lead_time_met_at() - rio.clock.now()).total_seconds()
            if wait > 0:
                console.print(
                    f"waiting {wait:.1f} s for the policy's lead time "
                    f"({format_duration(policy.min_notice_lead)})"
                )
                time.sleep(wait + 0.05)
            with rio.db.session() as s:
                run_id = create_run(s, notice.id, DEMO_TECHNICIAN, now=rio.clock.now()).id
                technician = registry.get_person(s, DEMO_TECHNICIAN)
            console.print(f"run {run_id} by {DEMO_TECHNICIAN}")
            assert farm.dns_ip is not None and farm.dns_port is not None
            resolver = Resolver([farm.dns_ip], port=farm.dns_port, clock=rio.clock.now)
            with live_progress(f"run {run_id}", quiet=quiet) as show:
                # rio demo is the entry point: this is its event loop.
                asyncio.run(
                    execute_run(
                        rio,
                        technician,
                        run_id,
                        on_progress=show,
                        resolver=resolver,
                        dns_port=farm.dns_port,
                    )
                )
        _print_findings(rio, run_id)
        print_summary(run_summary(rio, technician, run_id))
        _after_run(rio, run_id, keys)
    finally:
        rio.close()
    return run_id


def _print_findings(rio: Rio, run_id: str) -> None:
    with rio.db.session() as s:
        rows = s.execute(
            select(FindingRow.rule, FindingRow.severity, FindingRow.title, func.count())
            .where(FindingRow.run_id == run_id)
            .group_by(FindingRow.rule, FindingRow.severity, FindingRow.title)
            .order_by(FindingRow.rule)
        ).all()
    console.print(f"findings ({sum(r[3] for r in rows)}):")
    for rule, severity, title, count in rows:
        console.print(f"  {severity:8} {rule:28} x{count:<3} {title}", markup=False)


def _after_run(rio: Rio, run_id: str, keys: Path) -> None:
    """Sign, close, archive and verify, where those capabilities are present."""
    try:
        from orchestrator.demo.signoff import (  # type: ignore[import-not-found,unused-ignore]
            sign_close_archive_verify,
        )
    except ModuleNotFoundError:
        return
    sign_close_archive_verify(rio, run_id, keys)
