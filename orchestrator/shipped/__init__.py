"""The scope and policy files rio ships (package data): the demo's, the loopback lab's, examples.

``scopes/`` and ``policies/`` here are links to the checkout's top-level folders, so there is one
copy of each file; a wheel or ``pip install .`` carries the files themselves, so ``rio demo``
works from a non-editable install (and in the Docker image) as from a checkout.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_file"]

_HERE = Path(__file__).resolve().parent


def shipped_file(kind: str, name: str) -> Path:
    """The path of a shipped file, ``kind`` ``"scopes"`` or ``"policies"``."""
    if kind not in ("scopes", "policies"):
        raise ValueError(f"no shipped {kind!r} files")
    return _HERE / kind / name
