"""``rio audit`` and ``rio report``: offline verification, log review, transparency reports."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.errors import InputError, NotFoundError, RecordFileError, VerificationError
from orchestrator.interfaces._auth import KeyOpt
from orchestrator.interfaces._output import console, counted, err_console, print_json, when

if TYPE_CHECKING:
    from orchestrator.ledger.leaves import Leaf


__all__ = ["register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _archive_path(source: str) -> Path:
    path = Path(source)
    if not path.is_file():
        raise NotFoundError(
            f"{source}: no such archive file (to verify a run, export it first with "
            "`rio archive export RUN --out FILE`)"
        )
    return path


def _leaves(source: str, stack: ExitStack, key: Path | None = None) -> Iterator[Leaf]:
    """Leaves of an archive file, or of a run in the database when no such file exists."""
    from orchestrator.audit.logview import iter_archive_leaves

    path = Path(source)
    if path.is_file():
        return iter_archive_leaves(path)
    from orchestrator.access.identity import authenticate
    from orchestrator.interfaces._common import open_rio
    from orchestrator.services.audit import run_leaves

    rio = stack.enter_context(open_rio())
    return run_leaves(rio, authenticate(rio, key), source)


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(report.to_json() + "\n")
        return
    for check in report.checks:
        mark = "ok  " if check.ok else "FAIL"
        console.print(f"{mark} {check.name:<22} {check.detail}", markup=False)
    console.print(
        f"{report.archive}: run {report.run}, {report.leaves} leaves: {report.verdict}",
        markup=False,
    )


def _verify_run(run_id: str, key: Path | None, as_json: bool) -> None:
    from orchestrator.access.identity import authenticate
    from orchestrator.audit import AuditReport
    from orchestrator.interfaces._common import open_rio
    from orchestrator.services.audit import is_known_run, verify_run

    with open_rio() as rio:
        if not is_known_run(rio, run_id):
            raise NotFoundError(f"{run_id}: neither an archive file nor a known run")
        result = verify_run(rio, authenticate(rio, key), run_id)
    if isinstance(result, AuditReport):
        _print_report(result, as_json)
        if not result:
            raise typer.Exit(VerificationError.exit_code)
        return
    state, shown, verdict, open_run = (
        result.state,
        result.shown,
        result.verdict,
        not result.finished,
    )
    if as_json:
        print_json(
            {
                "run": run_id,
                "scope": "probe log only (record not closed)",
                "state": state.value,
                "finished": not open_run,
                "ok": bool(verdict),
                "size": verdict.size,
                "problems": list(verdict.problems),
                "unfinished": list(verdict.unfinished),
            }
        )
    else:
        console.print(
            f"run {run_id}: record not closed; verifying its probe log only", markup=False
        )
        if open_run:
            console.print(
                f"run {run_id} is UNFINISHED ({shown}): verifying the {verdict.size} leaves "
                "there so far",
                markup=False,
            )
        for note in verdict.unfinished:
            console.print(f"open {note}", markup=False)
        for problem in verdict.problems:
            console.print(f"FAIL {problem}", markup=False)
        console.print(
            f"run {run_id}: {verdict.size} leaves: {'verified' if verdict else 'NOT verified'}"
            + (" so far (the run is unfinished)" if open_run else ""),
            markup=False,
        )
    if not verdict:
        raise typer.Exit(VerificationError.exit_code)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` and ``report`` command groups to the main CLI."""
    audit_app = typer.Typer(help="Offline audit of archives and run logs.", no_args_is_help=True)
    report_app = typer.Typer(help="Reports for the inspected object.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")
    app.add_typer(report_app, name="report")

    @audit_app.command("verify")
    def audit_verify(
        archive: Annotated[str, typer.Argument(help="Archive file, or a run id.")],
        as_json: JsonOpt = False,
        key_id: Annotated[
            str | None, typer.Option("--key-id", help="Pinned orchestrator key id to trust.")
        ] = None,
        trust: Annotated[
            Path | None,
            typer.Option(
                "--trust",
                envvar="RIO_TRUSTED_KEYS",
                help="Trusted-keys file (rio keys export-trust) to verify against.",
            ),
        ] = None,
        key: KeyOpt = None,
    ) -> None:
        """Verify an archive (or a run) offline; exit 0 only when every check passes, else 6.

        Say whom you trust: a pinned orchestrator key (--key-id) or a trusted-keys file
        (--trust FILE or RIO_TRUSTED_KEYS). Without either, every check still runs, but the
        archive is only "self-consistent, not authenticated" and the exit status is 6.
        A run id is verified through a temporary archive when its record is closed (against
        this home's own key), else its probe log alone is verified.
        """
        from orchestrator.audit import load_trusted_keys, verify_archive
        from orchestrator.audit.verify import require_archive
        from orchestrator.clock import SystemClock

        path = Path(archive)
        if not path.exists() and "/" not in archive and not archive.endswith(".tar"):
            _verify_run(archive, key, as_json)
            return
        require_archive(path)
        trusted = load_trusted_keys(trust) if trust is not None else None
        # Offline: no home is opened, so this command's clock is the system's.
        now = SystemClock().now()
        report = verify_archive(path, trusted_key_id=key_id, trusted_keys=trusted, now=now)
        _print_report(report, as_json)
        if not report:
            raise typer.Exit(VerificationError.exit_code)

    @audit_app.command("log")
    def audit_log(
        source: Annotated[str, typer.Argument(help="Archive file or run id.")],
        target: Annotated[str | None, typer.Option(help="Only this address.")] = None,
        probe: Annotated[str | None, typer.Option(help="Only this probe.")] = None,
        since: Annotated[str | None, typer.Option(help="Only from this ISO 8601 instant.")] = None,
        refused: Annotated[bool, typer.Option("--refused", help="Only refusals.")] = False,
        key: KeyOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """List a run's leaves readably, then a per-target summary (a run needs your key)."""
        from orchestrator.audit._docs import parse_time
        from orchestrator.audit.logview import LogFilter, LogReview
        from orchestrator.settings import load_settings

        start = None if since is None else parse_time(since, "--since", "")
        tz = load_settings().tz
        review = LogReview(LogFilter(target=target, probe=probe, since=start, refused=refused))
        with ExitStack() as stack:
            entries = review.entries(_leaves(source, stack, key))
            if as_json:
                listed = [e.to_json() for e in entries]
                summary = [s.to_json() for s in review.summaries()]
                print_json({"leaves": listed, "targets": summary})
                return
            shown = 0
            for e in entries:
                # The leaf's time as logged (UTC, microseconds) is in --json; people read it
                # in their timezone, to the millisecond (rates are judged per second).
                at = when(e.at, tz, timespec="milliseconds")
                console.print(f"{e.seq:>7} {at} {e.kind:<8} {e.text}", markup=False)
                shown += 1
        if not shown:
            err_console.print(f"{source}: no leaves match", markup=False)
            return
        console.print("\ntarget                 probes  refusals  pauses  peak/s", markup=False)
        for s in review.summaries():
            console.print(
                f"{s.target:<22} {s.probes:>6}  {s.refusals:>8}  {s.pauses:>6}  {s.peak_rate:>6}",
                markup=False,
            )

    @report_app.command("transparency")
    def report_transparency(
        archive: Annotated[str, typer.Argument(help="Archive file.")],
        object_id: Annotated[str, typer.Option("--object", help="The inspected object's id.")],
        out: Annotated[Path, typer.Option(help="Output file: .html for people, .json for tools.")],
    ) -> None:
        """Write the transparency report of one inspected object."""
        from orchestrator.audit.transparency import (
            build_transparency_report,
            write_transparency_report,
        )

        try:
            report = build_transparency_report(_archive_path(archive), object_id)
        except RecordFileError as exc:
            raise VerificationError(f"{archive}: {exc}; run `rio audit verify`") from exc
        write_transparency_report(report, out)
        proofs = "with inclusion proofs"
        if out.suffix.lower() != ".json":
            proofs = "(the .json form carries their inclusion proofs: rio report check)"
        console.print(f"{out}: {counted(len(report['probes']), 'probe')} {proofs}", markup=False)

    @report_app.command("check")
    def report_check(
        report_file: Annotated[Path, typer.Argument(metavar="REPORT", help="A report .json.")],
        key: Annotated[
            Path | None,
            typer.Option("--key", help="The orchestrator's public key (PEM) you trust."),
        ] = None,
        trust: Annotated[
            Path | None,
            typer.Option("--trust", help="A trusted-keys file (rio keys export-trust)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check a transparency report offline (the inspected object's side): the signed
        checkpoint against a key you trust, then every probe's inclusion proof.

        Exit 0 only when all hold against --key or --trust; without either the report's own
        key is used, which proves only that it is self-consistent (exit 6).
        """
        from orchestrator.audit import load_trusted_keys
        from orchestrator.audit.transparency import verify_transparency_report
        from orchestrator.intake.keys import load_public_key

        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{report_file}: cannot read the report: {exc.strerror}") from exc
        except ValueError as exc:
            raise InputError(
                f"{report_file}: not a JSON report ({exc}); write one with "
                "`rio report transparency ARCHIVE --object ID --out report.json`"
            ) from exc
        if key is not None and trust is not None:
            raise InputError("give --key or --trust, not both")
        public = None
        if key is not None:
            public = load_public_key(key)
        elif trust is not None:
            public = load_trusted_keys(trust).orchestrator_key
        verdict = verify_transparency_report(report, public_key=public)
        anchored = public is not None
        if as_json:
            print_json(verdict.to_json() | {"authenticated": anchored and bool(verdict)})
        else:
            for problem in verdict.problems:
                console.print(f"FAIL {problem}", markup=False)
            if not verdict:
                state = "NOT verified"
            elif anchored:
                state = "verified against the key you trust"
            else:
                state = "self-consistent, not authenticated (give --key or --trust)"
            console.print(
                f"{report_file}: checkpoint and {counted(verdict.probes, 'inclusion proof')}: "
                f"{state}",
                markup=False,
            )
        if not verdict or not anchored:
            raise typer.Exit(VerificationError.exit_code)
