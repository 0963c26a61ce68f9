"""The live progress display of a run (rich)."""

from __future__ import annotations

from rich.table import Table

from orchestrator.run.runner import Progress

__all__ = ["progress_table"]


def progress_table(p: Progress, title: str) -> Table:
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
