"""``python -m bench [--quick] [--only GROUP ...]``: measure, print the table, write results."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench._common import HEADERS, Figure, Settings, now_utc, rows, write_results
from bench.ledger import ledger_figures
from bench.nginx import nginx_figures
from bench.plan import plan_figures
from bench.runs import run_figures
from bench.whole import whole_figures

__all__ = ["GROUPS", "main"]

#: Figure groups in the order they run; the audit verify figure comes with the ledger, last.
GROUPS: dict[str, Callable[[Settings], list[Figure]]] = {
    "runs": run_figures,
    "nginx": nginx_figures,
    "whole": whole_figures,
    "plan": plan_figures,
    "ledger": ledger_figures,
}

RESULTS = Path(__file__).resolve().parent / "results"


def _table(figures: Sequence[Figure], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for header in HEADERS:
        table.add_column(header or "pass", overflow="fold")
    for row in rows(figures):
        mark = row[6]
        style = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}.get(mark, "")
        table.add_row(*row[:6], f"[{style}]{mark}[/]", row[7])
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status (0 even when a figure fails its goal)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short variant (under a minute)")
    parser.add_argument("--only", nargs="+", choices=sorted(GROUPS), help="figure groups to run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    settings = Settings.make(quick=args.quick)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    started = now_utc()
    t0 = time.perf_counter()
    figures: list[Figure] = []
    for name, group in GROUPS.items():
        if args.only and name not in args.only:
            continue
        g0 = time.perf_counter()
        figures.extend(group(settings))
        console.print(f"[dim]{name}: {time.perf_counter() - g0:.1f} s[/]")
    seconds = time.perf_counter() - t0
    figures.sort(key=lambda f: f.key)
    title = f"rio benchmarks ({'quick' if settings.quick else 'full'}, {seconds:.0f} s)"
    console.print(_table(figures, title))
    latest, md = write_results(
        figures, args.results, quick=settings.quick, started=started, seconds=seconds
    )
    console.print(f"wrote {latest} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
