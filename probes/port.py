"""The port probe: an nmap TCP connect scan of the permit's ports on the pinned address.

nmap is an external program, so the argument list is the attack surface: it is built only by
:func:`build_nmap_args` from an allowlist held in this module. The target is a canonical IP literal,
ports are integers, rates and timeouts are numbers, scripts come from :data:`SAFE_SCRIPTS`; no
string from a policy or scope file is ever passed through. The child runs without a shell, writes
XML to stdout, and is killed on cancellation or at the permit deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import nmap

from probes.base import (
    Disruption,
    Observation,
    Permit,
    ProbeContext,
    ProbeResult,
    check_permit,
    monotonic,
)
from probes.errors import (
    ProbeArgumentError,
    ProbeCancelledError,
    ToolMissingError,
)

__all__ = [
    "SAFE_SCRIPTS",
    "PortProbe",
    "build_nmap_args",
    "find_nmap",
    "minimum_host_timeout",
    "port_observations",
    "scan_args",
    "scan_outcome",
]

#: NSE scripts a policy may ask for. Each only reads what a service volunteers to any client.
SAFE_SCRIPTS: tuple[str, ...] = ("banner", "ssl-cert", "http-title")

_PARAM_KEYS = frozenset({"retries", "host_timeout", "version_detection", "scripts"})
_DEFAULT_RETRIES = 1
_DEFAULT_HOST_TIMEOUT = 60
_MAX_RETRIES = 10
_MAX_HOST_TIMEOUT = 3600
_MAX_PORTS = 65535
_POLL_SECONDS = 0.1
_INSTALL_HINT = "install nmap (e.g. `apt-get install nmap`) or set RIO_NMAP to its binary"
_EXTRAPORTS = re.compile(r'<extraports state="([a-z|]+)"')
_TIMED_OUT = re.compile(r'<host\b[^>]*\btimedout="true"')
_STDERR_LIMIT = 500


# What nmap needs beyond the connect scan, measured in the field lab (Debian nmap 7.93 against
# nginx 1.22 and openssl s_server on loopback, 14 ports): -sV --version-light took 15 s on a web
# server; the banner script 22 s on an HTTP port that waits for the client, and banner,
# ssl-cert and http-title together the same 22 s (NSE runs them side by side); both together
# 35 s. Each allowance adds a third or so of margin.
_BASE_SECONDS = 2
_VERSION_SECONDS = 20
_SCRIPT_SECONDS = 25


def minimum_host_timeout(
    *, ports: int, rate: float, retries: int, version_detection: bool, scripts: Sequence[str]
) -> int:
    """The shortest ``--host-timeout`` (seconds) a scan of one host can finish in.

    Args:
        ports: ports one probe scans (a plan chunk).
        rate: connections per second nmap may use (``--max-rate``, the per-IP budget).
        retries: ``--max-retries``; a silent port may be tried that many more times.
        version_detection: ``-sV --version-light``.
        scripts: NSE scripts asked for.

    Returns:
        Whole seconds: the paced connect scan, plus the measured allowances for version
        detection and scripts (see the comment above), plus a start-up second or two.
    """
    connect = math.ceil(ports * (1 + retries) / rate)
    extra = (_VERSION_SECONDS if version_detection else 0) + (_SCRIPT_SECONDS if scripts else 0)
    return _BASE_SECONDS + connect + extra


def find_nmap(path: str | None) -> str:
    """Locate the nmap binary.

    Args:
        path: an explicit path to nmap, or ``None`` to search ``PATH``.

    Returns:
        The absolute path of an executable nmap.

    Raises:
        ToolMissingError: nmap is not there or not executable, with an install hint.
    """
    if path is not None:
        if not os.path.isabs(path):
            raise ToolMissingError(f"nmap path {path!r} is not absolute; {_INSTALL_HINT}")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ToolMissingError(f"nmap not found at {path!r}; {_INSTALL_HINT}")
        return path
    found = shutil.which("nmap")
    if found is None:
        raise ToolMissingError(f"nmap not found on PATH; {_INSTALL_HINT}")
    return os.path.abspath(found)


def _refuse(field: str, value: object, why: str) -> ProbeArgumentError:
    return ProbeArgumentError(f"port probe: {field}: {value!r} {why}")


def _int_param(params: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value: object = params.get(key, default)
    # bool is an int subclass; a policy saying `retries: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(f"params.{key}", value, "is not an integer")
    if not low <= value <= high:
        raise _refuse(f"params.{key}", value, f"is outside {low}..{high}")
    return value


def _target(ip: object) -> str:
    if not isinstance(ip, str):
        raise _refuse("ip", ip, "is not a string")
    try:
        canonical = str(ipaddress.ip_address(ip))
    except ValueError:
        raise _refuse("ip", ip, "is not an IP address literal") from None
    # Only the canonical spelling passes, so no option, range, list or CIDR can ride along.
    if canonical != ip:
        raise _refuse("ip", ip, f"is not the canonical literal {canonical!r}")
    return canonical


def _ports(ports: object) -> str:
    if not isinstance(ports, tuple | list) or not ports:
        raise _refuse("ports", ports, "must be a non-empty sequence of port numbers")
    if len(ports) > _MAX_PORTS:
        raise _refuse("ports", len(ports), "is more ports than exist")
    seen: list[int] = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _refuse("ports", port, "is not a port number 1-65535")
        if port not in seen:
            seen.append(port)
    return ",".join(str(p) for p in sorted(seen))


def _rate(rate: object) -> str:
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise _refuse("max_rate", rate, "is not a number")
    if not math.isfinite(rate) or rate <= 0:
        raise _refuse("max_rate", rate, "is not a positive finite number")
    text = f"{float(rate):.3f}".rstrip("0").rstrip(".")
    if text in ("", "0"):
        raise _refuse("max_rate", rate, "is below 0.001 per second")
    return text


def _scripts(scripts: object) -> list[str]:
    if not isinstance(scripts, list | tuple):
        raise _refuse("params.scripts", scripts, "is not a list of script names")
    chosen: list[str] = []
    for name in scripts:
        if not isinstance(name, str) or name not in SAFE_SCRIPTS:
            raise _refuse("params.scripts", name, f"is not one of {', '.join(SAFE_SCRIPTS)}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def build_nmap_args(permit: Permit, nmap_path: str) -> list[str]:
    """Build the nmap argument vector for a permit, from an allowlist only.

    Args:
        permit: the gate's permit (ip, ports, max_rate and params are read).
        nmap_path: the absolute path of the nmap binary (see :func:`find_nmap`).

    Returns:
        ``[nmap_path, "-sT", "-n", "-Pn", ...,  "-oX", "-", ip]``, ready for ``exec``.

    Raises:
        ProbeArgumentError: any field is not exactly what the allowlist accepts.
    """
    target = _target(permit.ip)
    return [*scan_args(permit, nmap_path, permit.max_rate), "-oX", "-", target]


def scan_args(permit: Permit, nmap_path: str, rate: object) -> list[str]:
    """The connect-scan part of an nmap argument vector (no output, no target), checked.

    ``[nmap_path, "-sT", "-n", "-Pn", ("-6"), "-p", PORTS, "--max-rate", RATE,
    "--max-retries", N, "--host-timeout", Ts, (version detection), (scripts)]``, from the
    permit's address family, ports and parameters and the given rate.

    Raises:
        ProbeArgumentError: any field is not exactly what the allowlist accepts.
    """
    # Explicit `if ... raise` everywhere (never `assert`): these checks must hold under `python -O`.
    if not isinstance(nmap_path, str) or not os.path.isabs(nmap_path):
        raise _refuse("nmap_path", nmap_path, "is not an absolute path")
    if any(ch.isspace() or ch == "," for ch in nmap_path):
        raise _refuse("nmap_path", nmap_path, "contains a space, comma or newline")
    params = permit.params
    if not isinstance(params, Mapping):
        raise _refuse("params", params, "is not a mapping")
    unknown = sorted(str(k) for k in params if k not in _PARAM_KEYS)
    if unknown:
        raise _refuse("params", unknown, f"has unknown keys (allowed: {sorted(_PARAM_KEYS)})")
    target = _target(permit.ip)
    ports = _ports(permit.ports)
    max_rate = _rate(rate)
    retries = _int_param(params, "retries", _DEFAULT_RETRIES, 0, _MAX_RETRIES)
    host_timeout = _int_param(params, "host_timeout", _DEFAULT_HOST_TIMEOUT, 1, _MAX_HOST_TIMEOUT)
    version_detection = params.get("version_detection", False)
    if not isinstance(version_detection, bool):
        raise _refuse("params.version_detection", version_detection, "is not true or false")
    scripts = _scripts(params.get("scripts", []))

    args = [nmap_path, "-sT", "-n", "-Pn"]
    if ipaddress.ip_address(target).version == 6:
        args.append("-6")
    args += ["-p", ports, "--max-rate", max_rate, "--max-retries", str(retries)]
    args += ["--host-timeout", f"{host_timeout}s"]
    if version_detection:
        args += ["-sV", "--version-light"]
    if scripts:
        args += ["--script", ",".join(scripts)]
    return args


def _parse(xml: str, nmap_path: str) -> dict[str, Any]:
    # PortScanner() runs `nmap -V` on construction, a second process per probe that measurably
    # slowed each scan; the XML analysis needs none of what __init__ sets up, so the instance is
    # made without it (one per call: analyse_nmap_xml_scan keeps its result on the instance).
    del nmap_path
    scanner = nmap.PortScanner.__new__(nmap.PortScanner)
    result: dict[str, Any] = scanner.analyse_nmap_xml_scan(xml)
    return result


def _state_key(state: str) -> str:
    if state == "open":
        return "port.open"
    if state == "closed":
        return "port.closed"
    # filtered, open|filtered, closed|filtered, unfiltered: nothing proves the port answers.
    return "port.filtered"


def _observations(
    permit: Permit, scan: Mapping[str, Any], xml: str, *, fold: bool = True
) -> list[Observation]:
    host = scan.get("scan", {}).get(permit.ip)
    tcp: Mapping[int, Mapping[str, Any]] = host.get("tcp", {}) if host else {}
    # nmap folds many ports in one state into <extraports>; attribute them when unambiguous.
    collapsed = set(_EXTRAPORTS.findall(xml))
    folded_state = collapsed.pop() if len(collapsed) == 1 and host else "unknown"
    return port_observations(permit.ports, tcp, folded_state if fold else None)


def port_observations(
    ports: Iterable[int], tcp: Mapping[int, Mapping[str, Any]], folded_state: str | None
) -> list[Observation]:
    """One observation per permitted port: those nmap listed (``tcp``, as python-nmap reads
    them), then the rest in ``folded_state`` (nmap's ``<extraports>``, or ``unknown``); with
    ``folded_state=None`` (a scan cut off by its host timeout) only the ports nmap listed."""
    observations: list[Observation] = []
    for port in sorted(tcp):
        info = tcp[port]
        state = str(info.get("state", ""))
        detail = " ".join(
            str(info.get(k, "")) for k in ("product", "version", "extrainfo") if info.get(k)
        )
        scripts = info.get("script") or {}
        script_text = "\n".join(f"{k}: {v}" for k, v in sorted(scripts.items()))
        evidence = "\n".join(t for t in (detail, script_text) if t) or None
        observations.append(
            Observation(
                key=_state_key(state),
                value={
                    "port": int(port),
                    "protocol": "tcp",
                    "state": state,
                    "service": str(info.get("name", "")) or None,
                },
                port=int(port),
                evidence=evidence,
            )
        )
    if folded_state is None:
        return observations  # nmap was cut off: a port it did not list is not known
    for port in sorted(set(ports) - {int(p) for p in tcp}):
        observations.append(
            Observation(
                key=_state_key(folded_state),
                value={"port": port, "protocol": "tcp", "state": folded_state, "service": None},
                port=port,
            )
        )
    return observations


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    # Reap the child so no zombie stays behind, bounded in case the kernel is slow.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout=5.0)


class PortProbe:
    """TCP connect scan of the permitted ports with nmap (one host, no ping, no DNS)."""

    name: ClassVar[str] = "port"
    disruption: ClassVar[Disruption] = Disruption.LIGHT

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Scan ``permit.ports`` on ``permit.ip`` and observe each port's state.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a field failed the nmap allowlist.
            ToolMissingError: nmap is not installed.
            ProbeCancelledError: the kill switch fired or the task was cancelled (nmap is killed).
        """
        check_permit(permit, self.name)
        nmap_path = find_nmap(ctx.nmap_path)
        args = build_nmap_args(permit, nmap_path)
        if ctx.is_cancelled():
            raise ProbeCancelledError("port probe: cancelled before nmap started")
        started = monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ToolMissingError(f"nmap at {nmap_path!r} could not start: {exc}") from exc
        connections = len(set(permit.ports))
        communicate = asyncio.ensure_future(proc.communicate())
        try:
            while not communicate.done():
                left = permit.seconds_left()
                if ctx.is_cancelled():
                    raise ProbeCancelledError(f"port probe: killed nmap (pid {proc.pid})")
                if left <= 0:
                    await _kill(proc)
                    with contextlib.suppress(Exception):
                        await communicate
                    return ProbeResult(
                        probe=self.name,
                        ip=permit.ip,
                        outcome="timeout",
                        error="permit deadline reached; nmap killed",
                        started=started,
                        elapsed=monotonic() - started,
                        connections=connections,
                    )
                await asyncio.wait({communicate}, timeout=min(_POLL_SECONDS, left))
        except asyncio.CancelledError as exc:
            await _kill(proc)
            communicate.cancel()
            message = f"port probe: cancelled, killed nmap (pid {proc.pid})"
            raise ProbeCancelledError(message) from exc
        except ProbeCancelledError:
            await _kill(proc)
            communicate.cancel()
            raise
        stdout, stderr = communicate.result()
        elapsed = monotonic() - started
        xml = stdout.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            message = stderr.decode("utf-8", errors="replace").strip()[:_STDERR_LIMIT]
            return ProbeResult(
                probe=self.name,
                ip=permit.ip,
                outcome="error",
                error=f"nmap exited with {proc.returncode}: {message}",
                started=started,
                elapsed=elapsed,
                connections=connections,
            )
        loop = asyncio.get_running_loop()
        try:
            scan = await loop.run_in_executor(None, _parse, xml, nmap_path)
        except nmap.PortScannerError as exc:
            # A failure to read nmap's answer is an outcome to log, not a crash of the run.
            return ProbeResult(
                probe=self.name,
                ip=permit.ip,
                outcome="error",
                error=f"nmap XML could not be parsed: {str(exc)[:_STDERR_LIMIT]}",
                started=started,
                elapsed=elapsed,
                connections=connections,
            )
        outcome, error, observations = scan_outcome(permit, scan, xml)
        return ProbeResult(
            probe=self.name,
            ip=permit.ip,
            outcome=outcome,
            observations=observations,
            error=error,
            started=started,
            elapsed=elapsed,
            connections=connections,
        )


def scan_outcome(
    permit: Permit, scan: Mapping[str, Any], xml: str
) -> tuple[str, str | None, tuple[Observation, ...]]:
    """Judge a finished nmap run: ``(outcome, error, observations)``.

    A host cut off by ``--host-timeout`` is outcome ``timeout``, never ``ok``: nmap then writes
    ``<host timedout="true">`` with the ports it had reached so far (often none), and a port it
    never reported is *unknown*, not closed. The ports it did report are kept.
    """
    host = scan.get("scan", {}).get(permit.ip)
    if not host:
        # With -Pn the host is always "up"; no host block at all also means it was cut off.
        return "timeout", "nmap host timeout: no result for the host", ()
    if _TIMED_OUT.search(xml):
        timeout = permit.params.get("host_timeout", _DEFAULT_HOST_TIMEOUT)
        reported = tuple(_observations(permit, scan, xml, fold=False))
        error = (
            f"nmap --host-timeout {timeout}s reached before the scan finished; "
            f"{len(reported)} of {len(set(permit.ports))} ports reported, the rest unknown"
        )
        return "timeout", error, reported
    return "ok", None, tuple(_observations(permit, scan, xml))
