"""``rio record print``: the remote inspection record as a document people sign and file (Art. 18).

The print shows the record's fields, every finding with its severity and where it was seen,
the rectification orders, who signed which version and when (and whether it counts), and the
SHA-256 of the record's canonical bytes, the very bytes the signatures cover: a paper copy in
the file is matched to the archive's ``record.json`` by that digest.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.documents._render import Format, render, to_bytes
from orchestrator.intake.notices import get_notice
from orchestrator.intake.registry import Person
from orchestrator.record.assemble import view_record
from orchestrator.record.findings import record_where
from orchestrator.record.signoff import record_signatures, signoff_status
from orchestrator.store.models import RunRow
from orchestrator.timefmt import format_instant

__all__ = ["print_record"]


def _when(value: object, tz: Any) -> str:
    """A record's ISO 8601 time as people read it: the one format, in their timezone."""
    if not isinstance(value, str):
        return _text(value)
    try:
        return format_instant(datetime.fromisoformat(value), tz)
    except ValueError:
        return value


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_text(v)}" for k, v in value.items())
    return "-" if value is None else str(value)


def print_record(rio: Rio, actor: Person, run_id: str, fmt: Format) -> bytes:
    """Render the current version of a run's record, with every signature on every version.

    Args:
        rio: The opened home.
        actor: Who asks (anyone who may read the run's ledger and record).
        run_id: The run.
        fmt: HTML or PDF.

    Returns:
        The document's bytes.

    Raises:
        NotFoundError: The run does not exist.
        StateError: The run is not sealed (so it has no record).
        AccessDeniedError: The actor may not read the run's record.
        ToolError: PDF was asked for and cannot be laid out here.
    """
    with rio.db.session() as s:
        authorize(s, actor, Action.READ_LEDGER, run_id=run_id, now=rio.clock.now())
        run = s.get(RunRow, run_id)
        assert run is not None  # authorize raised NotFoundError otherwise
        notice = get_notice(s, run.notice_id)
    # Read only, like `rio record show`: a sealed run with no stored record prints the version 1
    # its first signature will store.
    record = view_record(rio.db, run_id, checkpoint_key=rio.verify_key)
    doc = record.document()
    status = signoff_status(rio.db, run_id, record=record)
    counted = {*status.officers_signed, *status.technicians_signed}
    titles = {
        c["finding"]: c.get("title", "")
        for kind in ("risks", "violations")
        for c in doc.get("conclusions", {}).get(kind, [])
    }
    tz = rio.settings.tz  # people read the record in their timezone (RIO_TIMEZONE)
    signatures = []
    for version in range(1, record.version + 1):
        for info in record_signatures(rio.db, run_id, version):
            if version != record.version:
                counts = "否 no: an earlier version"
            else:
                counts = "是 yes" if info.person in counted else "否 no (see below)"
            signatures.append(
                {
                    "version": version,
                    "person": info.person,
                    "role": info.role,
                    "signed_at": format_instant(info.signed_at, tz),
                    "key_id": info.key_id[:16],
                    "counts": counts,
                }
            )
    vendor = doc.get("vendor")
    context = {
        "run": run_id,
        "version": record.version,
        "created_at": format_instant(record.created_at, tz),
        "closed_at": format_instant(record.closed_at, tz) if record.closed_at else None,
        "digest": hashlib.sha256(record.body).hexdigest(),
        "object": f"{doc['object'].get('name')} ({doc['object'].get('id')})",
        "notice_id": doc["notice"]["id"],
        "notice_announced": format_instant(
            datetime.fromisoformat(doc["notice"]["announced_at"]), tz
        ),
        "scope_sha256": doc["notice"]["scope_sha256"],
        "policy_sha256": doc["notice"]["policy_sha256"],
        "organ": ", ".join(sorted(notice.organs)) or "-",
        "vendor": f"{vendor['name']} ({vendor['organisation']})" if vendor else "-",
        "technicians": doc.get("technicians", []),
        "span": f"{_when(doc['span'].get('start'), tz)} .. {_when(doc['span'].get('end'), tz)}",
        "counts": _text(doc.get("counts")),
        "ledger": f"{doc['ledger'].get('origin')} size {doc['ledger'].get('size')} "
        f"root {doc['ledger'].get('root')}",
        "need_officers": doc["signoff"]["officers"],
        "need_technicians": doc["signoff"]["technicians"],
        "findings": [
            {
                "id": f["id"],
                "severity": f["severity"],
                "rule": f["rule"],
                "title": titles.get(f["id"], ""),
                "where": record_where(f),
            }
            for f in doc.get("findings", [])
        ],
        "rectifications": doc.get("rectifications", []),
        "signatures": signatures,
        "ignored": list(status.ignored),
        "why": status.why,
    }
    page = render("record.html", r=context, footer=f"rio record {run_id} v{record.version}")
    return to_bytes(page, fmt)
