"""The port probe: nmap arguments come only from the allowlist; scans see loopback listeners."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from probes.base import ProbeContext
from probes.errors import PermitError, ProbeArgumentError, ProbeCancelledError, ToolMissingError
from probes.port import SAFE_SCRIPTS, PortProbe, build_nmap_args, find_nmap
from tests.probes.conftest import USER_AGENT, IssuePermit
from tests.support.servers import TcpListeners, closed_port

NMAP = "/usr/bin/nmap"
REPO = Path(__file__).resolve().parents[2]
needs_nmap = pytest.mark.skipif(
    not os.access(NMAP, os.X_OK), reason=f"nmap binary not installed at {NMAP}"
)

INJECTIONS = [
    "-iL",
    "--script",
    "-script",
    "-oN /tmp/x",
    "-iR 5",
    "127.0.0.1/16",
    "-127.0.0.1",
    "127.0.0.1,127.0.0.2",
    "127.0.0.1 127.0.0.2",
    "127.0.0.1\n-iL x",
]


# -- argument builder ---------------------------------------------------------------------------


def test_arguments_are_exactly_the_allowlisted_connect_scan(argument_permit: IssuePermit) -> None:
    permit = argument_permit(
        "port",
        "127.0.0.1",
        ports=(443, 22, 80, 22),
        max_rate=2.5,
        params={"retries": 2, "host_timeout": 30},
    )
    assert build_nmap_args(permit, NMAP) == [
        NMAP,
        "-sT",
        "-n",
        "-Pn",
        "-p",
        "22,80,443",
        "--max-rate",
        "2.5",
        "--max-retries",
        "2",
        "--host-timeout",
        "30s",
        "-oX",
        "-",
        "127.0.0.1",
    ]


def test_version_detection_and_safe_scripts_add_only_their_flags(
    argument_permit: IssuePermit,
) -> None:
    permit = argument_permit(
        "port",
        "::1",
        ports=(22,),
        max_rate=1,
        params={"version_detection": True, "scripts": ["banner", "http-title"]},
    )
    assert build_nmap_args(permit, NMAP) == [
        NMAP,
        "-sT",
        "-n",
        "-Pn",
        "-6",
        "-p",
        "22",
        "--max-rate",
        "1",
        "--max-retries",
        "1",
        "--host-timeout",
        "60s",
        "-sV",
        "--version-light",
        "--script",
        "banner,http-title",
        "-oX",
        "-",
        "::1",
    ]


@pytest.mark.parametrize(
    "ip", [*INJECTIONS, "localhost", "127.000.000.001", "::0:1", "", 2130706433]
)
def test_target_refused_unless_canonical_ip_literal(argument_permit: IssuePermit, ip: Any) -> None:
    permit = argument_permit("port", ip, ports=(80,))
    with pytest.raises(ProbeArgumentError, match="ip"):
        build_nmap_args(permit, NMAP)


@pytest.mark.parametrize(
    "ports",
    [(), ("80",), ("-iL",), ("22,23",), ("22 -oN /tmp/x",), (0,), (65536,), (True,), (22.0,), "22"],
)
def test_ports_refused_unless_integers_in_range(argument_permit: IssuePermit, ports: Any) -> None:
    permit = argument_permit("port", "127.0.0.1", ports=ports)
    with pytest.raises(ProbeArgumentError, match="ports"):
        build_nmap_args(permit, NMAP)


@pytest.mark.parametrize(
    "rate", ["-iR 5", "10 --script x", "10", True, 0, -1, math.nan, math.inf, 0.0001]
)
def test_rate_refused_unless_positive_number(argument_permit: IssuePermit, rate: Any) -> None:
    permit = argument_permit("port", "127.0.0.1", ports=(80,), max_rate=rate)
    with pytest.raises(ProbeArgumentError, match="max_rate"):
        build_nmap_args(permit, NMAP)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        *[("retries", v) for v in [*INJECTIONS, "1", True, -1, 11, 1.5]],
        *[("host_timeout", v) for v in [*INJECTIONS, "30s", "30s --script x", 0, True, 3601]],
        *[("version_detection", v) for v in ["yes", "-sV", 1, None]],
        *[
            ("scripts", v)
            for v in [
                ["vuln"],
                ["banner,vuln"],
                ["--script"],
                ["-script"],
                ["banner --script=vuln"],
                ["banner\nvuln"],
                [" banner"],
                "banner",
                [["banner"]],
            ]
        ],
        ("extra_args", "-iL /etc/hosts"),
        ("script-args", "x"),
        ("-oN", "/tmp/x"),
    ],
)
def test_parameters_refused_outside_allowlist(
    argument_permit: IssuePermit, key: str, value: Any
) -> None:
    permit = argument_permit("port", "127.0.0.1", ports=(80,), params={key: value})
    with pytest.raises(ProbeArgumentError, match="params"):
        build_nmap_args(permit, NMAP)


@pytest.mark.parametrize(
    "path", ["nmap", "-iL", "/usr/bin/nmap -iL x", "/usr/bin/nmap\n", "/usr/bin/nmap,x"]
)
def test_nmap_path_refused_unless_absolute_plain_path(
    argument_permit: IssuePermit, path: str
) -> None:
    permit = argument_permit("port", "127.0.0.1", ports=(80,))
    with pytest.raises(ProbeArgumentError, match="nmap_path"):
        build_nmap_args(permit, path)


def test_every_safe_script_is_accepted(argument_permit: IssuePermit) -> None:
    permit = argument_permit(
        "port", "127.0.0.1", ports=(80,), params={"scripts": list(SAFE_SCRIPTS)}
    )
    assert ",".join(SAFE_SCRIPTS) in build_nmap_args(permit, NMAP)


_OPTIMISED_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from probes.base import _seal_permit
    from probes.errors import ProbeArgumentError
    from probes.port import build_nmap_args

    if sys.flags.optimize < 1:
        print("not optimised"); sys.exit(3)
    cases = [
        {"ip": "-iL"}, {"ip": "127.0.0.1/16"}, {"ip": "-127.0.0.1"}, {"ip": "127.0.0.1 -oN /tmp/x"},
        {"ports": ("22,23",)}, {"ports": ("-iR 5",)}, {"max_rate": "-iR 5"},
        {"params": {"scripts": ["vuln"]}}, {"params": {"scripts": ["--script"]}},
        {"params": {"retries": "1 -iL x"}}, {"params": {"host_timeout": "5s\\n-iL"}},
        {"params": {"extra": "-oN /tmp/x"}},
    ]
    accepted = 0
    for case in cases:
        fields = {"run_id": "r", "notice_id": "n", "decision": 1, "probe": "port",
                  "target": "t", "ip": "127.0.0.1", "ports": (80,),
                  "deadline": datetime.now(UTC) + timedelta(seconds=60)}
        fields.update(case)
        try:
            build_nmap_args(_seal_permit(**fields), "/usr/bin/nmap")
        except ProbeArgumentError:
            continue
        print("accepted", case); accepted += 1
    print("refused-all" if accepted == 0 else "FAILED")
    sys.exit(1 if accepted else 0)
    """
)


