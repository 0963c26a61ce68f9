"""The ``rio`` command line.

Every command maps bad input, refusals and failures to a one-line message on stderr and a
non-zero exit status (2 bad input, 3 refusal, 4 failure, 5 wrong state, 6 verification failed);
a traceback means a bug in rio.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator import __version__
from orchestrator.documents._format import Format
from orchestrator.errors import InputError, RioError, StoreError, ToolError
from orchestrator.intake.people import Role
from orchestrator.interfaces._auth import AsOpt, KeyOpt, registry_operator
from orchestrator.interfaces._common import open_rio
from orchestrator.interfaces._output import (
    console,
    counted,
    err_console,
    print_json,
    print_table,
    when,
)

__all__ = ["app", "main"]

app = typer.Typer(
    help="rio - Remote Inspection Orchestrator: announced, non-disruptive, provable inspections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
scope_app = typer.Typer(help="Scope announcement files.", no_args_is_help=True)
policy_app = typer.Typer(help="Policy files.", no_args_is_help=True)
keys_app = typer.Typer(help="Key files and the evidence master key.", no_args_is_help=True)
person_app = typer.Typer(
    help="Officers, technicians, auditors, administrators.", no_args_is_help=True
)
vendor_app = typer.Typer(
    help="Entrusted network security service institutions.", no_args_is_help=True
)
notice_app = typer.Typer(help="Announced inspections.", no_args_is_help=True)
app.add_typer(scope_app, name="scope")
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(person_app, name="person")
app.add_typer(vendor_app, name="vendor")
app.add_typer(notice_app, name="notice")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _print_version(value: bool) -> None:
    if value:
        console.print(f"rio {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print rio's version."
        ),
    ] = False,
) -> None:
    """rio - Remote Inspection Orchestrator: announced, non-disruptive, provable inspections."""


@app.command()
def version() -> None:
    """Print rio's version."""
    console.print(f"rio {__version__}")


@app.command()
def init() -> None:
    """Create or upgrade the database, the orchestrator key and the master key in RIO_HOME."""
    from orchestrator.context import init_home
    from orchestrator.settings import load_settings

    for line in init_home(load_settings()):
        console.print(line)


def _doctor_checks() -> list[tuple[str, Any]]:
    """Every check ``rio doctor`` runs: a name and a function returning what it found."""
    from orchestrator.app import build_app
    from orchestrator.context import privacy_problems
    from orchestrator.gate.budget import check_budget_store
    from orchestrator.settings import load_settings
    from probes.port import find_nmap

    settings = load_settings()

    def nmap() -> str:
        return str(find_nmap(settings.nmap_path))

    def database() -> str:
        rio = build_app(settings)
        try:
            if not rio.db.is_initialised():
                raise StoreError(f"{rio.db.safe_url} is not initialised (run rio init)")
            return f"{rio.db.safe_url} (initialised)"
        finally:
            rio.close()

    def budget_store() -> str:
        return check_budget_store(settings.budget_url)

    def broker() -> str:
        from orchestrator.run.executors._broker import check_broker

        return check_broker(settings)

    def workers() -> str:
        from orchestrator.run.executors._broker import ping_workers

        names = ping_workers(settings)
        if not names:
            raise ToolError("no rio worker answered a ping within 2 s (start one: rio worker)")
        return f"{len(names)} answered: {', '.join(names)}"

    def key_file(what: str, path: Path) -> Any:
        def check() -> str:
            if what == "master key" and settings.master_key_env:
                return "from RIO_MASTER_KEY"
            if not path.exists():
                raise ToolError(f"{path} missing (run rio init)")
            return str(path)

        return check

    def home() -> str:
        problems = privacy_problems(settings)
        if problems:
            raise ToolError("; ".join(problems) + " (rio init tightens them)")
        return f"{settings.home} private (0700, files 0600)"

    def your_key() -> str:
        path = settings.key_file
        assert path is not None  # listed only when set
        return key_file_access_problem(path) or f"{path} (yours, 0600, readable)"

    checks = [
        ("nmap", nmap),
        ("database", database),
        ("budget store", budget_store),
        ("orchestrator key", key_file("orchestrator key", settings.orchestrator_key_file)),
        ("master key", key_file("master key", settings.master_key_file)),
        ("home", home),
    ]
    if settings.key_file is not None:
        checks.append(("your key", your_key))
    if settings.executor == "celery":
        checks += [("broker", broker), ("workers", workers)]
    return checks


