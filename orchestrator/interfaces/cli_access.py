"""``rio access log``, ``rio evidence show|grant`` and ``rio purge``.

Every command here proves who runs it from the operator's private key (``--key FILE`` or
``RIO_KEY_FILE``), never from a typed name, and asks :mod:`orchestrator.access.roles`.
The access listing lives at ``rio access log`` because ``rio audit`` belongs to ``cli_audit``.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.errors import InputError
from orchestrator.interfaces._common import open_rio
from orchestrator.interfaces._output import console, counted, print_json, print_table, when

if TYPE_CHECKING:
    pass


__all__ = ["register"]

access_app = typer.Typer(help="Who read what: the access log.", no_args_is_help=True)
evidence_app = typer.Typer(help="Confidential evidence: read it, grant it.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="Your private key file (default: $RIO_KEY_FILE)."),
]
AsOpt = Annotated[
    str | None, typer.Option("--as", help="Refuse unless the key belongs to this person.")
]


@access_app.command("log")
def access_log_cmd(
    person: Annotated[str | None, typer.Option(help="Only this person's entries.")] = None,
    run: Annotated[str | None, typer.Option(help="Only this run's entries.")] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the access log (officers, auditors; a technician for one run of their vendor)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.access import read_access_log

    with open_rio() as rio:
        reader = authenticate(rio, key, claimed=claimed)
        entries = read_access_log(rio, reader, run_id=run, person=person, now=rio.clock.now())
        tz = rio.settings.tz
    if as_json:
        print_json(entries)
        return
    print_table(
        ("at", "person", "action", "run", "subject", "verdict", "reason"),
        (
            (
                when(e.at, tz),
                e.person,
                e.action,
                e.run_id,
                e.subject,
                "allowed" if e.allowed else "REFUSED",
                e.reason,
            )
            for e in entries
        ),
        empty="no access log entries"
        + "".join(f" {k} {v}" for k, v in (("of", person), ("on run", run)) if v),
    )


@evidence_app.command("show")
def evidence_show(
    finding: Annotated[str, typer.Argument(help="Finding id.")],
    reason: Annotated[str, typer.Option(help="Why you need it (kept in the access log).")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Decrypt a finding's evidence to stdout (the read is logged, refused or not)."""
    from orchestrator.access.evidence import read_evidence
    from orchestrator.access.identity import authenticate

    with open_rio() as rio:
        reader = authenticate(rio, key, claimed=claimed)
        data = read_evidence(rio, reader, finding, reason=reason)
    sys.stdout.buffer.write(data)
    if not data.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


@evidence_app.command("grant")
def evidence_grant(
    run: Annotated[str, typer.Argument(help="Run id.")],
    auditor: Annotated[str, typer.Option(help="The auditor who may read the evidence.")],
    days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="The grant ends after this many days.")
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let an auditor read a run's evidence (officers only; logged)."""
    from orchestrator.access.evidence import grant_evidence
    from orchestrator.access.identity import authenticate

    with open_rio() as rio:
        now = rio.clock.now()
        expires = now + timedelta(days=days) if days is not None else None
        officer = authenticate(rio, key, claimed=claimed, now=now)
        info = grant_evidence(rio, officer, auditor, run, now=now, expires_at=expires)
        tz = rio.settings.tz
    if as_json:
        print_json({"grant": info, "expires_at": expires if info.created else None})
        return
    state = "granted" if info.created else "already granted"
    until = f" until {when(expires, tz)}" if expires is not None and info.created else ""
    console.print(
        f"{state}: {info.auditor} may read the evidence of run {info.run_id}{until}",
        markup=False,
    )


@evidence_app.command("revoke")
def evidence_revoke(
    run: Annotated[str, typer.Argument(help="Run id.")],
    auditor: Annotated[str, typer.Option(help="The auditor whose grant ends now.")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End an auditor's access to a run's evidence from now on (officers only; logged)."""
    from orchestrator.access.evidence import revoke_evidence_grant
    from orchestrator.access.identity import authenticate

    with open_rio() as rio:
        officer = authenticate(rio, key, claimed=claimed)
        count = revoke_evidence_grant(rio, officer, auditor, run)
    if as_json:
        print_json({"run": run, "auditor": auditor, "revoked": count})
        return
    console.print(f"revoked {counted(count, 'grant')} of {auditor} on run {run}", markup=False)


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--before: {text!r} is not a date (YYYY-MM-DD)") from exc


def purge_cmd(
    before: Annotated[str, typer.Option(help="Purge runs created before this date (YYYY-MM-DD).")],
    archive: Annotated[
        list[Path] | None,
        typer.Option(help="Archive file of a run to purge (repeat for several runs)."),
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Crypto-shred the evidence of closed, archived runs; ledgers, records, archives stay."""
    from orchestrator.access.identity import authenticate
    from orchestrator.access.purge import purge

    cutoff = _parse_date(before)
    with open_rio() as rio:
        officer = authenticate(rio, key, claimed=claimed)
        count = purge(rio, officer, cutoff, archives=archive or [])
    console.print(
        f"purged the evidence of {counted(count, 'run')} created before {cutoff.isoformat()}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``access``, ``evidence`` and ``purge`` to the ``rio`` command line."""
    app.add_typer(access_app, name="access")
    app.add_typer(evidence_app, name="evidence")
    app.command("purge")(purge_cmd)