def test_argument_checks_hold_under_python_optimise_flag() -> None:
    completed = subprocess.run(
        [sys.executable, "-O", "-c", _OPTIMISED_SCRIPT],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip() == "refused-all"


# -- running ------------------------------------------------------------------------------------


async def test_probe_refused_when_permit_names_another_probe(
    argument_permit: IssuePermit, ctx: ProbeContext
) -> None:
    # The gate would refuse these parameters first (tests/gate); this proves the probe's own
    # allowlist holds too. The permit is sealed by hand and the probe refuses before sending.
    permit = argument_permit("http", "127.0.0.1", ports=(80,))
    with pytest.raises(PermitError):
        await PortProbe().run(permit, ctx)


async def test_missing_nmap_is_a_tool_error_with_install_hint(issue_permit: IssuePermit) -> None:
    permit = issue_permit("port", "127.0.0.1", ports=(80,))
    context = ProbeContext(user_agent=USER_AGENT, nmap_path="/nonexistent/nmap")
    with pytest.raises(ToolMissingError, match="install nmap") as raised:
        await PortProbe().run(permit, context)
    # The hint names the variable rio really reads (settings: RIO_NMAP).
    assert "set RIO_NMAP to" in str(raised.value)


def test_find_nmap_refuses_relative_path() -> None:
    with pytest.raises(ToolMissingError, match="not absolute"):
        find_nmap("bin/nmap")


@needs_nmap
@pytest.mark.nmap
async def test_scan_sees_open_listeners_and_the_closed_port_between_them(
    issue_permit: IssuePermit,
) -> None:
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP)
    with TcpListeners(2) as listeners:
        first, second = listeners.ports
        closed = closed_port()
        permit = issue_permit(
            "port",
            "127.0.0.1",
            ports=(first, closed, second),
            max_rate=50,
            params={"retries": 0, "host_timeout": 30},
        )
        result = await PortProbe().run(permit, context)
        connections = listeners.connections
    assert result.outcome == "ok", result.error
    assert {(o.key, o.port) for o in result.observations} == {
        ("port.open", first),
        ("port.closed", closed),
        ("port.open", second),
    }
    assert result.connections == 3
    assert {c.local for c in connections} == {("127.0.0.1", first), ("127.0.0.1", second)}
    assert all(c.peer[0] == "127.0.0.1" for c in connections)


