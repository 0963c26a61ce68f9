"""Who is at the keyboard: identity from the operator's key, rights from the one role matrix.

Every command that acts or reads confidential data takes ``--key FILE`` (default
``RIO_KEY_FILE``) and optionally ``--as NAME`` (refused unless the key is that person's), and asks
:mod:`orchestrator.access.roles`. Registry commands are open only while no administrator is
registered (bootstrapping a fresh home); after that they need an administrator's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from orchestrator.access.roles import Action
    from orchestrator.context import Rio
    from orchestrator.intake.registry import Person


__all__ = ["AsOpt", "KeyOpt", "operator", "registry_operator"]

KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="Your private key file (default: $RIO_KEY_FILE)."),
]
AsOpt = Annotated[
    str | None, typer.Option("--as", help="Refuse unless the key belongs to this person.")
]


def operator(
    rio: Rio,
    key: Path | None,
    claimed: str | None,
    action: Action,
    *,
    run_id: str | None = None,
    notice_id: str | None = None,
) -> Person:
    """Authenticate from the key, then authorise ``action``; returns the person."""
    from orchestrator.access.identity import authenticate
    from orchestrator.access.roles import authorize

    now = rio.clock.now()
    person = authenticate(rio, key, claimed=claimed, now=now)
    with rio.db.session() as s:
        authorize(s, person, action, run_id=run_id, notice_id=notice_id, now=now)
    return person


def registry_operator(rio: Rio, key: Path | None, claimed: str | None) -> Person | None:
    """An administrator, or ``None`` while the home has no administrator yet (bootstrap)."""
    from orchestrator.access.roles import Action
    from orchestrator.services.directory import has_administrator

    if key is None and not has_administrator(rio):
        return None
    return operator(rio, key, claimed, Action.MANAGE_REGISTRY)
