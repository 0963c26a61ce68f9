"""Port scans in batches: one nmap process for many permits, each permit one target address.

One nmap per target cost ~47 ms of CPU and a blocking spawn each; one nmap over a batch of
targets (``-iL``) costs about as much as a plain scan of the same hosts. The batch keeps every
promise of the single :class:`~probes.port.PortProbe`:

* **permits**: every permit is checked (seal, probe, deadline) before nmap starts; all permits
  of a batch scan the same ports with the same parameters, each names a distinct address;
* **allowlist**: the argument vector is built only from checked numbers, canonical IP literals
  written one per line into the target file, and :data:`~probes.port.SAFE_SCRIPTS`;
* **pacing**: ``--max-rate`` is the caller's rate (the run's tightest shared budget), and each
  target is scanned once per batch, so a target sees at most its permit's ports;
* **what was sent**: ``--packet-trace`` makes nmap report each ``connect()``; those times (nmap's
  own, anchored at the spawn) are returned per target, so the outcome says what went out;
* **stopping**: the kill switch and the earliest permit deadline terminate the process; every
  permit then reports ``killed`` or ``timeout`` with the connections nmap had already made.

nmap is started in a worker thread (``subprocess.Popen``) with its output going to files, so
the event loop never blocks on a fork of a large interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probes.base import Permit, ProbeContext, ProbeResult, check_permit, monotonic
from probes.errors import ProbeArgumentError, ToolMissingError
from probes.port import _target, find_nmap, port_observations, scan_args

__all__ = [
    "MAX_BATCH",
    "PreparedScan",
    "batch_key",
    "build_batch_args",
    "check_batch",
    "prepare_scan",
    "scan_batch",
]

MAX_BATCH = 4096
"""most targets in one nmap process"""

_POLL_SECONDS = 0.02
_STDERR_LIMIT = 500
_TERMINATE_GRACE = 2.0
_OPEN_SECONDS = 10.0
"""seconds nmap may take to open its target FIFO"""
# "CONN (0.0875s) TCP localhost > 127.0.64.2:443 => Operation now in progress"
_CONN = re.compile(r"^CONN \((\d+\.\d+)s\) TCP \S+ > \[?([0-9A-Fa-f:.]+)\]?:(\d+) => (.*)$")
_CALLED = "Operation now in progress"


def batch_key(permit: Permit) -> str:
    """Permits with equal keys may share one nmap process (same ports, parameters, family)."""
    version = 6 if ":" in str(permit.ip) else 4  # the address itself is checked later
    return json.dumps(
        [sorted(set(permit.ports)), dict(permit.params), version], sort_keys=True, default=str
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Files:
    targets: Path
    xml: Path
    trace: Path
    stderr: Path


def _refuse(field: str, value: object, why: str) -> ProbeArgumentError:
    return ProbeArgumentError(f"port batch: {field}: {value!r} {why}")


def check_batch(permits: Sequence[Permit]) -> str:
    """Check that ``permits`` can share one nmap; returns their :func:`batch_key`.

    Raises:
        ProbeArgumentError: no permits or too many, two runs, two shapes, an address twice or
            not a canonical literal.
    """
    if not permits or len(permits) > MAX_BATCH:
        raise _refuse("permits", len(permits), f"is not 1..{MAX_BATCH} permits")
    first = permits[0]
    key = batch_key(first)
    seen: set[str] = set()
    for permit in permits:
        if batch_key(permit) != key:
            raise _refuse("permits", permit.ip, "differs in ports or parameters from the batch")
        if permit.run_id != first.run_id:
            raise _refuse("permits", permit.run_id, "is another run than the batch's")
        ip = _target(permit.ip)
        if ip in seen:
            raise _refuse("permits", ip, "is in the batch twice")
        seen.add(ip)
    return key


def build_batch_args(
    permits: Sequence[Permit],
    nmap_path: str,
    *,
    max_rate: float,
    targets_file: str,
    xml_file: str,
    hostgroup: int | None = None,
) -> list[str]:
    """The nmap argument vector for a batch, from the allowlist only.

    Args:
        permits: the batch (see :func:`check_batch`), or one permit of its shape.
        nmap_path: absolute path of nmap (see :func:`~probes.port.find_nmap`).
        max_rate: connections per second for the whole batch.
        targets_file: the file (or FIFO) that gives the addresses, one per line.
        xml_file: where nmap writes its XML report.
        hostgroup: most targets nmap scans in parallel; the number of permits if ``None``.

    Raises:
        ProbeArgumentError: a field is not what the allowlist accepts, or the permits differ.
    """
    check_batch(permits)
    first = permits[0]
    for path in (targets_file, xml_file):
        if not isinstance(path, str) or not Path(path).is_absolute():
            raise _refuse("path", path, "is not an absolute path")
        if any(ch.isspace() or ch == "," for ch in path):
            raise _refuse("path", path, "contains a space, comma or newline")
    group = len(permits) if hostgroup is None else hostgroup
    if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= MAX_BATCH:
        raise _refuse("hostgroup", group, f"is not 1..{MAX_BATCH}")
    args = scan_args(first, nmap_path, max_rate)
    args += ["--max-hostgroup", str(group), "--packet-trace"]
    args += ["-oX", xml_file, "-oN", "/dev/null", "-iL", targets_file]
    return args


def _line_buffered() -> list[str]:
    """``stdbuf -oL``: nmap writes its trace through C stdio and loses a full buffer when it is
    terminated, so without line buffering a killed batch would under-report what it sent."""
    stdbuf = shutil.which("stdbuf")
    if stdbuf is None:
        raise ToolMissingError("stdbuf (coreutils) not found on PATH; the batch scan needs it")
    return [os.path.abspath(stdbuf), "-oL"]


def _spawn(args: list[str], files: _Files) -> tuple[subprocess.Popen[bytes], float, int]:
    """Start nmap and open the writing end of its target FIFO (in a worker thread).

    nmap opens its ``-iL`` file while it parses its options, loads its data files, then blocks
    reading the FIFO: the targets (written once their intents are durable) start the scan at
    once, with nmap's start-up already behind it. Returns the process, the wall-clock spawn
    instant (nmap's trace times count from its start) and the FIFO's writing descriptor.
    """
    with files.trace.open("wb") as trace, files.stderr.open("wb") as err:
        spawned = time.time()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=trace, stderr=err)
    deadline = time.monotonic() + _OPEN_SECONDS
    while True:
        try:
            # Non-blocking: fails with ENXIO until nmap has opened the FIFO for reading.
            return proc, spawned, os.open(files.targets, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None:
                _terminate(proc)
                raise
            if time.monotonic() > deadline:
                _terminate(proc)
                raise OSError(errno.ETIMEDOUT, "nmap did not open its target list") from None
            time.sleep(0.002)


def _feed(fd: int, permits: Sequence[Permit]) -> None:
    """Write the batch's addresses into the FIFO and close it (nmap then sees the end)."""
    try:
        os.set_blocking(fd, True)
        data = "".join(f"{p.ip}\n" for p in permits).encode()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=_TERMINATE_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_TERMINATE_GRACE)