def _nmap_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "nmap"]


async def _wait_for_nmap() -> psutil.Process:
    for _ in range(100):  # 5 s at most
        children = _nmap_children()
        if children:
            return children[0]
        await asyncio.sleep(0.05)
    raise AssertionError("nmap never started")


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE or not process.is_running()
    except psutil.NoSuchProcess:
        return True


def _slow_permit(issue_permit: IssuePermit, seconds: float = 60) -> Any:
    # Twenty closed ports at 0.2 connections per second keep nmap busy for far longer than the test.
    ports = tuple(closed_port() for _ in range(20))
    return issue_permit(
        "port",
        "127.0.0.1",
        ports=ports,
        max_rate=0.2,
        deadline=datetime.now(UTC) + timedelta(seconds=seconds),
        params={"retries": 0, "host_timeout": 300},
    )


@needs_nmap
@pytest.mark.nmap
async def test_cancelling_a_scan_kills_nmap(issue_permit: IssuePermit) -> None:
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP)
    task = asyncio.create_task(PortProbe().run(_slow_permit(issue_permit), context))
    child = await _wait_for_nmap()
    task.cancel()
    with pytest.raises(ProbeCancelledError, match=str(child.pid)):
        await task
    assert _gone(child)


@needs_nmap
@pytest.mark.nmap
async def test_kill_switch_stops_scan_and_kills_nmap(issue_permit: IssuePermit) -> None:
    fired = False
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP, cancelled=lambda: fired)
    task = asyncio.create_task(PortProbe().run(_slow_permit(issue_permit), context))
    child = await _wait_for_nmap()
    fired = True
    with pytest.raises(ProbeCancelledError):
        await asyncio.wait_for(task, timeout=10)
    assert _gone(child)


@needs_nmap
@pytest.mark.nmap
async def test_scan_past_permit_deadline_is_killed_with_timeout_outcome(
    issue_permit: IssuePermit,
) -> None:
    context = ProbeContext(user_agent=USER_AGENT, nmap_path=NMAP)
    task = asyncio.create_task(PortProbe().run(_slow_permit(issue_permit, seconds=1.5), context))
    child = await _wait_for_nmap()
    result = await asyncio.wait_for(task, timeout=15)
    assert result.outcome == "timeout"
    assert _gone(child)
