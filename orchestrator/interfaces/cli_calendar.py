"""``rio calendar``: the working-day calendar's years, and adding a year's notice."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.interfaces._auth import AsOpt, KeyOpt
from orchestrator.interfaces._common import console, open_rio, print_json

if TYPE_CHECKING:
    from orchestrator.record import rectify as rectify_mod
    from orchestrator.record.workdays import WorkingCalendar
    from orchestrator.settings import Settings


__all__ = ["CALENDAR_ENV", "calendar_app", "cli_calendar", "register"]

CALENDAR_ENV = "RIO_CALENDAR_FILE"

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

calendar_app = typer.Typer(
    help="The working-day calendar (Art. 19 deadlines): status, add a year's notice.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``calendar`` command group to ``app``."""
    app.add_typer(calendar_app, name="calendar")


def cli_calendar(settings: Settings) -> WorkingCalendar:
    """The calendar a command uses: the package, the home's added years, ``RIO_CALENDAR_FILE``.

    Read when a command runs, not at import.
    """
    from orchestrator.app import calendar_for

    return calendar_for(settings)


def _order_line(order: rectify_mod.Rectification) -> str:
    mark = " (provisional)" if order.provisional else ""
    return (
        f"order {order.id}: deadline {order.deadline.isoformat()}, re-check due "
        f"{order.recheck_due.isoformat()}{mark}"
    )


@calendar_app.command("status")
def calendar_status(as_json: JsonOpt = False) -> None:
    """Say which years are authoritative (a State Council notice) and which provisional."""
    from orchestrator.record.workdays import calendar_files, example_calendar_file
    from orchestrator.settings import load_settings

    settings = load_settings()
    calendar = cli_calendar(settings)
    years = sorted(calendar.covered_years | calendar.provisional_years)
    data: dict[str, Any] = {
        "authoritative": sorted(calendar.covered_years),
        "provisional": sorted(calendar.provisional_years),
        "sources": {str(y): calendar.source_for(y) for y in years},
        "added_files": [str(f) for f in calendar_files(settings.home)],
        "example_file": str(example_calendar_file()),
    }
    if as_json:
        print_json(data)
        return
    console.print(f"working-day calendar: {calendar.describe()}", markup=False)
    for year in sorted(calendar.provisional_years):
        console.print(f"  {year}: {calendar.source_for(year)}", markup=False)
    for file in data["added_files"]:
        console.print(f"  added: {file}", markup=False)
    if not data["added_files"]:
        console.print("  no years added (rio calendar add FILE)", markup=False)
    console.print(f"  example file: {data['example_file']}", markup=False)


@calendar_app.command("add")
def calendar_add(
    file: Path,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a year's calendar file (rio.calendar/v1) and store it; recompute provisional dates.

    An administrator adds it (it is reference data, like the registries). Orders whose dates
    were provisional are recomputed; a still-open record with a moved deadline gets a new
    version.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.rectify import add_calendar

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        result = add_calendar(rio, actor, file)
    added, changed, closed = result.added, result.recomputed, result.closed_runs
    if as_json:
        print_json(
            {
                "year": added.year,
                "source": added.source,
                "stored": added.file,
                "recomputed": [
                    {
                        "id": after.id,
                        "deadline": {"before": before.deadline, "after": after.deadline},
                        "recheck_due": {"before": before.recheck_due, "after": after.recheck_due},
                        "provisional": after.provisional,
                        "record_closed": after.run_id in closed,
                    }
                    for before, after in changed
                ],
            }
        )
        return
    console.print(
        f"calendar {added.year} added from {file} ({added.source}); stored as {added.file}",
        markup=False,
    )
    if not changed:
        console.print("no provisional rectification orders to recompute", markup=False)
    for before, after in changed:
        console.print(f"{_order_line(after)} (was {_order_line(before)})", markup=False)
        if after.run_id in closed and after.deadline != before.deadline:
            console.print(f"  {_closed_note(before, after)}", markup=False)


def _closed_note(before: rectify_mod.Rectification, after: rectify_mod.Rectification) -> str:
    # A closed record is signed and final: it keeps the date it was signed with, marked
    # provisional; the order (rio rectify status, the archive's rectification.json) has the
    # date the notice gives. Re-opening a signed record to change it would void the signatures.
    return (
        f"the record of run {after.run_id} is closed: it keeps the provisional deadline "
        f"{before.deadline.isoformat()} it was signed with; the order's deadline is now "
        f"{after.deadline.isoformat()} (rio rectify status, the archive's rectification.json)"
    )
