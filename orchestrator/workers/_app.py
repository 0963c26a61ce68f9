"""The worker side of ``rio.probe``: bind the task to this process's dependencies."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any

import redis
from celery import Celery

from orchestrator.errors import InputError
from orchestrator.run.executors._broker import PROBE_TASK, answer_list
from orchestrator.settings import Settings
from orchestrator.workers._claims import ClaimStore
from orchestrator.workers._handle import WorkerDeps, handle_permit
from orchestrator.workers._kill import KillListener

__all__ = ["check_egress", "register_probe_task", "worker_deps"]


def check_egress(address: str) -> str:
    """The canonical form of ``address``, once a socket could be bound to it here.

    Raises:
        InputError: not an IP address, or not one of this host's (nothing could leave from it).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise InputError(f"--egress: {address!r} is not an IP address") from None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
    except OSError as exc:
        raise InputError(f"--egress: cannot send from {ip}: {exc.strerror}") from None
    return str(ip)


def worker_deps(settings: Settings, *, name: str, egress: str | None = None) -> WorkerDeps:
    client = redis.Redis.from_url(settings.state_url)
    kills = KillListener(
        client=redis.Redis.from_url(settings.state_url), namespace=settings.celery_queue
    )
    return WorkerDeps(
        permit_key=settings.require_permit_key(),
        claims=ClaimStore(client, namespace=settings.celery_queue),
        kills=kills,
        nmap_path=settings.nmap_path,
        name=name,
        egress=egress,
    )


def register_probe_task(app: Celery, deps: WorkerDeps, settings: Settings) -> None:
    """Bind ``rio.probe`` in this worker process to its dependencies."""
    answers = redis.Redis.from_url(settings.state_url)
    namespace = settings.celery_queue

    @app.task(name=PROBE_TASK, bind=True)  # type: ignore[untyped-decorator]
    def probe(self: Any, doc: dict[str, Any], reply: str | None = None) -> None:
        task_id = str(self.request.id)
        answer = asyncio.run(handle_permit(doc, task_id, deps))
        if reply is not None and reply.startswith(f"{namespace}:reply:"):
            # The orchestrator's one reply list: it knows the delivery by its task id.
            answers.rpush(reply, json.dumps({"task": task_id, "answer": answer}))
            answers.expire(reply, 3600)
            return
        name = answer_list(namespace, task_id)
        answers.rpush(name, json.dumps(answer))
        answers.expire(name, 3600)
