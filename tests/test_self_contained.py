"""The repository alone is enough: no test, CI script or build file reads outside it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ("..", "/shared")


def test_no_test_or_ci_file_reads_the_sibling_shared_folder() -> None:
    needle = OUTSIDE[0] + OUTSIDE[1]
    places = [ROOT / "tests", ROOT / ".ci", ROOT / "bench"]
    here = Path(__file__).resolve()
    files = [
        p
        for d in places
        for p in d.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and p.resolve() != here
    ]
    files += [ROOT / "Makefile", ROOT / "pyproject.toml"]
    offenders = [
        str(p.relative_to(ROOT))
        for p in files
        if needle in p.read_text(encoding="utf-8", errors="replace")
        or ('"shared"' in p.read_text(encoding="utf-8", errors="replace") and p.suffix == ".py")
    ]
    assert offenders == []


def test_rfc9162_vectors_carry_their_licence() -> None:
    folder = ROOT / "tests" / "ledger" / "testdata" / "rfc9162"
    assert "Apache License" in (folder / "LICENSE").read_text(encoding="utf-8")
    assert "transparency-dev" in (folder / "README.md").read_text(encoding="utf-8")
