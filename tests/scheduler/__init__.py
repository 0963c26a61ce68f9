"""Helpers for the scheduler tests: scope/policy documents and a fresh rio home with a notice.

Everything goes through rio's own code (``init_home``, the registry, ``announce``); the targets are
loopback addresses in 127.0.22.0/28, used by no other test folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.context import Rio, init_home
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair, load_public_key
from orchestrator.intake.notices import Notice, announce
from orchestrator.intake.registry import Role
from orchestrator.settings import load_settings

VENDOR = "acme-sec"
TECH = "tech-t"
NETWORK = "127.0.22.0/28"
TARGETS = "127.0.22.0/30"  # hosts .1 and .2
SHANGHAI = "Asia/Shanghai"
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class TickingClock:
    """A fake clock that moves ``step`` forward every time it is read (a run that takes time)."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self._now = start.astimezone(UTC)
        self.step = step

    def now(self) -> datetime:
        current = self._now
        self._now += self.step
        return current

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)


def window(start: str, end: str, tz: str = SHANGHAI) -> dict[str, str]:
    """An announced window, local times in ``tz``."""
    return {"start": start, "end": end, "timezone": tz}


def scope_doc(windows: list[dict[str, str]], *, targets: str = TARGETS) -> dict[str, Any]:
    return {
        "format": "rio.scope/v1",
        "object": {
            "id": "sched-idc",
            "name": "Scheduler test IDC",
            "services": ["idc"],
            "key_supervision": True,
        },
        "contact": {"name": "NOC", "email": "noc@sched.test"},
        "targets": [{"cidr": targets}],
        "windows": windows,
        "sources": ["127.0.0.1"],
    }


def policy_doc(
    *,
    windows: list[dict[str, Any]] | None = None,
    blackouts: list[dict[str, str]] | None = None,
    lead: str = "2s",
    http_port: int = 8080,
    paths: tuple[str, ...] = ("/",),
    concurrency: int = 4,
    tz: str = SHANGHAI,
) -> dict[str, Any]:
    return {
        "format": "rio.policy/v1",
        "name": "sched-test",
        "timezone": tz,
        "min_notice_lead": lead,
        "windows": windows or [{"days": ALL_DAYS, "start": "00:00", "end": "24:00"}],
        "blackouts": blackouts or [],
        "rates": {"per_ip": 50, "per_network": 100, "per_notice": 100, "global": 200},
        "concurrency": concurrency,
        "probe_timeout": "10s",
        "max_disruption": "light",
        "probes": {
            "http": {
                "ports": [http_port],
                "https_ports": [],
                "paths": list(paths),
                "method": "GET",
                "timeout": "3s",
            }
        },
        "health": {"consecutive_failures": 50, "cooldown": "1s"},
    }


@dataclass
class Lab:
    home: Path
    rio: Rio
    notice: Notice

    @property
    def env(self) -> dict[str, str]:
        # Commands prove who runs them by a key: here, the technician's.
        return {"RIO_HOME": str(self.home), "RIO_KEY_FILE": str(self.home / f"{TECH}.key")}


def open_home(home: Path) -> Rio:
    """A new Rio on an existing home (what a restarted process gets)."""
    return Rio(load_settings({"RIO_HOME": str(home)}))


def _tech_key(home: Path) -> Path:
    """The technician's key pair in the home; returns the public key file."""
    private, public = home / f"{TECH}.key", home / f"{TECH}.pub"
    if not private.exists():
        generate_keypair(private, public)
    return public


def build_lab(
    home: Path, scope: dict[str, Any], policy: dict[str, Any], *, announced_at: datetime
) -> Lab:
    """Init a home, register the vendor and its technician, announce the notice."""
    settings = load_settings({"RIO_HOME": str(home)})
    init_home(settings)
    rio = Rio(settings)
    with rio.db.session() as s:
        registry.add_vendor(s, VENDOR, "Acme Security Ltd", now=rio.clock.now())
        registry.add_person(s, TECH, Role.TECHNICIAN, "", VENDOR, now=rio.clock.now())
        registry.add_key(s, TECH, load_public_key(_tech_key(home)), now=rio.clock.now())
        notice = announce(
            s,
            scope_bytes=json.dumps(scope).encode(),
            scope_name="scopes/sched.yaml",
            policy_bytes=json.dumps(policy).encode(),
            policy_name="policies/sched.yaml",
            vendor=VENDOR,
            now=announced_at,
        )
    return Lab(home=home, rio=rio, notice=notice)
