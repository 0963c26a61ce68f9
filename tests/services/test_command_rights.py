"""Every rio command is in the role matrix: it needs a role, or it is public for a reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main

from orchestrator.access.roles import COMMANDS, Action, Public, roles_for
from orchestrator.interfaces.cli import app


def _commands(command: Any, words: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(words), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*words, name))


CLI = dict(_commands(typer.main.get_command(app)))


def test_every_registered_command_is_in_the_role_matrix_and_nothing_else_is() -> None:
    assert sorted(CLI) == sorted(COMMANDS), (
        "a command is missing from (or stale in) orchestrator.access.roles.COMMANDS: "
        f"not in the matrix {sorted(set(CLI) - set(COMMANDS))}, "
        f"not a command {sorted(set(COMMANDS) - set(CLI))}"
    )


def test_every_guarded_command_takes_the_operators_key_and_names_roles() -> None:
    for words, right in COMMANDS.items():
        if isinstance(right, Public):
            assert right.why.strip(), f"rio {words} is public without a reason"
            continue
        assert isinstance(right, Action)
        assert roles_for(right), f"rio {words}: {right} allows no role"
        params = {p.name for p in CLI[words].params}
        assert "key" in params, f"rio {words} needs {right.value} but takes no --key"


def test_the_commands_that_read_case_data_are_not_public() -> None:
    # Issue 19: these ran (or read) with no identity at all.
    for words in (
        "keys rotate-master",
        "rectify status",
        "rectify plan",
        "run jobs",
        "person list",
        "vendor list",
        "gate explain",
    ):
        assert isinstance(COMMANDS[words], Action), words