def _connection_times(trace: Path, spawned: float) -> dict[str, list[float]]:
    """Per address, the wall-clock instant of every ``connect()`` nmap reports.

    A connect that completes at once prints its result without an "in progress" line first, so
    a result line for a port with no call outstanding counts as a call too.
    """
    times: dict[str, list[float]] = defaultdict(list)
    outstanding: set[tuple[str, str]] = set()
    with trace.open("r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.startswith("CONN "):
                continue
            match = _CONN.match(line.rstrip("\n"))
            if match is None:
                continue
            rel, ip, port, what = match.groups()
            key = (ip, port)
            if what == _CALLED:
                outstanding.add(key)
            elif key in outstanding:
                outstanding.discard(key)
                continue
            times[ip].append(spawned + float(rel))
    return times


# Per address: the ports nmap listed (python-nmap's shape), the folded <extraports> state, and
# whether --host-timeout cut the host off (<host timedout="true">).
_HostScan = tuple[dict[int, dict[str, Any]], str, bool]


def _scan_xml(path: Path) -> dict[str, _HostScan] | None:
    """Per address: the listed ports (python-nmap's shape) and the folded state; ``None`` when
    the report is missing or cut short (nmap was stopped)."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - nmap's own report, written just now
    except (OSError, ET.ParseError):
        return None
    hosts: dict[str, _HostScan] = {}
    for host in root.iter("host"):
        address = next(
            (a.get("addr") for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")),
            None,
        )
        if address is None:
            continue
        tcp: dict[int, dict[str, Any]] = {}
        folded: set[str] = set()
        for ports in host.iter("ports"):
            for extra in ports.iter("extraports"):
                folded.add(extra.get("state", ""))
            for port in ports.iter("port"):
                if port.get("protocol") != "tcp":
                    continue
                state = port.find("state")
                service = port.find("service")
                info: dict[str, Any] = {
                    "state": state.get("state", "") if state is not None else ""
                }
                if service is not None:
                    for k in ("name", "product", "version", "extrainfo"):
                        info[k] = service.get(k, "")
                scripts = {s.get("id", ""): s.get("output", "") for s in port.iter("script")}
                if scripts:
                    info["script"] = scripts
                tcp[int(port.get("portid", "0"))] = info
        hosts[str(ipaddress.ip_address(address))] = (
            tcp,
            folded.pop() if len(folded) == 1 else "unknown",
            host.get("timedout") == "true",
        )
    return hosts


def _read(files: _Files, spawned: float) -> tuple[dict[str, list[float]], Any, str]:
    times = _connection_times(files.trace, spawned)
    hosts = _scan_xml(files.xml)
    stderr = files.stderr.read_bytes()[:_STDERR_LIMIT].decode("utf-8", errors="replace").strip()
    return times, hosts, stderr


class PreparedScan:
    """An nmap started for one batch shape, waiting on an empty FIFO for its targets.

    Made by :func:`prepare_scan` while the previous batch is still on the wire, so nmap's
    start-up does not delay the next batch. Until :meth:`scan` writes the targets nmap has
    nothing to send to; :meth:`discard` ends it without a packet sent.
    """

    def __init__(
        self,
        *,
        key: str,
        tmp: tempfile.TemporaryDirectory[str],
        files: _Files,
        proc: subprocess.Popen[bytes],
        spawned: float,
        fd: int,
    ) -> None:
        self.key = key
        self._tmp = tmp
        self._files = files
        self._proc = proc
        self._spawned = spawned
        self._fd: int | None = fd

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def discard(self) -> None:
        """End the waiting nmap (it never received a target) and remove its files."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        await asyncio.to_thread(_terminate, self._proc)
        self._tmp.cleanup()

    async def scan(self, permits: Sequence[Permit], ctx: ProbeContext) -> list[ProbeResult]:
        """Hand the batch to nmap and wait for it; one result per permit, in order.

        Raises:
            PermitError: a permit is not valid for the port probe now (nothing was sent).
            ProbeArgumentError: the permits differ from the prepared shape (nothing was sent).
        """
        try:
            if self._fd is None:
                raise _refuse("scan", self.pid, "was discarded or has already scanned")
            for permit in permits:
                check_permit(permit, "port")
            if check_batch(permits) != self.key:
                raise _refuse("permits", permits[0].ip, "differ from the prepared batch shape")
            started = monotonic()
            if ctx.is_cancelled():
                why = "kill switch before the batch"
                return [_result(p, "killed", why, started) for p in permits]
            fd, self._fd = self._fd, None
            try:
                await asyncio.to_thread(_feed, fd, permits)
            except OSError as exc:
                why = f"nmap (pid {self.pid}) ended before its targets: {exc}"
                raise ToolMissingError(why) from exc
            stopped = await self._wait(ctx, min(p.deadline for p in permits))
            elapsed = monotonic() - started
            times, hosts, stderr = await asyncio.to_thread(_read, self._files, self._spawned)
        finally:
            await asyncio.shield(self.discard())
        return [
            _outcome(p, times.get(p.ip, ()), stopped, self._proc, hosts, stderr, started, elapsed)
            for p in permits
        ]

    async def _wait(self, ctx: ProbeContext, deadline: datetime) -> str | None:
        """Wait for nmap to finish; ``killed`` / ``timeout`` when it had to be stopped."""
        stopped: str | None = None
        try:
            while self._proc.poll() is None:
                if ctx.is_cancelled():
                    stopped = "killed"
                    break
                if (deadline - datetime.now(UTC)).total_seconds() <= 0:
                    stopped = "timeout"
                    break
                await asyncio.sleep(_POLL_SECONDS)
        finally:
            # Cancelled or stopped: nothing of the batch may keep sending.
            await asyncio.to_thread(_terminate, self._proc)
        return stopped


async def prepare_scan(
    template: Permit, ctx: ProbeContext, *, max_rate: float, hostgroup: int
) -> PreparedScan:
    """Start nmap for batches shaped like ``template`` (ports, parameters, address family).

    Raises:
        ProbeArgumentError: the template fails the allowlist.
        ToolMissingError: nmap (or stdbuf) is missing or could not start.
    """
    nmap_path = find_nmap(ctx.nmap_path)
    tmp = tempfile.TemporaryDirectory(prefix="rio-nmap-")
    try:
        files = _Files(
            targets=Path(tmp.name) / "targets",
            xml=Path(tmp.name) / "report.xml",
            trace=Path(tmp.name) / "trace",
            stderr=Path(tmp.name) / "stderr",
        )
        args = build_batch_args(
            [template],
            nmap_path,
            max_rate=max_rate,
            targets_file=str(files.targets),
            xml_file=str(files.xml),
            hostgroup=hostgroup,
        )
        os.mkfifo(files.targets, 0o600)
        try:
            proc, spawned, fd = await asyncio.to_thread(_spawn, [*_line_buffered(), *args], files)
        except OSError as exc:
            raise ToolMissingError(f"nmap at {nmap_path!r} could not start: {exc}") from exc
    except BaseException:
        tmp.cleanup()
        raise
    return PreparedScan(
        key=batch_key(template), tmp=tmp, files=files, proc=proc, spawned=spawned, fd=fd
    )


async def scan_batch(
    permits: Sequence[Permit], ctx: ProbeContext, *, max_rate: float
) -> list[ProbeResult]:
    """Scan every permit's ports on its pinned address with one nmap; one result per permit.

    Args:
        permits: the batch (see :func:`check_batch`); every one is checked before a send.
        ctx: the probe context (nmap path, kill switch).
        max_rate: connections per second for the whole batch.

    Returns:
        Results in the order of ``permits``; each carries the connection times nmap reported
        for its address (``connection_times``) and ``connections`` counts them.

    Raises:
        PermitError: a permit is not valid for the port probe now (nothing was sent).
        ProbeArgumentError: a field failed the allowlist (nothing was sent).
        ToolMissingError: nmap is missing or could not start.
    """
    for permit in permits:
        check_permit(permit, "port")
    check_batch(permits)
    prepared = await prepare_scan(permits[0], ctx, max_rate=max_rate, hostgroup=len(permits))
    return await prepared.scan(permits, ctx)


def _outcome(
    permit: Permit,
    times: Sequence[float],
    stopped: str | None,
    proc: subprocess.Popen[bytes],
    hosts: dict[str, _HostScan] | None,
    stderr: str,
    started: float,
    elapsed: float,
) -> ProbeResult:
    sent = tuple(times)
    if stopped == "killed":
        outcome, error = "killed", f"kill switch; nmap (pid {proc.pid}) terminated"
    elif stopped == "timeout":
        outcome, error = "timeout", "permit deadline reached; nmap terminated"
    elif proc.returncode != 0 or hosts is None:
        outcome, error = "error", f"nmap exited with {proc.returncode}: {stderr}"
    elif permit.ip not in hosts:
        # With -Pn every host is "up"; a missing host means --host-timeout cut it off.
        outcome, error = "timeout", "nmap host timeout"
    else:
        tcp, folded, timed_out = hosts[permit.ip]
        cut_off: str | None = None
        if timed_out:
            # Never ``ok``: nmap gave up on the host; a port it did not list is not known.
            listed = len(set(permit.ports) & set(tcp))
            cut_off = (
                f"nmap --host-timeout {permit.params.get('host_timeout')}s reached before the "
                f"scan finished; {listed} of {len(set(permit.ports))} ports reported, "
                "the rest unknown"
            )
        return ProbeResult(
            probe="port",
            ip=permit.ip,
            outcome="timeout" if timed_out else "ok",
            error=cut_off,
            observations=tuple(port_observations(permit.ports, tcp, None if timed_out else folded)),
            started=started,
            elapsed=elapsed,
            connections=len(sent),
            connection_times=sent,
        )
    return _result(permit, outcome, error, started, elapsed, sent)


def _result(
    permit: Permit,
    outcome: str,
    error: str,
    started: float,
    elapsed: float = 0.0,
    sent: tuple[float, ...] = (),
) -> ProbeResult:
    return ProbeResult(
        probe="port",
        ip=permit.ip,
        outcome=outcome,
        error=error,
        started=started,
        elapsed=elapsed,
        connections=len(sent),
        connection_times=sent,
    )
