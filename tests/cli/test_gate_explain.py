"""`rio gate explain` as the README shows it: with --technician it can answer PERMIT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.conftest import ROOT, Rio


def _example_scope_in_five_days(tmp_path: Path) -> tuple[Path, str]:
    """scopes/example.yaml with its first window moved to a Monday night >= 5 days ahead."""
    day = datetime.now(UTC).date() + timedelta(days=5)
    day += timedelta(days=(7 - day.weekday()) % 7)  # a Monday: inside the default policy's days
    text = (ROOT / "scopes" / "example.yaml").read_text()
    text = text.replace("2026-12-07T", f"{day.isoformat()}T")
    path = tmp_path / "example.yaml"
    path.write_text(text)
    return path, f"{day.isoformat()}T01:00:00+08:00"


def test_gate_explain_example_permits_when_the_technician_is_named(
    rio: Rio, tmp_path: Path
) -> None:
    rio("init")
    rio("vendor", "add", "acme", "--organisation", "Acme Security")
    for name, role, extra in (
        ("li", "officer", ["--organisation", "PSB"]),
        ("zhang", "technician", ["--vendor", "acme"]),
    ):
        rio("keys", "generate", name, "--out", str(tmp_path))
        rio("person", "add", name, "--role", role, *extra,
            "--public-key", str(tmp_path / f"{name}.pub"))  # fmt: skip
    scope, at = _example_scope_in_five_days(tmp_path)
    notice = rio(
        "notice", "announce", "--scope", str(scope), "--policy",
        str(ROOT / "policies" / "default.yaml"), "--vendor", "acme",
        "--key", str(tmp_path / "li.key"),
    ).stdout.strip()  # fmt: skip
    # The README's command, with its own date moved as the scope's window was.
    args = ["gate", "explain", notice, "192.0.2.5", "--probe", "http", "--port", "443"]
    args += ["--key", str(tmp_path / "li.key")]
    without = rio(*args, "--at", at, check=False)
    assert without.returncode == 3 and "no-technician" in without.stdout
    named = rio(*args, "--technician", "zhang", "--at", at, check=False)
    assert named.returncode == 0, named.stdout + named.stderr
    assert "PERMIT" in named.stdout
