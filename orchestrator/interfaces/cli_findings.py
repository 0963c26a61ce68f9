"""``rio findings``: list a run's findings, compare two runs, export them.

Thin: parse, call :mod:`orchestrator.access.findings` (which authorises the person), print.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.errors import InputError
from orchestrator.interfaces._auth import AsOpt, KeyOpt
from orchestrator.interfaces._common import open_rio
from orchestrator.interfaces._output import console, counted, err_console, print_json
from orchestrator.record._formats import FORMATS

if TYPE_CHECKING:
    from orchestrator.record.findings import DiffItem


__all__ = ["register"]

findings_app = typer.Typer(
    help="A run's findings: list, diff two runs, export (json, csv, sarif, html).",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    """Add the ``findings`` command group to ``app``."""
    app.add_typer(findings_app, name="findings")


@findings_app.command("list")
def findings_list(
    run: str, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """The run's findings: severity, title, where (endpoint and every target), key."""
    from orchestrator.access import findings as findings_mod
    from orchestrator.access.identity import authenticate

    with open_rio() as rio:
        person = authenticate(rio, key, claimed=claimed)
        found = findings_mod.run_findings(rio, person, run)
    if as_json:
        print_json([f.to_json() for f in found])
        return
    if not found:
        err_console.print(f"run {run}: no findings", markup=False)
        return
    for f in found:
        console.print(f"{f.id} {f.severity} {f.title}", markup=False)
        console.print(f"  at  {f.where()}", markup=False)
        console.print(f"  key {f.key}", markup=False)
    console.print(counted(len(found), "finding"), markup=False)


def _print_items(label: str, items: tuple[DiffItem, ...]) -> None:
    for i in items:
        console.print(f"{label} {i.severity} {i.title} at {i.where}  [{i.key}]", markup=False)


@findings_app.command("diff")
def findings_diff(
    old: Annotated[str, typer.Argument(help="The earlier run.")],
    new: Annotated[str, typer.Argument(help="The later run (e.g. the re-check).")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare two runs of one object by stable finding keys: fixed, still present, new."""
    from orchestrator.access import findings as findings_mod
    from orchestrator.access.identity import authenticate

    with open_rio() as rio:
        person = authenticate(rio, key, claimed=claimed)
        diff = findings_mod.diff_runs(rio, person, old, new)
    if as_json:
        print_json({"old": old, "new": new, **diff.to_json()})
        return
    _print_items("fixed        ", diff.fixed)
    _print_items("still present", diff.still_present)
    _print_items("new          ", diff.new)
    console.print(
        f"{len(diff.fixed)} fixed, {len(diff.still_present)} still present, "
        f"{len(diff.new)} new ({old} -> {new})",
        markup=False,
    )


def _write_atomic(path: Path, data: bytes) -> None:
    # Nothing half-written: the file appears whole or not at all (0600: findings are case data).
    from orchestrator.store.files import write_atomic

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"--out: {path}: the folder {directory} does not exist")
    write_atomic(path, data)


@findings_app.command("export")
def findings_export(
    run: str,
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (default: stdout).")
    ] = None,
    evidence_reason: Annotated[
        str | None,
        typer.Option(
            "--evidence-reason",
            help="Include each finding's evidence, read (and logged) with this reason.",
        ),
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Export the run's findings for other tools (json, csv, sarif) or people (html)."""
    from orchestrator.access import findings as findings_mod
    from orchestrator.access.identity import authenticate

    with open_rio() as rio:
        person = authenticate(rio, key, claimed=claimed)
        data = findings_mod.export_findings(rio, person, run, fmt, evidence_reason=evidence_reason)
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    _write_atomic(out, data)
    console.print(f"wrote {out} ({fmt}, {len(data)} bytes)", markup=False)
