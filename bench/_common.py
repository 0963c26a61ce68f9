"""What every figure group shares: the figure record, repetition, and the results files."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["Figure", "Settings", "outcomes_text", "repeat", "write_results"]

Op = Literal[">=", "<="]


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """How hard the bench works.

    Attributes:
        quick: the short variant (fewer repeats, smaller runs).
        repeats: how many times each figure is measured (its median is reported).
    """

    quick: bool
    repeats: int

    @classmethod
    def make(cls, *, quick: bool) -> Settings:
        return cls(quick=quick, repeats=2 if quick else 3)

    def pick(self, quick: int, full: int) -> int:
        """``quick`` in the quick variant, else ``full``."""
        return quick if self.quick else full


@dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    """One reported figure: repeated samples, the goal and what it was compared with.

    Attributes:
        key: short id (``1a``, ``5-sqlite``).
        name: what was measured.
        unit: the unit of ``samples`` (``ratio``, ``leaves/s``, ``s``, ``MiB``).
        samples: one value per repetition.
        op: how the median is compared with ``goal``.
        goal: the goal.
        baseline: a ratio measured in the same repetitions (e.g. rio / raw), if any.
        detail: one line of context (absolute numbers, what the ratio divides).
        skipped: why the figure was not measured (then ``samples`` is empty).
    """

    key: str
    name: str
    unit: str
    samples: tuple[float, ...]
    op: Op
    goal: float
    baseline: tuple[float, ...] = ()
    baseline_label: str = ""
    detail: str = ""
    skipped: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def passed(self) -> bool | None:
        """``None`` when skipped."""
        value = self.median
        if value is None:
            return None
        return value >= self.goal if self.op == ">=" else value <= self.goal

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "samples": list(self.samples),
            "goal": f"{self.op} {self.goal:g}",
            "pass": self.passed,
            "baseline_label": self.baseline_label or None,
            "baseline_median": statistics.median(self.baseline) if self.baseline else None,
            "baseline_samples": list(self.baseline),
            "detail": self.detail,
            "skipped": self.skipped,
        }


def repeat(times: int, once: Callable[[], Any]) -> list[Any]:
    """Call ``once`` ``times`` times and return what it returned each time."""
    return [once() for _ in range(times)]


def fmt(value: float | None, unit: str) -> str:
    """A compact number for the tables."""
    if value is None:
        return "-"
    if unit in ("leaves/s", "req/s", "probes/s"):
        return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"
    if unit == "MiB":
        return f"{value:.0f}"
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return f"{value:.3f}"


def rows(figures: Sequence[Figure]) -> list[list[str]]:
    """Table rows: key, figure, median, min..max, goal, vs, mark, detail."""
    out = []
    for f in figures:
        if f.skipped is not None:
            out.append(
                [f.key, f.name, "-", "-", f"{f.op} {fmt(f.goal, f.unit)}", "-", "SKIP", f.skipped]
            )
            continue
        spread = f"{fmt(min(f.samples), f.unit)}..{fmt(max(f.samples), f.unit)}"
        vs = f"{statistics.median(f.baseline):.2f} {f.baseline_label}".strip() if f.baseline else ""
        mark = "PASS" if f.passed else "FAIL"
        median = f"{fmt(f.median, f.unit)} {f.unit}"
        out.append(
            [f.key, f.name, median, spread, f"{f.op} {fmt(f.goal, f.unit)}", vs, mark, f.detail]
        )
    return out


HEADERS = ["#", "figure", "median", "min..max", "goal", "vs baseline", "", "detail"]


def markdown(figures: Sequence[Figure], *, quick: bool, started: datetime, seconds: float) -> str:
    """The markdown table the README includes."""
    lines = [
        f"rio benchmarks ({'quick' if quick else 'full'} variant, {started:%Y-%m-%d %H:%M} UTC, "
        f"{seconds:.0f} s; medians of repeated runs, loopback only)",
        "",
        "| " + " | ".join(h or "pass" for h in HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    for row in rows(figures):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    figures: Sequence[Figure], folder: Path, *, quick: bool, started: datetime, seconds: float
) -> tuple[Path, Path]:
    """Write ``latest.json`` (+ a timestamped copy) and ``latest.md`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "variant": "quick" if quick else "full",
        "started": started.isoformat(),
        "seconds": round(seconds, 1),
        "figures": [f.to_json() for f in figures],
    }
    text = json.dumps(doc, indent=2) + "\n"
    latest = folder / "latest.json"
    latest.write_text(text)
    (folder / f"{started:%Y%m%dT%H%M%SZ}{'-quick' if quick else ''}.json").write_text(text)
    md = folder / "latest.md"
    md.write_text(markdown(figures, quick=quick, started=started, seconds=seconds))
    return latest, md


def now_utc() -> datetime:
    return datetime.now(UTC)


def outcomes_text(outcomes: dict[str, int]) -> str:
    """``{'ok': 806, 'timeout': 2}`` -> ``outcomes: ok 806, timeout 2``."""
    shown = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) or "none"
    return f"outcomes: {shown}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn`` took, and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result
