"""``rio run ...``, ``rio kill``, ``rio gate explain`` and ``rio demo``."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.errors import GateRefusalError, InputError, RunKilledError
from orchestrator.interfaces._auth import AsOpt, KeyOpt
from orchestrator.interfaces._common import QuietOpt, open_rio
from orchestrator.interfaces._output import (
    console,
    counted,
    print_json,
    print_lines,
    print_row,
    print_table,
    when,
)
from orchestrator.run.state import RunState, describe_state
from orchestrator.terminal import live_progress, print_reasons, print_summary

if TYPE_CHECKING:
    from orchestrator.context import Rio


if TYPE_CHECKING:
    from orchestrator.intake.registry import Person
    from orchestrator.services.runs import RunSummary

__all__ = ["register"]

run_app = typer.Typer(help="Inspection runs.", no_args_is_help=True)
gate_app = typer.Typer(help="Ask the gate.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def run_foreground(
    rio: Rio,
    person: Person,
    run_id: str,
    *,
    title: str,
    quiet: bool = False,
) -> RunState:
    """Execute a run here with the live progress display.

    Raises:
        BudgetStoreError: the rate-budget store failed; the run is paused (resumable).
    """
    from orchestrator.services.runs import execute_run

    with live_progress(title, quiet=quiet) as show:
        return asyncio.run(execute_run(rio, person, run_id, on_progress=show))


def raise_if_killed(summary: RunSummary, tz: Any = None) -> None:
    """A killed run is not a success: say by whom and why, and exit 3 (the kill switch)."""
    if summary.kill_requested_at is None:
        return
    by, why = summary.killed_by or "?", summary.kill_reason or "-"
    raise RunKilledError(
        f"run {summary.run_id} was killed by {by} at {when(summary.kill_requested_at, tz)} "
        f"({why}); {summary.done}/{summary.planned} decided, nothing more was sent"
    )


def _end(
    rio: Rio,
    person: Person,
    run_id: str,
    state: RunState,
    *,
    as_json: bool = False,
    resumed: bool = False,
) -> None:
    """The summary a run in the foreground ends with; exit 3 when it was killed.

    With --json: the run's figures (as ``rio run status --json``), then the same exit.
    """
    from orchestrator.services.runs import run_figures, run_summary

    summary = run_summary(rio, person, run_id)
    if as_json:
        figures = asyncio.run(run_figures(rio, person, run_id))
        print_json(figures.to_json() | {"resumed": resumed})
        raise_if_killed(summary, rio.settings.tz)
        return
    print_summary(summary)
    raise_if_killed(summary, rio.settings.tz)
    if state is RunState.PAUSED:
        console.print(
            f"paused ({summary.pause_why}); `rio run schedule` resumes it in the next window"
        )


@run_app.command("start")
def run_start(
    notice: str,
    key: KeyOpt = None,
    technician: Annotated[
        str | None, typer.Option("--technician", "--as", help="Refuse unless the key is theirs.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No live display.")] = False,
    new: Annotated[
        bool, typer.Option("--new", help="A new run even if a crash left one of this notice.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a notice's inspection now (a technician of the entrusted vendor, by their key).

    A run of the notice that a crash left unfinished is offered (and, without a terminal to
    ask, taken) instead of a new run: a new run would send every probe again. With --json
    there is no live display; the run's figures (as `rio run status --json`) are printed
    when it ends, a killed run's too (exit 3).
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.runs import check_start, new_run

    with open_rio() as rio:
        person = authenticate(rio, key, claimed=technician)
        crashed = asyncio.run(check_start(rio, person, notice, new=new))
        resumed = crashed is not None and _take(crashed, notice, as_json=as_json)
        if resumed and crashed is not None:
            run_id = crashed
            _say(as_json, f"run {run_id} of notice {notice}: resuming it where it stopped")
        else:
            run_id = new_run(rio, person, notice)
            _say(as_json, f"run {run_id} of notice {notice}")
        state = run_foreground(rio, person, run_id, title=f"run {run_id}", quiet=quiet or as_json)
        _end(rio, person, run_id, state, as_json=as_json, resumed=resumed)


def _say(as_json: bool, line: str) -> None:
    """A line for people; with --json stdout carries the JSON document alone."""
    if not as_json:
        console.print(line, markup=False)


def _take(run_id: str, notice_id: str, *, as_json: bool = False) -> bool:
    _say(
        as_json,
        f"run {run_id} of notice {notice_id} was left unfinished by a crash (paused (crash)); "
        "`rio run start --new` starts a new run instead",
    )
    if sys.stdin.isatty() and not as_json:
        return typer.confirm(f"resume {run_id}?", default=True)
    return True


@run_app.command("resume")
def run_resume(
    run: str,
    key: KeyOpt = None,
    technician: Annotated[
        str | None, typer.Option("--technician", "--as", help="Refuse unless the key is theirs.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No live display.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Resume a paused run now, in the foreground: one a crash left, or one a window paused.

    Nothing whose intent is in the log is sent again; the run goes on where it stopped.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.runs import check_resume, require_run

    with open_rio() as rio:
        require_run(rio, run)  # an unknown id is called that before a key is asked for
        person = authenticate(rio, key, claimed=technician)
        status = asyncio.run(check_resume(rio, person, run))
        current = RunState(status.state)
        _say(
            as_json,
            f"run {run} of notice {status.notice_id}: resuming "
            f"({_state_text(current, status.pause_reason)})",
        )
        state = run_foreground(rio, person, run, title=f"run {run}", quiet=quiet or as_json)
        _end(rio, person, run, state, as_json=as_json, resumed=True)


def _state_text(state: RunState, reason: str | None) -> str:
    return f"{state.value} ({reason})" if reason else state.value


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


@run_app.command("status")
def run_status(
    run: str, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """Show a run's figures: decided / planned, refusals, outcomes, findings, checkpoint."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.runs import run_figures

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        data = asyncio.run(run_figures(rio, actor, run)).to_json()
        tz = rio.settings.tz
    if as_json:
        print_json(data)
        return
    for field in ("id", "notice", "state", "pause_reason", "technician"):
        console.print(f"{field:28} {data[field] if data[field] is not None else '-'}", markup=False)
    for field in ("started_at", "ended_at"):
        console.print(f"{field:28} {when(data[field], tz)}", markup=False)
    if data["kill_requested_at"] is not None:
        console.print(
            f"{'killed':28} killed by {data['killed_by']} at "
            f"{when(data['kill_requested_at'], tz)}: {data['kill_reason']}",
            markup=False,
        )
    console.print(
        f"{'probes':28} {data['decided']} / {data['planned']} decided, {data['refused']} refused"
    )
    print_reasons(data["refused_by_reason"])
    console.print(f"{'outcomes':28} {_pairs(data['outcomes'])}")
    console.print(f"{'findings':28} {_pairs(data['findings'])}")
    console.print(f"{'peak connections/s (sliding)':28} {data['peak_connections_per_second']}")
    if data["checkpoint"]:
        console.print("checkpoint:")
        console.print(data["checkpoint"]["note"].rstrip("\n"), markup=False)


