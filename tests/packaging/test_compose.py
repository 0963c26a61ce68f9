"""docker-compose.yml as shipped (#19): no Docker engine runs here, so its promises are read.

What it starts must be programs the tests start: ``rio serve``, ``rio worker``, ``rio doctor``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import yaml
from typer.main import get_command

from orchestrator.intake.policy import load_policy
from orchestrator.interfaces.cli import app

REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, dict[str, dict[str, object]]]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", text)
    assert match, text
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_every_service_restarts_and_rio_is_checked_by_rio_doctor() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
    health = services["rio"]["healthcheck"]
    assert isinstance(health, dict)
    assert health["test"] == ["CMD", "rio", "doctor"]
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in ("rio", "rio-worker"):
        command = services[name]["command"]
        assert isinstance(command, list) and command[0] in commands, (name, command)
    assert "doctor" in commands


def test_stop_grace_outlasts_every_shipped_policys_probe_deadline() -> None:
    longest = max(
        load_policy(p)[0].probe_timeout for p in sorted((REPO / "policies").glob("*.yaml"))
    )
    for name in ("rio", "rio-worker"):
        grace = timedelta(seconds=_seconds(str(_compose()["services"][name]["stop_grace_period"])))
        assert grace > longest, name


def test_no_password_is_written_in_the_compose_file_and_files_are_mounted() -> None:
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    assert "change-me" not in text
    services = _compose()["services"]
    env = services["postgres"]["environment"]
    assert isinstance(env, dict)
    assert str(env["POSTGRES_PASSWORD"]).startswith("${RIO_DB_PASSWORD:?")
    assert "RIO_DB_PASSWORD=" in (REPO / ".env.example").read_text(encoding="utf-8")
    mounts = services["rio"]["volumes"]
    assert isinstance(mounts, list)
    assert {"./keys:/keys:ro", "./scopes:/scopes:ro", "./policies:/policies:ro"} <= set(mounts)
    assert "10001" in text and "chown" in text  # key ownership for the image's uid
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "--uid 10001" in dockerfile
