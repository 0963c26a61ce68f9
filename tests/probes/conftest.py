"""Fixtures for probe tests: permits for loopback targets, a probe context, certificates.

``issue_permit`` asks the real gate, like a user would: it announces a scope naming exactly the
loopback address under test (loopback is a special-purpose range, so only a scope that names it
lets the gate say yes), a policy that allows the probe, and decides one request. Nothing here
switches the gate off. ``argument_permit`` seals permits with arbitrary values for the nmap
argument-builder tests, which never send anything.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from probes.base import Permit, ProbeContext, _seal_permit
from probes.findings import Catalogue, load_catalogue
from tests.integration.field.conftest import require
from tests.integration.field.lab import Lab, claim_block, server_named, unavailable
from tests.support.servers import CertFactory

IssuePermit = Callable[..., Permit]

USER_AGENT = "rio/0.0-test (+notice test-notice; tests@rio.invalid)"


def _seal(probe: str, ip: str, fields: dict[str, Any]) -> Permit:
    values: dict[str, Any] = {
        "run_id": "run-test",
        "notice_id": "notice-test",
        "decision": 1,
        "probe": probe,
        "target": ip,
        "ip": ip,
        "deadline": datetime.now(UTC) + timedelta(seconds=60),
    }
    values.update(fields)
    return _seal_permit(**values)


def _policy_section(probe: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A policy that allows exactly the requested probe parameters (the gate checks them)."""
    params: dict[str, Any] = dict(fields.get("params", {}))
    port = fields.get("port")
    if probe == "port":
        section: dict[str, Any] = {
            "ports": sorted(set(fields.get("ports", ()))),  # closed_port() may repeat
            "retries": params.get("retries", 1),
            "host_timeout": params.get("host_timeout", 60),
            "version_detection": params.get("version_detection", False),
            "scripts": list(params.get("scripts", [])),
        }
    elif probe == "http":
        https = params.get("scheme") == "https"
        section = {
            "ports": [] if https else [port],
            "https_ports": [port] if https else [],
            "paths": list(params.get("paths", ["/"])),
            "method": params.get("method", "GET"),
            "max_body": params.get("max_body", 65536),
            "timeout": params.get("timeout", 10),
        }
    elif probe == "tls":
        section = {
            "ports": [port],
            "timeout": params.get("timeout", 10),
            "check_legacy": params.get("check_legacy", False),
            "enumerate": params.get("enumerate", False),
            "max_handshakes": params.get("max_handshakes", 24),
            "inspect": params.get("inspect", False),
        }
        if "ca_bundle" in params:
            section["ca_bundle"] = params["ca_bundle"]
    elif probe == "dns":
        section = {
            "record_types": list(params.get("record_types", ["A"])),
            "recursion_check": params.get("recursion_check", False),
            "version_check": params.get("version_check", False),
            "timeout": params.get("timeout", 5),
        }
    elif probe == "http-content":
        https = params.get("scheme") == "https"
        section = {
            "ports": [] if https else [port],
            "https_ports": [port] if https else [],
            "paths": list(params.get("paths", ["/"])),
            "timeout": params.get("timeout", 10),
        }
    elif probe in ("ssh", "redis", "memcached", "ftp", "smtp"):
        section = {"ports": [port], "timeout": params.get("timeout", 5)}
        section.update({k: v for k, v in params.items() if isinstance(v, bool)})
    else:
        section = {"timeout": params.get("timeout", 10)}
    return {probe: section}


def _gate_permit(probe: str, ip: str, fields: dict[str, Any]) -> Permit:
    """Announce ``ip`` and ask the gate for one ``probe`` permit (in a thread of its own loop)."""
    import asyncio
    import concurrent.futures
    import math

    from orchestrator.clock import SystemClock
    from orchestrator.gate.decide import ProbeRequest, Refusal
    from tests.gate.conftest import ListSink, RunStub, make_gate, make_notice

    now = datetime.now(UTC)
    deadline = fields.pop("deadline", None)
    timeout = 60 if deadline is None else max(1, math.ceil((deadline - now).total_seconds()))
    per_ip = max(1, math.ceil(float(fields.pop("max_rate", 1000))))
    scope = f"""
format: rio.scope/v1
object: {{id: probe-lab, name: Probe lab, services: [access]}}
contact: {{name: Lab, email: lab@rio.invalid}}
targets: [{{ip: "{ip}"}}]
windows: [{{start: "{(now - timedelta(hours=1)).replace(tzinfo=None).isoformat()}",
           end: "{(now + timedelta(days=1)).replace(tzinfo=None).isoformat()}", timezone: UTC}}]
sources: [127.0.0.1]
""".encode()
    policy = f"""
format: rio.policy/v1
name: probe-lab
timezone: UTC
min_notice_lead: 0s
windows: [{{days: [mon, tue, wed, thu, fri, sat, sun], start: "00:00", end: "24:00"}}]
rates: {{per_ip: {per_ip}, per_network: 100000, per_notice: 100000, global: 100000}}
concurrency: 4
probe_timeout: {timeout}s
max_disruption: {"intrusive" if probe == "dns-axfr" else "light"}
probes: {json.dumps(_policy_section(probe, fields))}
""".encode()
    notice = make_notice(scope, policy, announced_at=now - timedelta(minutes=1))
    request = ProbeRequest(
        item=0,
        probe=probe,
        target=fields.pop("target", f"ip:{ip}"),
        ip=ip,
        server_name=fields.pop("server_name", None),
        port=fields.pop("port", None),
        ports=tuple(fields.pop("ports", ())),
        params=fields.pop("params", {}),
        cost=1,
    )
    assert not fields, f"issue_permit: fields the gate does not take: {sorted(fields)}"

    async def decide() -> Permit | Refusal:
        gate = make_gate(notice, clock=SystemClock(), run=RunStub(), sink=ListSink())
        try:
            return await gate.decide(request)
        finally:
            await gate.budget.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        decision = pool.submit(asyncio.run, decide()).result()
    assert isinstance(decision, Permit), f"the gate refused the test's own probe: {decision}"
    return decision


@pytest.fixture
def issue_permit() -> IssuePermit:
    """``issue_permit(probe, ip, **fields)`` -> a permit from the real gate for a loopback ``ip``."""

    def issue(probe: str, ip: str, **fields: Any) -> Permit:
        assert ipaddress.ip_address(ip).is_loopback, f"probe tests target loopback only, not {ip}"
        return _gate_permit(probe, ip, dict(fields))

    return issue


@pytest.fixture
def argument_permit() -> IssuePermit:
    """A sealed permit with *any* field values, for argument-builder tests that send nothing.

    Tests using it must never pass the permit to a probe's ``run``.
    """

    def issue(probe: str, ip: Any, **fields: Any) -> Permit:
        return _seal(probe, ip, fields)

    return issue


@pytest.fixture
def ctx() -> ProbeContext:
    return ProbeContext(user_agent=USER_AGENT)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertFactory]:
    directory: Path = tmp_path_factory.mktemp("certs")
    yield CertFactory(directory)


@contextlib.contextmanager
def lab_servers(directory: Path, *names: str) -> Iterator[Lab]:
    """Some servers of the field lab (real Debian binaries) on a block claimed for this session.

    Skips naming what is missing (fails under ``RIO_REQUIRE_SERVICES=1``).
    """
    servers = [server_named(name) for name in names]
    require(unavailable(servers))
    block = claim_block()
    try:
        with Lab(block, directory, servers) as lab:
            yield lab
    finally:
        block.release()