@run_app.command("list")
def run_list(
    notice: Annotated[str | None, typer.Option()] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
    ids_only: QuietOpt = False,
) -> None:
    """List the runs you may see (technicians: their own vendor's only)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.runs import list_runs as visible_runs

    with open_rio() as rio:
        person = authenticate(rio, key, claimed=claimed)
        tz = rio.settings.tz
        rows: list[dict[str, Any]] = [
            {
                "id": r.id,
                "notice": r.notice_id,
                "state": r.state,
                "pause_reason": r.pause_reason,
                "planned": r.planned,
                "decided": r.done,
                "refused": r.refused,
                "created_at": r.created_at,
            }
            for r in visible_runs(rio, person, notice)
        ]
    if as_json:
        print_json(rows)
        return
    if ids_only:
        for r in rows:
            print_row(r["id"])
        return
    print_table(
        ("run", "notice", "state", "decided/planned", "created"),
        (
            (
                r["id"],
                r["notice"],
                describe_state(r["state"], r["pause_reason"]),
                f"{r['decided']}/{r['planned']}",
                when(r["created_at"], tz),
            )
            for r in rows
        ),
        empty=f"no runs that {person.name} ({person.role}) may see",
    )


@run_app.command("kill")
def run_kill(
    run: str,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "operator kill switch",
    as_json: JsonOpt = False,
) -> None:
    """Stop a run now: no new permits, in-flight probes (nmap included) cancelled; logged."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.runs import kill_runs

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        result = asyncio.run(kill_runs(rio, actor, [run], reason=reason))
        tz = rio.settings.tz
    _print_kill(result, as_json, tz)


