"""Imports go one way (CONVENTIONS 13, issue #14): the front ends hold no SQL and no ORM model,
and nothing the front ends stand on imports them back.

Every import counts, the ones inside functions and under ``TYPE_CHECKING`` too: a function-level
import is still a dependency, only a hidden one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "orchestrator"

ORM = ("sqlalchemy", "orchestrator.store.models")
"""What ``orchestrator/interfaces/`` may not import: SQL and the ORM rows live in the services."""

FRONT_ENDS = ("orchestrator.interfaces",)
"""What the demo and the services may not import."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module name ``source`` imports (``from a import b`` gives ``a`` and ``a.b``),
    relative imports resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        module = _module_name(path)
        names = imported_names(
            path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
        )
        for name in sorted(names):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


def test_the_import_reader_sees_function_level_relative_and_aliased_imports() -> None:
    source = (
        "import typer\n"
        "def f():\n"
        "    from sqlalchemy import select\n"
        "    import orchestrator.store.models as m\n"
        "    from ..store import models\n"
        "    from . import _common\n"
    )
    names = imported_names(source, "orchestrator.interfaces.cli_x")
    assert {"typer", "sqlalchemy", "sqlalchemy.select", "orchestrator.store.models"} <= names
    assert "orchestrator.interfaces._common" in names


@pytest.mark.parametrize("folder", ["interfaces"])
def test_front_ends_hold_no_sql_and_import_no_orm_model(folder: str) -> None:
    """The CLI, the HTTP API and the pages parse, call a service, print (or render)."""
    assert _violations(folder, ORM) == []


@pytest.mark.parametrize("folder", ["demo", "services"])
def test_demo_and_services_import_nothing_from_the_front_ends(folder: str) -> None:
    assert _violations(folder, FRONT_ENDS) == []


def test_the_folders_checked_exist_and_hold_modules() -> None:
    for folder in ("interfaces", "interfaces/api", "interfaces/web", "demo", "services"):
        assert list((PACKAGE / folder).glob("*.py")), folder


def test_the_command_line_loads_no_database_crypto_or_scheduler_code_until_a_command_runs() -> None:
    """Commands import what they use (issue #14): ``rio --help`` and ``rio version`` build the
    command tree only. What is checked is which modules load, never how long they take."""
    code = (
        "import sys, orchestrator.interfaces.cli as cli, typer.main;"
        "typer.main.get_command(cli.app);"
        "heavy = ('sqlalchemy', 'alembic', 'cryptography', 'jinja2', 'apscheduler', 'httpx',"
        " 'holidays', 'orchestrator.store', 'orchestrator.services', 'orchestrator.access.',"
        " 'orchestrator.run.runner', 'orchestrator.intake.registry', 'probes');"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
