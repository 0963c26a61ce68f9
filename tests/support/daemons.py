"""Real third-party servers (Debian binaries) on loopback addresses and their standard ports.

:func:`session_address` hands out 127.x.y.z addresses from a block chosen per test session (from
the process id), never 127.0.0.1 where the machine's own PostgreSQL and Redis listen, so two test
sessions at once do not collide. :class:`Daemon` starts one binary in the foreground, waits
(bounded) until its port accepts connections, and stops it when the ``with`` block ends. A
missing binary skips the test with the package to install, or fails it under
``RIO_REQUIRE_SERVICES=1`` (CI installs the packages).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest

__all__ = ["Daemon", "require_binary", "session_address"]

_START_SECONDS = 15.0
_STOP_SECONDS = 5.0
_POLL_SECONDS = 0.05
# Second octet 200..231, third from the pid: one /24 per session, 254 hosts in it.
_BLOCK = ipaddress.ip_network(f"127.{200 + os.getpid() % 32}.{(os.getpid() // 32) % 256}.0/24")
_HOSTS = itertools.islice(_BLOCK.hosts(), 1, None)  # .1 is left alone


def session_address() -> str:
    """A fresh loopback address of this test session's block (standard ports stay free on it)."""
    address = str(next(_HOSTS))
    assert ipaddress.ip_address(address).is_loopback
    return address


def require_binary(path: str, package: str) -> str:
    """The binary's path, or skip naming the Debian package (fail under RIO_REQUIRE_SERVICES=1)."""
    found = shutil.which(path) or (path if Path(path).is_file() else None)
    if found is None:
        message = f"{path} not installed (apt-get install {package})"
        if os.environ.get("RIO_REQUIRE_SERVICES") == "1":
            pytest.fail(f"RIO_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return found


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


class Daemon:
    """One server process bound to ``address:port``; stopped and reaped when the block ends."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        address: str,
        port: int,
        log: Path,
        ready_probe: bool = True,
    ) -> None:
        assert ipaddress.ip_address(address).is_loopback, (
            f"lab servers bind loopback, not {address}"
        )
        self.argv = list(argv)
        self.address = address
        self.port = port
        self.log = log
        self.ready_probe = ready_probe
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        handle = self.log.open("ab")
        self._process = subprocess.Popen(
            self.argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        handle.close()
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail("exited at start")
            if not self.ready_probe or _accepts(self.address, self.port):
                return self
            time.sleep(_POLL_SECONDS)
        self._fail(f"did not listen on {self.address}:{self.port} within {_START_SECONDS:g}s")
        raise AssertionError("unreachable")

    def _fail(self, why: str) -> None:
        self.stop()
        text = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        pytest.fail(f"{self.argv[0]} {why}:\n{text}")

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_SECONDS)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
