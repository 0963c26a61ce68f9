"""``rio worker``: a Celery worker that sends probes on wire permits (``RIO_EXECUTOR=celery``)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from orchestrator.errors import InputError

__all__ = ["register", "worker"]


def worker(
    name: Annotated[
        str, typer.Option(help="This worker's name (in logs and refusals).")
    ] = f"rio-{socket.gethostname()}",
    concurrency: Annotated[int, typer.Option(help="Probes in flight at once.")] = 8,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "info",
    egress: Annotated[
        str | None,
        typer.Option(
            help="Pin this worker to a scanner source address: it takes only the probes routed "
            "to it (RIO_EGRESS) and sends them from that address, if their notice announced it."
        ),
    ] = None,
) -> None:
    """Run a probe worker in the foreground (``RIO_BROKER_URL``, ``RIO_PERMIT_KEY``)."""
    from orchestrator.run.executors._broker import celery_app, egress_queue
    from orchestrator.settings import load_settings
    from orchestrator.workers import check_egress, register_probe_task, worker_deps

    if not 1 <= concurrency <= 256:
        raise InputError(f"--concurrency: {concurrency} is outside 1..256")
    settings = load_settings()
    if not settings.broker_url or not settings.state_url:
        raise InputError("rio worker needs RIO_BROKER_URL (and RIO_STATE_URL for an amqp broker)")
    source = None if egress is None else check_egress(egress)
    deps = worker_deps(settings, name=name, egress=source)
    app = celery_app(settings)
    register_probe_task(app, deps, settings)
    deps.kills.start()
    try:
        app.worker_main(
            [
                "worker",
                f"--hostname={name}@%h",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--queues={egress_queue(settings.celery_queue, source)}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        deps.kills.stop()


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the ``rio`` command line."""
    app.command("worker")(worker)
