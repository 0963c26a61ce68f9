"""The access lab (people of every role, notices of two vendors, two runs) for service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.access.test_lab import Lab, build_lab, copy_lab


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    built = build_lab(tmp_path_factory.mktemp("template"))
    built.rio.close()
    return built


@pytest.fixture
def lab(template: Lab, tmp_path: Path) -> Iterator[Lab]:
    built = copy_lab(template, tmp_path)
    try:
        yield built
    finally:
        built.rio.close()
