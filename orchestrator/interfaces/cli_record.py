"""``rio record``, ``rio rectify`` and ``rio archive``: the record, its sign-off, Art. 19 and 20.

Errors are not caught here: :func:`orchestrator.interfaces.cli.main` turns every
:class:`~orchestrator.errors.RioError` into a one-line message and its exit status (a refused
closure exits 3, a closed record touched again exits 5).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.documents._format import Format
from orchestrator.errors import InputError
from orchestrator.interfaces._auth import AsOpt, KeyOpt
from orchestrator.interfaces._common import QuietOpt, open_rio
from orchestrator.interfaces._output import (
    console,
    counted,
    err_console,
    print_json,
    print_lines,
    print_row,
    print_table,
    when,
)

if TYPE_CHECKING:
    from orchestrator.context import Rio
    from orchestrator.record import rectify as rectify_mod
    from orchestrator.record import signoff as signoff_mod
    from orchestrator.record.workdays import WorkingCalendar


__all__ = ["register"]

record_app = typer.Typer(
    help="The remote inspection record: show, sign, close.", no_args_is_help=True
)
rectify_app = typer.Typer(
    help="Rectification orders and re-checks (Art. 19).", no_args_is_help=True
)
archive_app = typer.Typer(help="Archives of closed runs (Art. 20).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    """Add the ``record``, ``rectify`` and ``archive`` command groups to ``app``."""
    app.add_typer(record_app, name="record")
    app.add_typer(rectify_app, name="rectify")
    app.add_typer(archive_app, name="archive")


def _calendar(rio: Rio) -> WorkingCalendar:
    # Read when a command runs, not at import: the years added with `rio calendar add` and
    # the operator's calendar file for a year the holidays package has not transcribed yet.
    from orchestrator.interfaces.cli_calendar import cli_calendar

    return cli_calendar(rio.settings)


def _provisional_note(order: rectify_mod.Rectification) -> str:
    if not order.provisional:
        return ""
    return (
        " (provisional: counted in a year without a State Council notice; recomputed when "
        "it is added with rio calendar add FILE)"
    )


def _signed_deadline_note(entry: dict[str, Any], orders: dict[int, Any]) -> str:
    """What a reader must know when the record's deadline is not the order's any more.

    A provisional deadline is recomputed when the year's notice is added (rio calendar add);
    a closed record keeps the date it was signed with, the order carries the new one.
    """
    order = orders.get(entry.get("id", -1))
    provisional = " (provisional)" if entry.get("deadline_provisional") else ""
    if order is None or order.deadline.isoformat() == entry.get("deadline"):
        return provisional
    return (
        f"{provisional} as signed; the order's deadline is now {order.deadline.isoformat()} "
        "(recomputed with the year's notice)"
    )


def _pairs(counts: Any) -> str:
    """``ok 2, timeout 1`` for an outcome tally (older records may hold a plain number)."""
    if isinstance(counts, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
    return str(counts)


def _date(text: str, option: str) -> date:
    try:
        if len(text) != len("YYYY-MM-DD"):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a YYYY-MM-DD date") from None


def _status_json(result: signoff_mod.SignoffResult) -> dict[str, Any]:
    return {
        "run": result.run_id,
        "version": result.version,
        "closable": bool(result),
        "threshold": {
            "officers": result.threshold.officers,
            "technicians": result.threshold.technicians,
            "vendor": result.threshold.vendor,
        },
        "officers_signed": list(result.officers_signed),
        "technicians_signed": list(result.technicians_signed),
        "missing": list(result.missing),
        "ignored": list(result.ignored),
        "why": result.why,
    }


# -- record ------------------------------------------------------------------------------------


@record_app.command("print")
def record_print(
    run: str,
    out: Annotated[Path, typer.Option(help="The file to write.")],
    fmt: Annotated[Format, typer.Option("--format", help="html or pdf.")] = Format.HTML,
    key: KeyOpt = None,
    claimed: AsOpt = None,
) -> None:
    """Write the record as a document to sign and file (Art. 18): fields, findings, orders,
    who signed which version and when, and the digest the signatures cover."""
    from orchestrator.access.identity import authenticate
    from orchestrator.documents._render import write_document
    from orchestrator.documents.record_print import print_record

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        data = print_record(rio, actor, run, fmt)
    write_document(data, out)
    console.print(f"{out}: record of run {run} ({fmt.value}, {len(data)} bytes)", markup=False)


@record_app.command("show")
def record_show(
    run: str, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """Show the current record of a sealed run (version 1 as it will be signed, if none is
    stored yet: showing stores nothing)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.record import rectify as rectify_mod
    from orchestrator.record.findings import record_where
    from orchestrator.services.records import view_record

    with open_rio() as rio:
        rv = view_record(rio, authenticate(rio, key, claimed=claimed), run, now=rio.clock.now())
        doc = rv.document
        tz = rio.settings.tz
        current_orders = {o.id: o for o in rectify_mod.list_orders(rio.db, run)}
    if as_json:
        print_json({"closed_at": rv.closed_at, "record": doc})
        return
    state = f"closed {when(rv.closed_at, tz)}" if rv.closed_at else "open"
    notice = doc["notice"]
    vendor = doc["vendor"]
    # Gate refusals and probes' own refusals by reason (older records: only the gate's).
    reasons: dict[str, int] = doc["counts"].get("refused_by_reason", {})
    refused = sum(reasons.values()) if reasons else doc["counts"]["refusals"]
    lines = [
        f"record     run {doc['run']} version {doc['version']} ({state})",
        f"notice     {notice['id']} announced {when(notice['announced_at'], tz)}",
        f"scope      sha256:{notice['scope_sha256']}",
        f"policy     sha256:{notice['policy_sha256']}",
        f"object     {doc['object']['id']} - {doc['object']['name']}",
        f"vendor     {vendor['name'] + ' - ' + vendor['organisation'] if vendor else '-'}",
        f"technician {', '.join(doc['technicians'])}",
        f"span       {when(doc['span']['start'], tz)} .. {when(doc['span']['end'], tz)}",
        f"probes     {doc['counts']['intents']} sent, {refused} refused, "
        f"outcomes {_pairs(doc['counts']['outcomes'])}",
        *(f"  refused {n:>6}  {why}" for why, n in reasons.items()),
        f"ledger     {doc['ledger']['origin']} size {doc['ledger']['size']} "
        f"root {doc['ledger']['root']}",
        f"sign-off   {counted(doc['signoff']['officers'], 'officer')}, "
        f"{counted(doc['signoff']['technicians'], 'technician')}",
    ]
    where = {f["id"]: record_where(f) for f in doc["findings"] if "location" in f}
    for r in doc["conclusions"]["risks"]:
        lines.append(f"risk       {r['finding']} {r['severity']} {r['title']} - {r['guidance']}")
        lines.append(f"  at       {where.get(r['finding'], '-')}")
    for v in doc["conclusions"]["violations"]:
        orders = ", ".join(str(o) for o in v["rectification"]) or "no order yet"
        lines.append(f"violation  {v['finding']} {v['severity']} {v['title']} (order {orders})")
        lines.append(f"  at       {where.get(v['finding'], '-')}")
    for o in doc["rectifications"]:
        lines.append(
            f"order      {o['id']} deadline {o['deadline']}"
            f"{_signed_deadline_note(o, current_orders)} findings {', '.join(o['findings'])}"
        )
    print_lines(lines)


