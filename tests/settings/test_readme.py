"""The README stays true: its benchmark table is the latest results file, its commands exist."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_benchmark_table_is_the_latest_results_file() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- bench:begin -->", 1)[1].split("<!-- bench:end -->", 1)[0].strip()
    assert table == (ROOT / "bench" / "results" / "latest.md").read_text().strip()


def test_readme_two_commands_are_make_targets_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
