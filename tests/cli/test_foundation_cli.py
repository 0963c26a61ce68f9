"""The foundation through the command line: init, registries, files, notices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import ROOT, Rio

SCOPE = ROOT / "scopes" / "demo-loopback.yaml"
POLICY = ROOT / "policies" / "demo.yaml"


def _setup(rio: Rio, tmp_path: Path) -> None:
    rio("init")
    rio("vendor", "add", "acme", "--organisation", "Acme Security")
    rio("keys", "generate", "li", "--out", str(tmp_path))
    rio(
        "person",
        "add",
        "li",
        "--role",
        "officer",
        "--organisation",
        "PSB",
        "--public-key",
        str(tmp_path / "li.pub"),
    )
    rio("person", "add", "zhang", "--role", "technician", "--vendor", "acme")


def _announce(rio: Rio, tmp_path: Path) -> str:
    """The demo scope and policy, entrusted to acme, announced by officer li; the notice id."""
    return rio(
        "notice", "announce", "--scope", str(SCOPE), "--policy", str(POLICY), "--vendor", "acme",
        "--key", str(tmp_path / "li.key"),
    ).stdout.strip()  # fmt: skip


def test_init_twice_is_harmless_and_keys_are_private(rio: Rio, tmp_path: Path) -> None:
    first = rio("init")
    assert "created" in first.stdout
    second = rio("init")
    assert "up to date" in second.stdout
    home = tmp_path / "home"
    assert (home / "orchestrator.key").stat().st_mode & 0o777 == 0o600
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600
    # The home holds evidence ciphertext and the access log: private to its owner.
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "rio.db").stat().st_mode & 0o777 == 0o600


def test_a_look_at_an_uninitialised_home_leaves_no_database_behind(
    rio: Rio, tmp_path: Path
) -> None:
    serve = rio("serve", "--once", check=False)
    assert serve.returncode == 4 and "rio init" in serve.stderr
    doctor = rio("doctor", check=False)
    assert doctor.returncode == 4 and "FAIL database" in doctor.stderr
    assert "nmap" in doctor.stdout + doctor.stderr  # every check ran and reported
    assert not (tmp_path / "home" / "rio.db").exists()


def test_announce_stores_the_documents_as_announced(rio: Rio, tmp_path: Path) -> None:
    _setup(rio, tmp_path)
    notice_id = _announce(rio, tmp_path)
    shown = json.loads(
        rio("notice", "show", notice_id, "--json", "--key", str(tmp_path / "li.key")).stdout
    )
    import hashlib

    assert shown["scope"]["sha256"] == hashlib.sha256(SCOPE.read_bytes()).hexdigest()
    assert shown["policy"]["sha256"] == hashlib.sha256(POLICY.read_bytes()).hexdigest()
    assert shown["vendor"] == "acme" and "ip:127.0.10.13" in shown["excludes"]
    assert [
        n["id"]
        for n in json.loads(
            rio("notice", "list", "--json", "--key", str(tmp_path / "li.key")).stdout
        )
    ] == [notice_id]


def test_bad_scope_is_refused_and_nothing_is_written(rio: Rio, tmp_path: Path) -> None:
    _setup(rio, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCOPE.read_text().replace("cidr: 127.0.10.0/27", "cidr: 10.0.0.0/33"))
    check = rio("scope", "check", str(bad), check=False)
    assert check.returncode == 2
    assert f"{bad}: targets[0].cidr: '10.0.0.0/33': is not a network" in check.stderr
    announce = rio(
        "notice",
        "announce",
        "--scope",
        str(bad),
        "--policy",
        str(POLICY),
        "--key",
        str(tmp_path / "li.key"),
        check=False,
    )
    assert announce.returncode == 2 and "targets[0].cidr" in announce.stderr
    assert (
        json.loads(rio("notice", "list", "--json", "--key", str(tmp_path / "li.key")).stdout) == []
    )


def test_unknown_vendor_is_refused_and_nothing_is_written(rio: Rio, tmp_path: Path) -> None:
    _setup(rio, tmp_path)
    proc = rio(
        "notice",
        "announce",
        "--scope",
        str(SCOPE),
        "--policy",
        str(POLICY),
        "--vendor",
        "nobody",
        "--key",
        str(tmp_path / "li.key"),
        check=False,
    )
    assert proc.returncode == 2 and "vendor 'nobody' is not registered" in proc.stderr
    assert (
        json.loads(rio("notice", "list", "--json", "--key", str(tmp_path / "li.key")).stdout) == []
    )


def test_unknown_notice_is_a_clear_error(rio: Rio, tmp_path: Path) -> None:
    rio("init")
    proc = rio("notice", "show", "N-nope", check=False)
    assert proc.returncode == 2 and "notice 'N-nope' is not known" in proc.stderr


def test_commands_before_init_say_to_run_init(rio: Rio) -> None:
    proc = rio("notice", "list", check=False)
    assert proc.returncode == 4 and "run `rio init` first" in proc.stderr


def test_technician_must_name_an_existing_vendor(rio: Rio) -> None:
    rio("init")
    proc = rio("person", "add", "x", "--role", "technician", check=False)
    assert proc.returncode == 2 and "must name the vendor" in proc.stderr


def test_duplicate_key_is_refused(rio: Rio, tmp_path: Path) -> None:
    _setup(rio, tmp_path)
    proc = rio("person", "key", "zhang", str(tmp_path / "li.pub"), check=False)
    assert proc.returncode == 2 and "already registered" in proc.stderr


def test_private_key_is_written_0600_and_never_overwritten(rio: Rio, tmp_path: Path) -> None:
    rio("keys", "generate", "k", "--out", str(tmp_path))
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600
    again = rio("keys", "generate", "k", "--out", str(tmp_path), check=False)
    assert again.returncode == 2


def test_schema_commands_print_json_schema(rio: Rio) -> None:
    scope_schema = json.loads(rio("schema", "scope").stdout)
    policy_schema = json.loads(rio("schema", "policy").stdout)
    assert "targets" in scope_schema["properties"] and "rates" in policy_schema["properties"]


def test_policy_check_accepts_every_shipped_policy(rio: Rio) -> None:
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        out = rio("policy", "check", str(path)).stdout
        assert "ok" in out
        assert "day," not in out and ":00:00" not in out, f"a timedelta repr in: {out}"


def test_scope_and_policy_check_answer_in_json_with_the_announced_bytes_digest(rio: Rio) -> None:
    import hashlib

    policy_path = ROOT / "policies" / "default.yaml"
    policy = json.loads(rio("policy", "check", str(policy_path), "--json").stdout)
    assert policy["ok"] is True and policy["policy"] == "default"
    assert policy["min_notice_lead"] == "3d" and "port" in policy["probes"]
    assert policy["rates"]["per_ip"] >= 1 and "global" in policy["rates"]
    assert policy["sha256"] == hashlib.sha256(policy_path.read_bytes()).hexdigest()
    scope_path = ROOT / "scopes" / "loopback.yaml"
    scope = json.loads(rio("scope", "check", str(scope_path), "--json").stdout)
    assert scope["ok"] is True and scope["object"] == "loopback-lab"
    assert (scope["targets"], scope["windows"]) == (1, 1)
    assert scope["sha256"] == hashlib.sha256(scope_path.read_bytes()).hexdigest()
    assert "1 target, 0 excludes, 1 window" in rio("scope", "check", str(scope_path)).stdout


def test_announcing_needs_an_officers_key(rio: Rio, tmp_path: Path) -> None:
    _setup(rio, tmp_path)
    rio("keys", "generate", "zhang", "--out", str(tmp_path))
    rio("person", "key", "zhang", str(tmp_path / "zhang.pub"))
    proc = rio(
        "notice",
        "announce",
        "--scope",
        str(SCOPE),
        "--policy",
        str(POLICY),
        "--key",
        str(tmp_path / "zhang.key"),
        check=False,
    )
    assert proc.returncode == 3 and "zhang (technician) may not" in proc.stderr
    missing = rio("notice", "announce", "--scope", str(SCOPE), "--policy", str(POLICY), check=False)
    assert missing.returncode == 2 and "RIO_KEY_FILE" in missing.stderr
    assert (
        json.loads(rio("notice", "list", "--json", "--key", str(tmp_path / "li.key")).stdout) == []
    )


def test_registry_needs_an_administrator_once_one_exists(rio: Rio, tmp_path: Path) -> None:
    rio("init")
    rio("keys", "generate", "root", "--out", str(tmp_path))
    rio(
        "person",
        "add",
        "root",
        "--role",
        "admin",
        "--organisation",
        "PSB",
        "--public-key",
        str(tmp_path / "root.pub"),
    )
    refused = rio("vendor", "add", "acme", "--organisation", "Acme", check=False)
    assert refused.returncode == 2 and "RIO_KEY_FILE" in refused.stderr
    rio("vendor", "add", "acme", "--organisation", "Acme", "--key", str(tmp_path / "root.key"))
    assert "acme" in rio("vendor", "list", "--key", str(tmp_path / "root.key")).stdout


def test_gate_explain_says_why_and_exits_non_zero_for_a_refusal(rio: Rio, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    _setup(rio, tmp_path)
    notice_id = _announce(rio, tmp_path)

    def as_li(*args: str, check: bool = True) -> Any:
        return rio(*args, check=check, extra_env={"RIO_KEY_FILE": str(tmp_path / "li.key")})

    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    allowed = as_li(
        "gate",
        "explain",
        notice_id,
        "127.0.10.5",
        "--probe",
        "http",
        "--port",
        "8080",
        "--technician",
        "zhang",
        "--at",
        later,
        "--json",
    )
    verdicts = json.loads(allowed.stdout)
    assert verdicts["allowed"] is True
    assert [c["check"] for c in verdicts["checks"]] == [
        "run",
        "notice",
        "entrusted",
        "window",
        "probe",
        "scope",
        "health",
        "rate",
    ]
    excluded = as_li(
        "gate",
        "explain",
        notice_id,
        "127.0.10.13",
        "--technician",
        "zhang",
        "--at",
        later,
        check=False,
    )
    assert (
        excluded.returncode == 3 and "excluded" in excluded.stdout and "REFUSED" in excluded.stdout
    )
    outside = as_li(
        "gate",
        "explain",
        notice_id,
        "192.0.2.1",
        "--technician",
        "zhang",
        "--at",
        later,
        check=False,
    )
    assert outside.returncode == 3 and "out-of-scope" in outside.stdout
    too_early = as_li(
        "gate",
        "explain",
        notice_id,
        "127.0.10.5",
        "--technician",
        "zhang",
        "--at",
        (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        check=False,
    )
    assert too_early.returncode == 3 and "lead-time" in too_early.stdout


def test_officers_see_only_their_own_organisations_notices(rio: Rio, tmp_path: Path) -> None:
    _setup(rio, tmp_path)
    rio("keys", "generate", "wang", "--out", str(tmp_path))
    rio(
        "person",
        "add",
        "wang",
        "--role",
        "officer",
        "--organisation",
        "Other PSB",
        "--public-key",
        str(tmp_path / "wang.pub"),
    )
    notice_id = _announce(rio, tmp_path)
    mine = json.loads(rio("notice", "list", "--json", "--key", str(tmp_path / "li.key")).stdout)
    theirs = json.loads(rio("notice", "list", "--json", "--key", str(tmp_path / "wang.key")).stdout)
    assert [n["id"] for n in mine] == [notice_id] and theirs == []
    refused = rio("notice", "show", notice_id, "--key", str(tmp_path / "wang.key"), check=False)
    assert refused.returncode == 3 and "not one you may see" in refused.stderr


def test_gate_explain_a_port_sweep_and_a_port_outside_the_policy(rio: Rio, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    _setup(rio, tmp_path)
    notice_id = _announce(rio, tmp_path)

    def as_li(*args: str, check: bool = True) -> Any:
        return rio(*args, check=check, extra_env={"RIO_KEY_FILE": str(tmp_path / "li.key")})

    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    sweep = as_li(
        "gate",
        "explain",
        notice_id,
        "127.0.10.5",
        "--probe",
        "port",
        "--technician",
        "zhang",
        "--at",
        later,
    )
    assert "PERMIT" in sweep.stdout
    odd = as_li(
        "gate",
        "explain",
        notice_id,
        "127.0.10.5",
        "--probe",
        "port",
        "--port",
        "4444",
        "--technician",
        "zhang",
        "--at",
        later,
        check=False,
    )
    assert odd.returncode == 3 and "params-not-allowed" in odd.stdout


def test_version_option_prints_the_package_version(rio: Rio) -> None:
    from orchestrator import __version__

    assert rio("--version").stdout.strip() == f"rio {__version__}"


def test_keys_generate_creates_the_missing_folder_private(rio: Rio, tmp_path: Path) -> None:
    rio("keys", "generate", "li", "--out", str(tmp_path / "new" / "keys"))
    folder = tmp_path / "new" / "keys"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "li.key").stat().st_mode & 0o777 == 0o600