@record_app.command("findings")
def record_findings(
    run: str,
    rule: Annotated[str | None, typer.Option(help="Only findings of this rule id.")] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
    ids_only: QuietOpt = False,
) -> None:
    """List a run's findings (never their evidence): id, severity, rule, where, title."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.records import list_findings

    with open_rio() as rio:
        found = list_findings(rio, authenticate(rio, key, claimed=claimed), run, rule=rule)
    rows = [f.to_json() for f in found]
    if as_json:
        print_json(rows)
        return
    if ids_only:
        for r in rows:
            print_row(r["id"])
        return
    print_table(
        ("finding", "severity", "rule", "where", "title"),
        (
            (
                r["id"],
                r["severity"],
                r["rule"],
                f"{r['ip']}:{r['port']}" if r["port"] is not None else r["ip"],
                r["title"],
            )
            for r in rows
        ),
        empty=f"run {run}: no findings" + (f" of rule {rule}" if rule else ""),
    )


@record_app.command("assemble")
def record_assemble(run: str, key: KeyOpt = None, claimed: AsOpt = None) -> None:
    """Re-assemble the record; a changed record becomes a new version (old signatures void)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.records import assemble

    with open_rio() as rio:
        rv = assemble(rio, authenticate(rio, key, claimed=claimed), run, now=rio.clock.now())
    console.print(f"record of run {run}: version {rv.version}", markup=False)


