"""The loopback farm in a child process, so that its event loop does not share rio's GIL.

On a 2-core machine a farm in rio's own process would take CPU from the code being measured
(real targets are elsewhere). The child serves until told to stop, or until ``spec.lifetime``
ends (the farm stops itself), and answers requests for HTTP(S) arrival times; ``time.monotonic``
is system-wide on Linux, so those times compare with the parent's clock.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from orchestrator.demo.farm import Farm, FarmSpec

__all__ = ["FarmProcess"]

_ANSWER_TIMEOUT = 180.0


def _serve(spec: FarmSpec, conn: Connection) -> None:
    with Farm(spec) as farm:
        conn.send(
            {
                "targets": farm.targets,
                "http_port": farm.http_port,
                "https_port": farm.https_port,
                "open_ports": farm.open_ports,
            }
        )
        # Bounded: the farm's lifetime, then the child exits by itself.
        while farm.running and conn.poll(spec.lifetime):
            message = conn.recv()
            if message == "stop":
                break
            if message == "times":
                conn.send({ip: farm.request_times(ip) for ip in farm.targets})
            elif message == "counters":
                conn.send(farm.counters())


@dataclass
class FarmProcess:
    """A farm served by a child process; a context manager (the child ends on exit)."""

    spec: FarmSpec
    targets: tuple[str, ...] = ()
    http_port: int = 0
    https_port: int = 0
    open_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self._conn: Connection | None = None
        self._proc: Any = None

    def __enter__(self) -> FarmProcess:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self.spec, child), daemon=True)
        self._proc.start()
        self._conn = parent
        waited = 0.0
        while not parent.poll(0.1):
            waited += 0.1
            if not self._proc.is_alive() or waited > _ANSWER_TIMEOUT:
                self.__exit__(None, None, None)
                raise RuntimeError("bench: the farm process did not start")
        ready = parent.recv()
        self.targets = tuple(ready["targets"])
        self.http_port = int(ready["http_port"])
        self.https_port = int(ready["https_port"])
        self.open_ports = tuple(ready["open_ports"])
        return self

    def _ask(self, message: str) -> Any:
        if self._conn is None:
            raise RuntimeError("bench: the farm process is not running")
        self._conn.send(message)
        if not self._conn.poll(_ANSWER_TIMEOUT):
            raise RuntimeError(f"bench: the farm process did not answer {message!r}")
        return self._conn.recv()

    def request_times(self) -> dict[str, list[float]]:
        """Every target's HTTP(S) arrival times (``time.monotonic()``)."""
        times: dict[str, list[float]] = self._ask("times")
        return times

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            # The child may have ended already (lifetime over): nothing to tell it then.
            with contextlib.suppress(OSError, ValueError):
                self._conn.send("stop")
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(15.0)
            if self._proc.is_alive():
                self._proc.kill()  # our own child, by its handle
                self._proc.join(5.0)
            self._proc = None
