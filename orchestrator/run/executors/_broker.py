"""What the orchestrator and its workers share about the broker: the task, the answer lists,
the kill channel, and the Celery app with rio's delivery rules.

Late acknowledgement (``task_acks_late``), one message prefetched per worker thread, and a lost
worker's task rejected back to the queue: a worker killed mid-task has its task delivered again to
another worker, whose claim store then decides whether anything may be sent. The answer goes back
on a Redis list the orchestrator's executor waits on (``BLPOP``), not through a polled result
backend.
"""

from __future__ import annotations

import json

import redis
from celery import Celery

from orchestrator.settings import Settings

__all__ = [
    "PROBE_TASK",
    "answer_list",
    "celery_app",
    "egress_queue",
    "kill_channel",
    "publish_kill",
    "reply_list",
]

PROBE_TASK = "rio.probe"


def answer_list(namespace: str, task_id: str) -> str:
    """The Redis list a worker pushes its answer to for a task that names no reply list."""
    return f"{namespace}:answer:{task_id}"


def egress_queue(queue: str, source: str | None) -> str:
    """The queue of the workers pinned to ``source`` (``rio worker --egress``), or ``queue``."""
    return queue if source is None else f"{queue}@{source}"


def reply_list(namespace: str, executor: str) -> str:
    """The Redis list one orchestrator's executor reads every answer from (``{task, answer}``)."""
    return f"{namespace}:reply:{executor}"


def kill_channel(namespace: str) -> str:
    """The pub/sub channel every worker of ``namespace`` listens on for kills."""
    return f"{namespace}:kill"


def publish_kill(client: redis.Redis, namespace: str, *, run: str, key: str | None = None) -> int:
    """Tell every worker to stop ``run`` (or only the permit ``key``); returns listeners reached."""
    body = json.dumps({"run": run, "key": key})
    reached: int = client.publish(kill_channel(namespace), body)  # type: ignore[assignment]
    return reached


def celery_app(settings: Settings) -> Celery:
    """The Celery app over ``RIO_BROKER_URL``, with rio's delivery rules."""
    app = Celery("rio", broker=settings.broker_url, backend=settings.state_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        broker_transport_options=_transport_options(settings.celery_visibility_seconds),
    )
    return app


def _transport_options(visibility: int) -> dict[str, int]:
    """Redis broker: a task a dead worker had taken is delivered again ``visibility`` seconds
    after its delivery (RabbitMQ: at once, when the dead worker's connection closes).

    kombu looks for such tasks only every ``unacked_restore_interval`` seconds, and scans only
    on every ``unacked_restore_throttle``-th look: by default every 10 x 10 s, so a killed
    worker's probes came back after up to 100 s, long after their deadlines. rio looks every
    quarter of the visibility timeout (at most 10 s) and scans each time.
    """
    return {
        "visibility_timeout": visibility,
        "unacked_restore_interval": max(1, min(10, visibility // 4)),
        "unacked_restore_throttle": 1,
    }


def check_broker(settings: Settings, *, timeout: float = 3.0) -> str:
    """Connect to the broker and the state store; what ``rio doctor`` reports.

    Raises:
        ToolError: either cannot be reached.
    """
    from orchestrator.errors import ToolError

    app = celery_app(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        redis.Redis.from_url(settings.state_url, socket_timeout=timeout).ping()
    except Exception as exc:  # kombu and redis raise many kinds; all mean "not reachable"
        raise ToolError(f"broker {_safe(settings.broker_url)}: {exc}") from exc
    return f"{_safe(settings.broker_url)}, state {_safe(settings.state_url)}"


def ping_workers(settings: Settings, *, timeout: float = 2.0) -> list[str]:
    """The names of the workers that answered a broadcast ping within ``timeout``."""
    replies = celery_app(settings).control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


def _safe(url: str) -> str:
    """A URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[-1]}"
