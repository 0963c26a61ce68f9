"""The kill bell: a committed kill wakes its runner at once instead of at its next poll.

A kill is a row in the database (:func:`~orchestrator.run.runs.request_kill`); the runner reads
it from there. Polling alone left up to ``poll_seconds`` between the kill's commit and the
runner's reaction. So while a runner runs, it binds a *bell*: a Linux abstract-namespace Unix
datagram socket whose name is derived from the database URL and the run id. After the
transaction that requested the kill commits, the requester sends one byte to that name.

The byte carries no authority: a runner answers a ring exactly as it answers its poll, by
reading the kill from the database (a ring with no kill behind it costs one read). Where no bell
can be bound (not Linux, the name is taken) or the runner is on another host (a shared
PostgreSQL), nothing answers the ring and the runner's poll is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

__all__ = ["KillBell", "ring_after_commit"]


def _name(engine: Engine, run_id: str) -> str:
    # Hashed: the socket's name never shows the database URL (or its password) to `ss -x`.
    url = engine.url.render_as_string(hide_password=False)
    digest = hashlib.sha256(f"{url}\0{run_id}".encode()).hexdigest()[:40]
    return f"\0rio-kill-{digest}"


def _ring(name: str) -> None:
    with (
        contextlib.suppress(OSError, AttributeError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.setblocking(False)
        sock.sendto(b"k", name)


def ring_after_commit(s: Session, run_id: str) -> None:
    """Ring ``run_id``'s bell once the session's current transaction commits.

    A rolled-back transaction rings nothing. Nobody listening is not an error.
    """
    bind = s.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    name = _name(engine, run_id)

    def after_commit(_session: Session) -> None:
        _ring(name)

    event.listen(s, "after_commit", after_commit, once=True)


class KillBell:
    """The runner's side: bound while the run runs; :attr:`rung` is set by each ring.

    Args:
        engine: the run's database engine (its URL names the bell, with the run id).
        run_id: the run.
    """

    def __init__(self, engine: Engine, run_id: str) -> None:
        self._name = _name(engine, run_id)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rung = asyncio.Event()

    def open(self) -> bool:
        """Bind the bell on the running loop; ``False`` where it cannot be (then poll only)."""
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except (OSError, AttributeError):
            return False
        try:
            sock.setblocking(False)
            sock.bind(self._name)
        except OSError:
            sock.close()
            return False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_ring)
        self._sock = sock
        return True

    def _on_ring(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                self._sock.recv(16)
        self.rung.set()

    def close(self) -> None:
        """Unbind (the abstract name vanishes with the socket)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
