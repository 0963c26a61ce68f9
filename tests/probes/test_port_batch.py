"""Batched port scans: one nmap for many permits, still allowlisted, paced, traced and stoppable."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from probes.base import ProbeContext
from probes.errors import PermitError, ProbeArgumentError
from probes.port_batch import batch_key, build_batch_args, scan_batch
from tests.probes.conftest import USER_AGENT, IssuePermit
from tests.probes.test_port import _nmap_children, _wait_for_nmap
from tests.support.servers import TcpListeners, closed_port

NMAP = "/usr/bin/nmap"
needs_nmap = pytest.mark.skipif(
    not os.access(NMAP, os.X_OK), reason=f"nmap binary not installed at {NMAP}"
)
PARAMS = {"retries": 0, "host_timeout": 30}


def _permits(
    issue: IssuePermit, ips: list[str], ports: tuple[int, ...], **fields: Any
) -> list[Any]:
    return [issue("port", ip, ports=ports, params=dict(PARAMS), **fields) for ip in ips]


def test_batch_arguments_are_the_allowlisted_connect_scan_over_a_target_file(
    argument_permit: IssuePermit,
) -> None:
    permits = [
        argument_permit("port", ip, ports=(443, 22, 22), params=dict(PARAMS))
        for ip in ("127.0.0.1", "127.0.0.2")
    ]
    args = build_batch_args(
        permits, NMAP, max_rate=1500, targets_file="/tmp/t/targets", xml_file="/tmp/t/r.xml"
    )
    assert args == [
        NMAP, "-sT", "-n", "-Pn", "-p", "22,443", "--max-rate", "1500", "--max-retries", "0",
        "--host-timeout", "30s", "--max-hostgroup", "2", "--packet-trace",
        "-oX", "/tmp/t/r.xml", "-oN", "/dev/null", "-iL", "/tmp/t/targets",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ({"ip": "127.0.0.1"}, "twice"),
        ({"ports": (22,)}, "differs"),
        ({"params": {"retries": 1, "host_timeout": 30}}, "differs"),
        ({"ip": "::ffff:127.0.0.2"}, "differs"),
        ({"ip": "127.0.0.01"}, "literal"),
        ({"ip": "-iL /etc/passwd"}, "literal"),
    ],
)
def test_batch_refused_unless_one_run_one_shape_distinct_canonical_addresses(
    argument_permit: IssuePermit, second: dict[str, Any], why: str
) -> None:
    first = argument_permit("port", "127.0.0.1", ports=(22, 443), params=dict(PARAMS))
    fields: dict[str, Any] = {"ports": (22, 443), "params": dict(PARAMS)} | second
    other = argument_permit("port", fields.pop("ip", "127.0.0.2"), **fields)
    with pytest.raises(ProbeArgumentError, match=why):
        build_batch_args(
            [first, other], NMAP, max_rate=10, targets_file="/tmp/t", xml_file="/tmp/x"
        )


def test_batch_refuses_permits_of_two_runs(argument_permit: IssuePermit) -> None:
    first = argument_permit("port", "127.0.0.1", ports=(22,), params=dict(PARAMS))
    other = argument_permit("port", "127.0.0.2", ports=(22,), params=dict(PARAMS), run_id="R-x")
    assert batch_key(first) == batch_key(other)
    with pytest.raises(ProbeArgumentError, match="another run"):
        build_batch_args([first, other], NMAP, max_rate=10, targets_file="/t", xml_file="/x")


async def test_batch_refused_before_nmap_starts_when_a_permit_expired(
    issue_permit: IssuePermit,
) -> None:
    good = issue_permit("port", "127.0.0.1", ports=(22,), params=dict(PARAMS))
    expired = issue_permit(
        "port",
        "127.0.0.2",
        ports=(22,),
        params=dict(PARAMS),
        deadline=datetime.now(UTC) + timedelta(seconds=1),
    )
    await asyncio.sleep(1.1)
    with pytest.raises(PermitError, match="deadline"):
        await scan_batch(
            [good, expired], ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP), max_rate=10
        )


@needs_nmap
@pytest.mark.nmap
async def test_one_nmap_scans_every_target_and_reports_its_connections(
    issue_permit: IssuePermit,
) -> None:
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP)
    with TcpListeners(1, host="127.0.0.1") as one, TcpListeners(1, host="127.0.0.2") as two:
        closed = closed_port()
        ports = (one.ports[0], two.ports[0], closed)
        permits = _permits(issue_permit, ["127.0.0.1", "127.0.0.2"], ports, max_rate=100)
        before = time.time()
        results = await scan_batch(permits, context, max_rate=100)
        after = time.time()
        seen = one.connections + two.connections
    assert [r.outcome for r in results] == ["ok", "ok"], [r.error for r in results]
    states = [{(o.port, o.key) for o in r.observations} for r in results]
    assert ((one.ports[0], "port.open")) in states[0]
    assert ((two.ports[0], "port.open")) in states[1]
    assert all((closed, "port.closed") in s for s in states)
    for result in results:
        assert result.connections == 3 == len(result.connection_times)
        assert all(before <= t <= after for t in result.connection_times)
    assert {c.local for c in seen} == {("127.0.0.1", one.ports[0]), ("127.0.0.2", two.ports[0])}


def _slow(issue_permit: IssuePermit, seconds: float = 60) -> list[Any]:
    ports = tuple(closed_port() for _ in range(10))
    return _permits(
        issue_permit,
        ["127.0.0.1", "127.0.0.2"],
        ports,
        max_rate=1,
        deadline=datetime.now(UTC) + timedelta(seconds=seconds),
    )


@needs_nmap
@pytest.mark.nmap
async def test_kill_switch_terminates_the_batch_and_reports_what_was_sent(
    issue_permit: IssuePermit,
) -> None:
    fired = False
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP, cancelled=lambda: fired)
    task = asyncio.create_task(scan_batch(_slow(issue_permit), context, max_rate=2))
    child = await _wait_for_nmap()
    await asyncio.sleep(1.0)
    fired = True
    results = await asyncio.wait_for(task, timeout=10)
    assert [r.outcome for r in results] == ["killed", "killed"]
    assert 1 <= sum(r.connections for r in results) < 20  # what nmap had sent, not the plan
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


@needs_nmap
@pytest.mark.nmap
async def test_batch_past_the_earliest_deadline_is_terminated_with_timeout(
    issue_permit: IssuePermit,
) -> None:
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP)
    task = asyncio.create_task(scan_batch(_slow(issue_permit, 1.5), context, max_rate=2))
    child = await _wait_for_nmap()
    results = await asyncio.wait_for(task, timeout=15)
    assert [r.outcome for r in results] == ["timeout", "timeout"]
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


@needs_nmap
@pytest.mark.nmap
async def test_cancelling_a_batch_terminates_nmap(issue_permit: IssuePermit) -> None:
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP)
    task = asyncio.create_task(scan_batch(_slow(issue_permit), context, max_rate=2))
    child = await _wait_for_nmap()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Whatever the cancel interrupted (start-up, feeding, scanning), no nmap outlives it; the
    # terminate may still be finishing in a worker thread, so allow it a bounded moment.
    for _ in range(100):  # 5 s at most
        alive = [p for p in _nmap_children() if p.status() != psutil.STATUS_ZOMBIE]
        if not alive and (not child.is_running() or child.status() == psutil.STATUS_ZOMBIE):
            break
        await asyncio.sleep(0.05)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert not [p for p in _nmap_children() if p.status() != psutil.STATUS_ZOMBIE]
