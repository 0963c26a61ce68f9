"""A curated public surface: every module says what it exports, and exports only what exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import orchestrator
import probes

_MODULES = sorted(
    name
    for package in (orchestrator, probes)
    for _, name, _ in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if ".migrations" not in name and not name.rsplit(".", 1)[-1].startswith("_")
)


@pytest.mark.parametrize("name", _MODULES)
def test_module_exports_exactly_names_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert not [
            n
            for n in vars(module)
            if not n.startswith("_")
            and getattr(vars(module)[n], "__module__", None) == name
            and callable(vars(module)[n])
        ], f"{name} defines public callables but has no __all__"
        return
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not define: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"


def test_the_probe_registry_is_an_explicit_tuple() -> None:
    from probes.registry import PROBES

    assert isinstance(PROBES, tuple)
    names = [
        "dns",
        "dns-axfr",
        "ftp",
        "http",
        "http-content",
        "memcached",
        "port",
        "redis",
        "smtp",
        "ssh",
        "tls",
    ]
    assert sorted(p.name for p in PROBES) == names
