"""``rio run schedule``, ``rio run jobs`` and ``rio serve`` (the scheduler daemon)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator import __version__
from orchestrator.errors import InputError, StateError
from orchestrator.interfaces._auth import AsOpt, KeyOpt
from orchestrator.interfaces._common import open_rio
from orchestrator.interfaces._logging import LOG_FORMATS, configure_daemon_logging
from orchestrator.interfaces._output import (
    console,
    counted,
    print_json,
    print_lines,
    print_table,
    to_jsonable,
    when,
)
from orchestrator.interfaces.cli_run import run_app

if TYPE_CHECKING:
    from orchestrator.context import Rio
    from orchestrator.run.scheduler import RioScheduler


__all__ = ["register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
_LOG = logging.getLogger("rio.serve")


def _every(value: str | None) -> timedelta | None:
    from orchestrator.intake._types import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InputError(f"--every: {value!r}: {exc}") from exc


def run_schedule(
    subject: Annotated[str, typer.Argument(metavar="NOTICE", help="A notice (or a paused run).")],
    key: KeyOpt = None,
    technician: Annotated[
        str | None,
        typer.Option("--technician", "--as", help="Refuse unless the key is this technician's."),
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="Recurring check, e.g. 7d: a new run each period.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plan a run at the notice's next opening (or resume a paused run at the next one).

    Times are shown in the notice's timezone (its policy's); --json gives them in UTC.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.notices import show_notice
    from orchestrator.services.runs import require_run, schedule_run
    from orchestrator.services.schedule import schedule_resume

    period = _every(every)
    resuming = subject.startswith("R-")
    with open_rio() as rio:
        if resuming:
            if period is not None:
                raise InputError(f"{subject}: a run resumes as it was; drop --every")
            require_run(rio, subject)  # an unknown id is called that before a key is asked for
        person = authenticate(rio, key, claimed=technician)
        if resuming:
            resumed = asyncio.run(schedule_resume(rio, person, subject))
            start, tz = resumed.start, show_notice(rio, person, resumed.notice_id).policy.tz
            if as_json:
                print_json({"run_id": subject, "start": start, "timezone": tz.key})
                return
            print_lines([subject, f"resumes at {when(start, tz)} ({tz.key})"])
            return
        planned = schedule_run(rio, person, subject, every=period)
        tz = show_notice(rio, person, subject).policy.tz
    if as_json:
        print_json({"timezone": tz.key} | to_jsonable(planned))
        return
    print_lines([planned.run_id, f"planned start {when(planned.start, tz)} ({tz.key})"])
    if planned.series is not None:
        nxt = when(planned.next_period, tz) if planned.next_period else "none (no opening left)"
        console.print(
            f"recurring every {every} (series {planned.series}); next period {nxt}", markup=False
        )


def run_jobs(key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False) -> None:
    """List the scheduled jobs you may see (run starts and resumes, recurring periods)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.schedule import list_jobs

    with open_rio() as rio:
        person = authenticate(rio, key, claimed=claimed)
        jobs = list_jobs(rio, person)
        tz = rio.settings.tz
    if as_json:
        print_json(jobs)
        return
    print_table(
        ("next run", "kind", "subject", "job"),
        ((when(j.next_run, tz), j.kind, j.subject, j.id) for j in jobs),
        empty=f"no scheduled jobs that {person.name} ({person.role}) may see",
    )