def key_file_access_problem(path: Path) -> str | None:
    """Raise ToolError when this process cannot use the private key file at ``path``.

    In the container rio runs as uid 10001; a key mounted root-owned with mode 0600 cannot be
    read there, and a key readable by others is refused anyway: say which, with the fix.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise ToolError(f"{path}: {exc.strerror} (RIO_KEY_FILE)") from exc
    uid = os.getuid()
    if st.st_uid != uid:
        raise ToolError(
            f"{path} is owned by uid {st.st_uid}, this process runs as uid {uid}: a 0600 key "
            f"must be its user's (chown {uid} {path}; the Docker image's rio user is uid 10001)"
        )
    if st.st_mode & 0o077:
        raise ToolError(f"{path} is mode {st.st_mode & 0o777:04o}: chmod 600 {path}")
    if not os.access(path, os.R_OK):
        raise ToolError(f"{path} is not readable by uid {uid}: chmod 600 {path}")
    return None


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Check that rio can run here: nmap, database, budget store, keys, a private home.

    Every check runs and reports, whatever the others found; exit 4 if any failed.
    """
    results = []
    for name, check in _doctor_checks():
        try:
            results.append({"check": name, "ok": True, "detail": check()})
        except Exception as exc:  # a check that fails in any way is a finding, not a crash
            results.append({"check": name, "ok": False, "detail": str(exc)})
    if as_json:
        print_json(results)
    else:
        for r in results:
            line = f"{'ok  ' if r['ok'] else 'FAIL'} {r['check']:16} {r['detail']}"
            (console if r["ok"] else err_console).print(line, markup=False)
    if not all(r["ok"] for r in results):
        raise typer.Exit(4)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="scope, policy or calendar")]) -> None:
    """Print the JSON Schema of scope, policy or calendar files, for editors."""
    from orchestrator.intake.policy import policy_json_schema
    from orchestrator.intake.scope import scope_json_schema
    from orchestrator.record.workdays import calendar_json_schema

    if kind == "scope":
        sys.stdout.write(scope_json_schema() + "\n")
    elif kind == "policy":
        sys.stdout.write(policy_json_schema() + "\n")
    elif kind == "calendar":
        sys.stdout.write(calendar_json_schema())
    else:
        raise typer.BadParameter("expected 'scope', 'policy' or 'calendar'", param_hint="KIND")


@scope_app.command("check")
def scope_check(file: Path, as_json: JsonOpt = False) -> None:
    """Validate a scope file."""
    from orchestrator.intake.scope import load_scope

    scope, data = load_scope(file)
    counts = {"targets": len(scope.targets), "excludes": len(scope.excludes)}
    counts["windows"] = len(scope.windows)
    if as_json:
        print_json(
            {"file": str(file), "ok": True, "object": scope.object.id, "sha256": _sha256(data)}
            | counts
        )
        return
    console.print(
        f"{file}: ok - object {scope.object.id}, "
        + ", ".join(counted(n, noun[:-1]) for noun, n in counts.items()),
        markup=False,
    )