@record_app.command("sign")
def record_sign(
    run: str,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    version: Annotated[
        int | None, typer.Option(help="The version you reviewed; refused if it changed.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign the current record version locally; only the signature is stored.

    The key names the signer (officer or technician); ``--as`` only double-checks it.
    """
    from orchestrator.access.identity import authenticate, resolve_key_file
    from orchestrator.record.dsse import Ed25519Signer
    from orchestrator.services.records import sign_record

    with open_rio() as rio:
        # The signing key is also the proof of identity: a signed challenge, then the role matrix.
        person = authenticate(rio, key, claimed=claimed)
        signer = Ed25519Signer.from_file(resolve_key_file(key, rio.settings))
        info = sign_record(rio, person, run, signer, version=version, now=rio.clock.now())
    if as_json:
        print_json(info)
        return
    console.print(
        f"{info.person} ({info.role}) signed record of run {run} v{info.version} "
        f"with key {info.key_id[:16]}...",
        markup=False,
    )


@record_app.command("status")
def record_status(
    run: str, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """Show who signed the current version and what closure still needs."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.records import view_record

    with open_rio() as rio:
        view = view_record(rio, authenticate(rio, key, claimed=claimed), run, now=rio.clock.now())
        result, signed = view.status, view.signatures
        tz = rio.settings.tz
    if as_json:
        data = _status_json(result)
        data["signatures"] = [
            {"person": i.person, "role": i.role, "key_id": i.key_id, "signed_at": i.signed_at}
            for i in signed
        ]
        print_json(data)
        return
    console.print(f"record of run {run} v{result.version}", markup=False)
    for i in signed:
        console.print(
            f"  signed   {i.person} ({i.role}) key {i.key_id[:16]}... at {when(i.signed_at, tz)}",
            markup=False,
        )
    for note in result.ignored:
        console.print(f"  ignored  {note}", markup=False)
    console.print(
        f"  officers {len(result.officers_signed)}/{result.threshold.officers}: "
        f"{', '.join(result.officers_signed) or '-'}",
        markup=False,
    )
    if result.threshold.vendor is not None:
        console.print(
            f"  technicians of {result.threshold.vendor} {len(result.technicians_signed)}/"
            f"{result.threshold.technicians}: {', '.join(result.technicians_signed) or '-'}",
            markup=False,
        )
    console.print(f"  missing  {', '.join(result.missing) or 'nothing'}", markup=False)


@record_app.command("close")
def record_close(
    run: str, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """Close the record if the sign-off rule is met (exit 3 with the reason if not)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.records import close_record

    with open_rio() as rio:
        result = close_record(
            rio, authenticate(rio, key, claimed=claimed), run, now=rio.clock.now()
        )
    if as_json:
        print_json(_status_json(result) | {"closed": True})
        return
    console.print(
        f"record of run {run} v{result.version} closed: officers "
        f"{', '.join(result.officers_signed)}; technicians "
        f"{', '.join(result.technicians_signed) or '-'}",
        markup=False,
    )


# -- rectify -----------------------------------------------------------------------------------


def _order_json(order: rectify_mod.Rectification, today: date) -> dict[str, Any]:
    return {
        "id": order.id,
        "run": order.run_id,
        "findings": list(order.findings),
        "ordered_at": order.ordered_at,
        "deadline": order.deadline,
        "applied_on": order.applied_on,
        "recheck_due": order.recheck_due,
        "recheck_run": order.recheck_run_id,
        "feedback_due": order.feedback_due,
        "feedback": (
            {
                "at": order.feedback_at,
                "by": order.feedback_by,
                "document": order.feedback_document,
                "sha256": order.feedback_sha256,
            }
            if order.feedback_at is not None
            else None
        ),
        "state": order.state.value,
        "overdue": list(order.overdue(today)),
        "working_days": order.working_days,
        "provisional": order.provisional,
    }


@rectify_app.command("order")
def rectify_order(
    run: str,
    finding: Annotated[list[str], typer.Option("--finding", help="A finding id (repeatable).")],
    deadline: Annotated[str | None, typer.Option(help="Deadline, YYYY-MM-DD.")] = None,
    working_days: Annotated[
        int | None, typer.Option("--working-days", help="Deadline in working days from today.")
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Order rectification of findings by a deadline (the record gets a new version)."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.rectify import order_rectification

    day = _date(deadline, "--deadline") if deadline is not None else None
    with open_rio() as rio:
        calendar = _calendar(rio)
        order = order_rectification(
            rio,
            authenticate(rio, key, claimed=claimed),
            run,
            finding,
            calendar=calendar,
            deadline=day,
            working_days=working_days,
        )
    if as_json:
        print_json(_order_json(order, order.deadline))
        return
    console.print(
        f"order {order.id}: run {run}, deadline {order.deadline.isoformat()}, re-check due "
        f"{order.recheck_due.isoformat()}{_provisional_note(order)}",
        markup=False,
    )


@rectify_app.command("apply")
def rectify_apply(
    order: int,
    on: Annotated[str, typer.Option("--on", help="Date of the written application, YYYY-MM-DD.")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the object's written application for an early re-check."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services import rectify as rectify_service

    day = _date(on, "--on")
    with open_rio() as rio:
        rectify_service.require_order(rio, order)  # unknown before a key is asked for
        actor = authenticate(rio, key, claimed=claimed)
        calendar = _calendar(rio)
        updated = rectify_service.apply_early(rio, actor, order, on=day, calendar=calendar)
    if as_json:
        print_json(_order_json(updated, day))
        return
    console.print(
        f"order {updated.id}: applied {day.isoformat()}, re-check due "
        f"{updated.recheck_due.isoformat()}",
        markup=False,
    )


@rectify_app.command("recheck")
def rectify_recheck(
    order: int,
    run: Annotated[str, typer.Option("--run", help="The sealed re-check run.")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link the re-check run to an order: store the finding diff's outcome and feedback due."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services import rectify as rectify_service

    with open_rio() as rio:
        rectify_service.require_order(rio, order)  # unknown before a key is asked for
        actor = authenticate(rio, key, claimed=claimed)
        calendar = _calendar(rio)
        updated, diff = rectify_service.record_recheck(
            rio, actor, order, recheck_run_id=run, calendar=calendar
        )
    if as_json:
        data = _order_json(updated, updated.recheck_due)
        data["diff"] = diff.to_json()
        print_json(data)
        return
    console.print(
        f"order {updated.id}: re-checked by run {run}: {len(diff.fixed)} fixed, "
        f"{len(diff.still_present)} still present, {len(diff.new)} new, "
        f"{len(diff.not_ordered)} seen before but not ordered; "
        f"feedback due {updated.feedback_due}",
        markup=False,
    )


@rectify_app.command("plan")
def rectify_plan(
    order: int, key: KeyOpt = None, claimed: AsOpt = None, as_json: JsonOpt = False
) -> None:
    """Say which announced window the re-check can use, or what must be announced by when."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.rectify import recheck_plan

    with open_rio() as rio:
        plan = recheck_plan(rio, authenticate(rio, key, claimed=claimed), order)
    if as_json:
        print_json(
            {
                "order": plan.order_id,
                "run": plan.run_id,
                "due": plan.due,
                "probes": list(plan.probes),
                "targets": list(plan.targets),
                "notice": plan.notice_id,
                "window_start": plan.window_start,
                "window_end": plan.window_end,
                "announce_by": plan.announce_by,
                "why": plan.why,
            }
        )
        return
    console.print(plan.why, markup=False)


@rectify_app.command("schedule")
def rectify_schedule(
    order: int,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Schedule the re-check run (Art. 19) in the announced window that covers its due date.

    The re-check runs the same notice again (the same probes on the same targets) at its next
    opening, launched by the key's owner (the entrusted vendor's technician). When no announced
    window covers the due date, nothing is scheduled and rio says what must be announced by when.
    """
    from orchestrator.access.identity import authenticate
    from orchestrator.services.rectify import schedule_recheck

    with open_rio() as rio:
        planned = schedule_recheck(rio, authenticate(rio, key, claimed=claimed), order)
        tz = rio.settings.tz
    if as_json:
        print_json(planned)
        return
    if planned.after_due:
        err_console.print(
            f"warning: the next opening {when(planned.start, tz)} is after the re-check "
            f"due date {planned.due.isoformat()}",
            markup=False,
        )
    print_lines(
        [
            planned.run_id,
            f"re-check of order {order} planned at {when(planned.start, tz)} (notice "
            f"{planned.notice_id}); when it is sealed: rio rectify recheck {order} --run "
            f"{planned.run_id}",
        ]
    )


def _feedback_text(order: rectify_mod.Rectification) -> str:
    from orchestrator.record._zone import CALENDAR_ZONE

    if order.feedback_at is None:
        return ""
    return (
        f" (fed back {when(order.feedback_at, CALENDAR_ZONE)} by {order.feedback_by}: "
        f"{order.feedback_document} sha256:{(order.feedback_sha256 or '')[:16]})"
    )


@rectify_app.command("feedback")
def rectify_feedback(
    order: int,
    document: Annotated[Path, typer.Option(help="The feedback document sent to the object.")],
    at: Annotated[
        str | None, typer.Option(help="When it was sent (ISO 8601; default: now).")
    ] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that the re-check result was fed back to the object (Art. 19: within 3 working
    days after the re-check); `rio rectify status` flags feedback that is overdue or late."""
    from orchestrator.access.identity import authenticate
    from orchestrator.audit._docs import parse_time
    from orchestrator.record._zone import CALENDAR_ZONE
    from orchestrator.services import rectify as rectify_service

    when = None if at is None else parse_time(at, "--at", "")
    try:
        data = document.read_bytes()
    except OSError as exc:
        raise InputError(f"{document}: cannot read the feedback document: {exc.strerror}") from exc
    with open_rio() as rio:
        now = rio.clock.now()
        actor = authenticate(rio, key, claimed=claimed, now=now)
        updated = rectify_service.record_feedback(
            rio,
            actor,
            order,
            document_name=document.name,
            document=data,
            now=now if when is None else when,
        )
    today = now.astimezone(CALENDAR_ZONE).date()
    late = updated.overdue(today)
    if as_json:
        print_json(_order_json(updated, today))
        return
    console.print(
        f"order {order}: feedback recorded{_feedback_text(updated)}"
        + (f"  LATE: {'; '.join(late)}" if late else ""),
        markup=False,
    )


@rectify_app.command("status")
def rectify_status(
    run: Annotated[str | None, typer.Option(help="Only this run's orders.")] = None,
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the rectification orders of the runs you may see; overdue ones are marked OVERDUE."""
    from orchestrator.access.identity import authenticate
    from orchestrator.record._zone import CALENDAR_ZONE
    from orchestrator.services.rectify import list_orders

    with open_rio() as rio:
        today = rio.clock.now().astimezone(CALENDAR_ZONE).date()  # deadlines: China days
        orders = list_orders(rio, authenticate(rio, key, claimed=claimed), run)
    if as_json:
        print_json([_order_json(o, today) for o in orders])
        return
    rows = []
    for o in orders:
        late = o.overdue(today)
        notes = _feedback_text(o).strip() + (" PROVISIONAL" if o.provisional else "")
        if late:
            notes += f" OVERDUE: {'; '.join(late)}"
        rows.append(
            (
                o.id,
                o.run_id,
                o.state.value,
                o.deadline.isoformat(),
                o.recheck_due.isoformat(),
                o.feedback_due.isoformat() if o.feedback_due else None,
                notes.strip() or None,
            )
        )
    print_table(
        ("order", "run", "state", "deadline", "re-check due", "feedback due", "notes"),
        rows,
        empty="no rectification orders" + (f" of run {run}" if run else ""),
    )


# -- archive -----------------------------------------------------------------------------------


@archive_app.command("export")
def archive_export(
    run: str,
    out: Annotated[Path, typer.Option("--out", help="The archive file to write.")],
    key: KeyOpt = None,
    claimed: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the closed run's archive (docs/archive-format.md), atomically."""
    from orchestrator.access.identity import authenticate
    from orchestrator.services.records import export_run_archive

    with open_rio() as rio:
        actor = authenticate(rio, key, claimed=claimed)
        summary = export_run_archive(rio, actor, run, out, now=rio.clock.now())
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{summary.path}: {summary.size} bytes, sha256 {summary.sha256}, "
        f"record v{summary.record_version}",
        markup=False,
    )
