"""Package facades: every exported name exists, is the defining module's own, and costs nothing
to import until it is used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

FACADES = ["orchestrator.run", "orchestrator.ledger", "orchestrator.audit", "orchestrator.access"]


@pytest.mark.parametrize("package", FACADES)
def test_every_exported_name_exists_and_is_public_in_its_module(package: str) -> None:
    facade = importlib.import_module(package)
    for name in facade.__all__:
        value = getattr(facade, name)
        module = importlib.import_module(getattr(value, "__module__", None) or package)
        if module.__name__.startswith(package + ".") and hasattr(module, "__all__"):
            # The defining module exports it too (or the facade re-exports a private module).
            assert name in module.__all__ or module.__name__.rsplit(".", 1)[1].startswith("_")


@pytest.mark.parametrize("package", ["orchestrator.run", "orchestrator.ledger"])
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        _ = importlib.import_module(package).nothing_here


def test_importing_the_run_facade_loads_neither_runner_nor_scheduler() -> None:
    code = (
        "import sys, orchestrator.run, orchestrator.ledger;"
        "print(sorted(m for m in sys.modules if m.startswith(('orchestrator.run.',"
        " 'orchestrator.ledger.', 'probes'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
