"""The terminal, as rio's front ends (the ``rio`` command line and ``rio demo``) print to it.

One console for results (stdout), one for messages (stderr), the live progress display of a
run and the summary a run ends with. Presentation only: every figure comes from a service
(:mod:`orchestrator.services`); this module imports none of them, nor rich's live display,
until it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

    from orchestrator.run.progress import Progress
    from orchestrator.services.runs import RunSummary

__all__ = [
    "console",
    "err_console",
    "live_progress",
    "print_reasons",
    "print_summary",
    "progress_table",
]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def progress_table(p: Progress, title: str) -> Table:
    """One frame of the live display: decided / planned, rate, permits, refusals, outcomes."""
    from rich.table import Table

    t = Table(title=title, show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    pct = 100.0 * p.decided / p.planned if p.planned else 100.0
    t.add_row("probes", f"{p.decided} / {p.planned} decided ({pct:.0f}%)")
    t.add_row("rate", f"{p.rate():.0f} connections/s (notice budget {p.budget_per_s}/s)")
    t.add_row("permits", str(p.permits))
    t.add_row("refusals", str(p.refusals))
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(p.outcomes.items())) or "-"
    t.add_row("outcomes", outcomes)
    t.add_row("findings", str(p.findings))
    t.add_row("paused targets", ", ".join(sorted(p.paused_targets)) or "-")
    eta = p.eta()
    t.add_row("eta", "-" if eta is None else f"{eta:.0f} s")
    return t


@contextmanager
def live_progress(
    title: str, *, quiet: bool = False
) -> Iterator[Callable[[Progress], None] | None]:
    """A progress callback that redraws the live display (``None`` when ``quiet``)."""
    if quiet:
        yield None
        return
    from rich.live import Live

    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def show(p: Progress) -> None:
                live.update(progress_table(p, title))

            yield show
    finally:
        if not console.is_terminal:
            console.print()  # the last frame ends without a newline when it is not redrawn


def print_reasons(reasons: dict[str, int]) -> None:
    for reason, count in reasons.items():
        console.print(f"  refused {count:>6}  {reason}", markup=False)


def print_summary(summary: RunSummary) -> None:
    """The lines a run ends with: state, counts, refusals by reason, the final checkpoint."""
    console.print(
        f"run {summary.run_id}: {summary.state} - {summary.done}/{summary.planned} decided, "
        f"{summary.refused} refused, {summary.failed} without an ok outcome",
        markup=False,
    )
    print_reasons(dict(summary.refused_by_reason))
    if summary.checkpoint_note is not None:
        console.print("final checkpoint:")
        console.print(summary.checkpoint_note.rstrip("\n"), markup=False)