def run_unschedule(
    subject: Annotated[
        str, typer.Argument(metavar="RUN|SERIES", help="A run id, or a series id (--every).")
    ],
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Remove a scheduled run's job (the run stays, to schedule again) or cancel a series."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.schedule import unschedule

    with open_rio() as rio:
        removed = unschedule(rio, authenticate(rio, key, claimed=claimed), subject)
    print_lines(f"removed job {job}" for job in removed)


def serve(
    once: Annotated[
        bool, typer.Option("--once", help="Fire what is due now, then exit (cron, tests).")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between looks for new jobs.")] = 5.0,
    api: Annotated[
        bool, typer.Option("--api", help="Also serve the HTTP API and pages (uvicorn).")
    ] = False,
    host: Annotated[str, typer.Option(help="--api: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="--api: the port to listen on.")] = 8080,
    log_format: Annotated[
        str, typer.Option("--log-format", help="text or json (one object a line).")
    ] = "text",
) -> None:
    """Run the scheduler in the foreground; SIGTERM or Ctrl-C stops it cleanly.

    It logs to stderr, each line with its time (ISO 8601, RIO_TIMEZONE; UTC in json) and
    level; a message that repeats (a standby "retrying") is written once per 5 minutes with
    its count. The last line says it stopped. With --api the HTTP API (/api/v1, OpenAPI at
    /api/v1/openapi.json) and the pages are served on --host:--port beside the scheduler.
    """
    from orchestrator.run.scheduler import RioScheduler
    from orchestrator.settings import load_settings

    if log_format not in LOG_FORMATS:
        raise InputError(f"--log-format: {log_format!r} is neither 'text' nor 'json'")
    if not 0.1 <= poll <= 3600:
        raise InputError(f"--poll: {poll} is outside 0.1..3600 seconds")
    if api and once:
        raise InputError("--api serves until stopped; it does not go with --once")
    if not 0 < port < 65536:
        raise InputError(f"--port: {port} is not a TCP port")
    if once:
        _fire_once()
        return
    configure_daemon_logging(log_format, tz=load_settings().tz)
    started = False
    try:
        with open_rio() as rio, RioScheduler(rio) as scheduler:
            _LOG.info(
                "rio serve %s starting (pid %d, poll %g s%s)",
                __version__,
                os.getpid(),
                poll,
                f", API on http://{host}:{port}/" if api else "",
            )
            started = True
            stop = threading.Event()
            if api:
                _serve_api(rio, scheduler, stop, poll=poll, host=host, port=port)
            else:
                _serve_until_signalled(scheduler, stop, poll=poll)
    except BaseException as exc:
        if started:
            _LOG.error("rio serve stopped: %s", exc or type(exc).__name__)
        raise
    if started:
        _LOG.info("rio serve stopped")


def _serve_until_signalled(scheduler: RioScheduler, stop: threading.Event, *, poll: float) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        _LOG.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        asyncio.run(scheduler.serve(stop, poll_seconds=poll))
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fire_once() -> None:
    """``rio serve --once`` (cron): fire what is due, say what was fired on stdout."""
    from orchestrator.run.scheduler import RioScheduler

    with open_rio() as rio, RioScheduler(rio, on_event=_event) as scheduler:
        try:
            fired = asyncio.run(scheduler.fire_due())
        except StateError as exc:
            # Another instance fires (HA): for cron, not an error.
            console.print(str(exc), markup=False)
            return
    console.print(f"fired {counted(len(fired), 'job')}", markup=False)


def _event(message: str) -> None:
    console.print(message, markup=False)


def _serve_api(
    rio: Rio, scheduler: RioScheduler, stop: threading.Event, *, poll: float, host: str, port: int
) -> None:
    """uvicorn in the foreground (it handles SIGTERM and Ctrl-C), the scheduler in a thread."""
    import uvicorn

    from orchestrator.interfaces.api import create_app

    def serve_scheduler() -> None:  # the scheduler thread's own event loop
        asyncio.run(scheduler.serve(stop, poll_seconds=poll))

    worker = threading.Thread(target=serve_scheduler, name="rio-scheduler")
    worker.start()
    try:
        _LOG.info("API and pages on http://%s:%d/ (OpenAPI /api/v1/openapi.json)", host, port)
        # log_config=None: uvicorn's records go through rio's handler (times, levels, json).
        uvicorn.run(
            create_app(rio),
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            log_config=None,
        )
    finally:
        stop.set()
        worker.join()


def register(app: typer.Typer) -> None:
    """Add ``run schedule``, ``run jobs`` and ``serve`` to the ``rio`` command line."""
    run_app.command("schedule")(run_schedule)
    run_app.command("jobs")(run_jobs)
    run_app.command("unschedule")(run_unschedule)
    app.command("serve")(serve)