def _print_kill(result: Any, as_json: bool, tz: Any) -> None:
    if as_json:
        print_json(result)
        return
    print_lines(f"removed job {job}" for job in result.removed_jobs)
    runs = ", ".join(result.runs) or "none"
    console.print(
        f"kill requested at {when(result.at, tz)} for {counted(len(result.runs), 'run')}: {runs}",
        markup=False,
    )


def kill_all(
    key: KeyOpt = None,
    claimed: AsOpt = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Every run that is not finished.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why.")] = "operator kill switch (all runs)",
    as_json: JsonOpt = False,
) -> None:
    """Stop every unfinished run you may stop, now."""
    from orchestrator.access.identity import authenticate

    if not all_runs:
        raise InputError("rio kill needs --all (or use `rio run kill RUN`)")
    from orchestrator.services.runs import kill_all as kill_every_run

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        result = asyncio.run(kill_every_run(rio, actor, reason))
        tz = rio.settings.tz
    _print_kill(result, as_json, tz)


@gate_app.command("explain")
def gate_explain(
    notice: str,
    target: Annotated[str, typer.Argument(help="An IP address or host name.")],
    probe: Annotated[str, typer.Option()] = "port",
    port: Annotated[int | None, typer.Option()] = None,
    at: Annotated[str | None, typer.Option(help="ISO time to ask about (default now).")] = None,
    technician: Annotated[
        str | None, typer.Option(help="The technician whose launch to assume.")
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Would this probe be allowed? Print every check's verdict; exit 0 only for a permit.

    Asks the gate the runner uses; officers of the notice's organ, technicians of its vendor
    (assumed as the launcher unless --technician names another) and auditors may ask.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.gate import explain_probe

    try:
        when = datetime.fromisoformat(at) if at else None
    except ValueError:
        raise InputError(
            f"--at {at!r}: not an ISO time; give one with its timezone, "
            "e.g. 2026-12-07T01:00:00+08:00"
        ) from None
    if when is not None and when.tzinfo is None:
        raise InputError(f"--at {at!r}: give a timezone, e.g. 2026-12-07T01:00:00+08:00")
    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        result = asyncio.run(
            explain_probe(
                rio,
                actor,
                notice,
                target,
                probe=probe,
                port=port,
                at=when,
                technician=technician,
            )
        )
    if as_json:
        print_json(result.to_json())
    else:
        for v in result.checks:
            mark = "n/a " if v.check == "run" else ("ok  " if v.ok else "NO  ")
            console.print(f"{mark}{v.check:10} {v.reason:26} {v.detail}", markup=False)
        console.print("PERMIT (if a run were active)" if result else "REFUSED")
    if not result:
        raise typer.Exit(GateRefusalError.exit_code)


def demo(
    quiet: Annotated[bool, typer.Option(help="No live display.")] = False,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then serve the pages; print the record page's URL.")
    ] = False,
    port: Annotated[int, typer.Option(help="--serve: the port on 127.0.0.1.")] = 8080,
) -> None:
    """A full announced inspection against loopback services started here.

    With --serve the API and pages are then served on 127.0.0.1:--port until Ctrl-C, and the
    last line printed, once the server answers, is the URL of the demo run's record page.
    """
    if serve and not 0 < port < 65536:
        raise InputError(f"--port: {port} is not a TCP port")
    from orchestrator.demo.walkthrough import run_demo

    run_id = run_demo(quiet=quiet)
    if not serve:
        return
    with open_rio() as rio:
        _serve_demo(rio, run_id, port)


def _serve_demo(rio: Rio, run_id: str, port: int) -> None:
    """uvicorn in a thread; the URLs are printed once it listens, the record page's last."""
    import signal
    import threading
    import time

    import uvicorn

    from orchestrator.errors import ToolError
    from orchestrator.interfaces.api import create_app

    base = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(create_app(rio), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="rio-demo-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ToolError(f"the pages could not be served on {base} (is the port taken?)")
        time.sleep(0.05)
    keys = rio.settings.home / "demo-keys"
    console.print(f"log in at {base}/login with a key from {keys}", markup=False)
    console.print(f"public check: {base}/verify", markup=False)
    console.print("serving until Ctrl-C or SIGTERM", markup=False)
    console.print(f"record page: {base}/runs/{run_id}/record", markup=False)

    def stop(_signum: int, _frame: object) -> None:
        server.should_exit = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.should_exit = True
        thread.join(10)


def register(app: typer.Typer) -> None:
    app.add_typer(run_app, name="run")
    app.add_typer(gate_app, name="gate")
    app.command("kill")(kill_all)
    app.command("demo")(demo)