@policy_app.command("check")
def policy_check(file: Path, as_json: JsonOpt = False) -> None:
    """Validate a policy file."""
    from orchestrator.intake._types import format_duration
    from orchestrator.intake.policy import load_policy

    policy, data = load_policy(file)
    lead = format_duration(policy.min_notice_lead)
    if as_json:
        print_json(
            {
                "file": str(file),
                "ok": True,
                "policy": policy.name,
                "sha256": _sha256(data),
                "min_notice_lead": lead,
                "probes": list(policy.probes.allowed()),
                "rates": policy.rates.model_dump(by_alias=True),
            }
        )
        return
    console.print(
        f"{file}: ok - policy {policy.name}, lead {lead}, "
        f"probes {', '.join(policy.probes.allowed())}, per-IP {policy.rates.per_ip}/s"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@keys_app.command("generate")
def keys_generate(
    name: str,
    out: Annotated[Path, typer.Option(help="Folder for NAME.key and NAME.pub.")] = Path("."),
) -> None:
    """Write a new Ed25519 private key (PKCS#8 PEM, mode 0600) and its public key.

    The folder is created (mode 0700) when it does not exist yet.
    """
    from orchestrator.intake import keys as keyfiles

    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder: {exc.strerror}") from exc
    private, public = out / f"{name}.key", out / f"{name}.pub"
    kid = keyfiles.generate_keypair(private, public)
    console.print(f"private key: {private} (mode 0600, keep it off shared disks)")
    console.print(f"public key:  {public}")
    console.print(f"key id:      {kid}")


@keys_app.command("export-trust")
def keys_export_trust(
    out: Annotated[Path, typer.Option(help="The trusted-keys file to write.")],
) -> None:
    """Write this home's trusted-keys file: the orchestrator key and every signer's public keys.

    Hand it to auditors by a channel they trust; `rio audit verify ARCHIVE --trust FILE`
    then authenticates archives against it. It holds public keys only.
    """
    from orchestrator.record.trust import export_trust

    with open_rio() as rio:
        people = export_trust(rio.db, rio.verify_key, out, now=rio.clock.now())
        kid = rio.signing_key_id
    console.print(
        f"{out}: orchestrator key {kid}, the public keys of "
        f"{counted(people, 'signer')} (officers and technicians)",
        markup=False,
    )


@keys_app.command("rotate-master")
def keys_rotate_master(
    new_key_file: Annotated[Path, typer.Option("--new", help="File for the new master key.")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Re-wrap every run's data key under a new master key (an administrator, by their key).

    Evidence is not re-encrypted.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.directory import rotate_master_key

    with open_rio() as rio:
        count = rotate_master_key(rio, authenticate(rio, key, claimed=claimed), new_key_file)
    console.print(
        f"re-wrapped {counted(count, 'data key')}; set RIO_MASTER_KEY_FILE={new_key_file}",
        markup=False,
    )


@vendor_app.command("add")
def vendor_add(
    name: str,
    organisation: Annotated[str, typer.Option()],
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Register an entrusted vendor (an administrator, once one is registered)."""
    from orchestrator.services import directory

    with open_rio() as rio:
        directory.add_vendor(rio, registry_operator(rio, key, claimed), name, organisation)
    console.print(f"vendor {name} registered")


@vendor_app.command("list")
def vendor_list(key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False) -> None:
    """List vendors (any registered person, by their key)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.directory import list_vendors

    with open_rio() as rio:
        vendors = list_vendors(rio, authenticate(rio, key, claimed=claimed))
    if as_json:
        print_json(vendors)
        return
    print_table(
        ("vendor", "organisation"),
        ((v.name, v.organisation) for v in vendors),
        empty="no vendors registered (rio vendor add)",
    )


@person_app.command("add")
def person_add(
    name: str,
    role: Annotated[Role, typer.Option()],
    organisation: Annotated[str, typer.Option()] = "",
    vendor: Annotated[str | None, typer.Option(help="Technicians: their vendor.")] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="Their public key file (PEM) to register.")
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Register a person and their public key (an administrator, once one is registered)."""
    from orchestrator.intake import keys as keyfiles
    from orchestrator.services import directory

    with open_rio() as rio:
        actor = registry_operator(rio, key, claimed)
        public = keyfiles.load_public_key(public_key) if public_key is not None else None
        p = directory.add_person(rio, actor, name, role, organisation, vendor, public)
    kid = p.key_id
    console.print(f"{p.role} {p.name} registered" + (f", key {kid}" if kid else ""))


@person_app.command("key")
def person_key(name: str, public_key: Path, key: KeyOpt = None, claimed: AsOpt = None) -> None:
    """Register another public key for a person."""
    from orchestrator.intake import keys as keyfiles
    from orchestrator.services import directory

    public = keyfiles.load_public_key(public_key)
    with open_rio() as rio:
        kid = directory.add_person_key(rio, registry_operator(rio, key, claimed), name, public)
    console.print(f"key {kid} registered for {name}")


@person_app.command("revoke")
def person_revoke(name: str, key: KeyOpt = None, claimed: AsOpt = None) -> None:
    """Revoke a person from now on (earlier signatures keep their time)."""
    from orchestrator.services import directory

    with open_rio() as rio:
        p = directory.revoke_person(rio, registry_operator(rio, key, claimed), name)
        tz = rio.settings.tz
    console.print(f"{p.name} revoked at {when(p.revoked_at, tz)}", markup=False)


@person_app.command("list")
def person_list(key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False) -> None:
    """List people (any registered person, by their key)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.directory import list_people

    with open_rio() as rio:
        people = list_people(rio, authenticate(rio, key, claimed=claimed))
        tz = rio.settings.tz
    if as_json:
        print_json(people)
        return
    print_table(
        ("person", "role", "organisation", "keys", "revoked"),
        (
            (
                p.name,
                p.role,
                p.organisation or None,
                len(p.keys),
                when(p.revoked_at, tz) if p.revoked_at else None,
            )
            for p in people
        ),
        empty="no people registered (rio person add)",
    )


@notice_app.command("announce")
def notice_announce(
    scope: Annotated[Path, typer.Option(help="Scope file as sent to the object.")],
    policy: Annotated[Path, typer.Option(help="Policy file.")],
    vendor: Annotated[str | None, typer.Option(help="Entrusted vendor, if any.")] = None,
    co_inspecting: Annotated[
        list[str] | None,
        typer.Option("--co-inspecting", help="Another organ inspecting with yours (repeatable)."),
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Announce an inspection (an officer): store the scope and policy as announced.

    The notice records your organ as the announcing organ; only its officers (and those of
    organs named with --co-inspecting) count towards closing the record.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.intake.policy import load_policy
    from orchestrator.intake.scope import load_scope
    from orchestrator.services.notices import announce_notice

    _, scope_bytes = load_scope(scope)
    _, policy_bytes = load_policy(policy)
    with open_rio() as rio:
        n = announce_notice(
            rio,
            authenticate(rio, key, claimed=claimed),
            scope_bytes=scope_bytes,
            scope_name=str(scope),
            policy_bytes=policy_bytes,
            policy_name=str(policy),
            vendor=vendor,
            co_inspecting=co_inspecting or (),
            now=rio.clock.now(),
        )
    if as_json:
        print_json(n.to_json())
    else:
        console.print(n.id)


@notice_app.command("show")
def notice_show(
    notice_id: str, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """Show a notice you may see."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.notices import require_notice, show_notice

    with open_rio() as rio:
        require_notice(rio, notice_id)  # an unknown id is called that before a key is asked for
        n = show_notice(rio, authenticate(rio, key, claimed=claimed), notice_id)
    data: dict[str, Any] = n.to_json()
    data["lead_time_met_at"] = n.lead_time_met_at().isoformat()
    tz = n.policy.tz
    data["targets"] = [t.label() for t in n.scope.targets]
    data["excludes"] = [t.label() for t in n.scope.excludes]
    if as_json:
        print_json(data)
        return
    for k in ("id", "object", "vendor", "organ"):
        console.print(f"{k:17} {data[k] or '-'}", markup=False)
    for k in ("announced_at", "lead_time_met_at"):
        console.print(f"{k:17} {when(data[k], tz)}", markup=False)
    if data["co_inspecting"]:
        console.print(f"{'co-inspecting':17} {', '.join(data['co_inspecting'])}")
    console.print(f"{'scope':17} {data['scope']['name']} sha256:{data['scope']['sha256']}")
    console.print(f"{'policy':17} {data['policy']['name']} sha256:{data['policy']['sha256']}")
    console.print(f"{'targets':17} {', '.join(data['targets'])}")
    console.print(f"{'excludes':17} {', '.join(data['excludes']) or '-'}")
    for w in data["windows"]:
        console.print(f"{'window':17} {when(w['start'], tz)} .. {when(w['end'], tz)}", markup=False)


@notice_app.command("letter")
def notice_letter_cmd(
    notice_id: str,
    out: Annotated[Path, typer.Option(help="The file to write.")],
    fmt: Annotated[Format, typer.Option("--format", help="html or pdf.")] = Format.HTML,
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Write the notice sent to (or published for) the inspected object before the inspection
    (Art. 16): organ, vendor, windows in the object's timezone, scope, sources, probes and rates
    in plain words, the contact for objections and the notice's digest."""
    from orchestrator.access.identity import authenticate
    from orchestrator.documents._render import write_document
    from orchestrator.documents.letter import notice_letter

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        data = notice_letter(rio, actor, notice_id, fmt)
    write_document(data, out)
    console.print(f"{out}: notice {notice_id} ({fmt.value}, {len(data)} bytes)", markup=False)


@notice_app.command("list")
def notice_list(key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False) -> None:
    """List the notices you may see.

    Officers see their organisation's notices, technicians their vendor's, auditors all.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.notices import list_notices

    with open_rio() as rio:
        notices = list_notices(rio, authenticate(rio, key, claimed=claimed))
        tz = rio.settings.tz
    if as_json:
        print_json(notices)
        return
    print_table(
        ("notice", "object", "announced", "vendor"),
        ((n.id, n.object_id, when(n.announced_at, tz), n.vendor) for n in notices),
        empty="no notices you may see",
    )


def _register_groups() -> None:
    """The sub-command groups that live in their own modules, each named here (a missing one
    is an ImportError, not a silently smaller command line)."""
    from orchestrator.interfaces import (
        cli_access,
        cli_audit,
        cli_calendar,
        cli_findings,
        cli_record,
        cli_run,
        cli_schedule,
        cli_worker,
    )

    for module in (
        cli_run,
        cli_schedule,
        cli_record,
        cli_findings,
        cli_audit,
        cli_access,
        cli_worker,
        cli_calendar,
    ):
        module.register(app)


_register_groups()


def main() -> None:
    """Console entry point."""
    try:
        app()
    except RioError as exc:
        err_console.print(f"rio: {exc}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("rio: interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
