"""``rio notice letter``: the notice the inspected object receives before the inspection (Art. 16).

The letter says who inspects (the announcing organ, any co-inspecting organs, the entrusted
vendor), when (the announced windows in the object's own timezone), what (targets, excludes,
the probe catalogue and rate limits in plain words, Chinese and English), from where (the
scanner source addresses and the User-Agent its HTTP requests carry), where the object's staff
check, without an account, that traffic belongs to it (``RIO_PUBLIC_BASE_URL/verify/NOTICE``,
when that is set), whom to contact with an objection, and the digests by which the record and
the archive name this notice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select

from orchestrator.access.roles import visible_notices
from orchestrator.context import Rio
from orchestrator.documents._render import Format, render, to_bytes
from orchestrator.errors import AccessDeniedError
from orchestrator.intake.notices import Notice, get_notice
from orchestrator.intake.policy import Policy
from orchestrator.intake.registry import Person
from orchestrator.record.canonical import canonical_bytes
from orchestrator.run._identity import user_agent
from orchestrator.store.models import VendorRow
from orchestrator.timefmt import format_instant

__all__ = ["notice_digest", "notice_letter", "probe_words"]


def _probe_words() -> dict[str, list[str]]:
    text = resources.files("orchestrator.documents").joinpath("probe_words.yaml").read_text("utf-8")
    words = yaml.safe_load(text)
    assert isinstance(words, dict)
    return words


def _ports(policy: Policy, probe: str) -> str:
    params: Any = getattr(policy.probes, probe.replace("-", "_"), None)
    ports = list(getattr(params, "ports", ()) or ())
    ports += list(getattr(params, "https_ports", ()) or ())
    return ", ".join(str(p) for p in ports)


def probe_words(policy: Policy) -> list[dict[str, str]]:
    """Each allowed probe in plain words (Chinese and English), with the ports it touches."""
    words = _probe_words()
    ports_zh, ports_en = words["ports"]
    out: list[dict[str, str]] = []
    for name in policy.probes.allowed():
        zh, en = words.get(name, (name, f"probe {name}"))
        ports = _ports(policy, name)
        if ports:
            zh, en = f"{zh}; {ports_zh} {ports}", f"{en}; {ports_en} {ports}"
        out.append({"name": name, "zh": zh, "en": en})
    return out


def notice_digest(notice: Notice) -> str:
    """SHA-256 of the notice's canonical JSON (the archive's ``notice.json``)."""
    return hashlib.sha256(canonical_bytes(notice.to_json(), source="notice")).hexdigest()


def _local(when: datetime, zone: ZoneInfo) -> str:
    """The one time format (ISO 8601 with the offset) in the object's zone, named."""
    return f"{format_instant(when, zone)} ({zone.key})"


def notice_letter(rio: Rio, actor: Person, notice_id: str, fmt: Format) -> bytes:
    """Render the Art. 16 notice letter of a notice the actor may see.

    Args:
        rio: The opened home.
        actor: Who asks (officers of the notice's organ, technicians of its vendor, auditors).
        notice_id: The notice.
        fmt: HTML or PDF.

    Returns:
        The document's bytes.

    Raises:
        NotFoundError: The notice does not exist.
        AccessDeniedError: The actor may not see the notice.
        ToolError: PDF was asked for and cannot be laid out here.
    """
    with rio.db.session() as s:
        notice = get_notice(s, notice_id)
        visible = s.scalars(visible_notices(s, actor, now=rio.clock.now()))
        if notice_id not in {row.id for row in visible}:
            raise AccessDeniedError(
                f"{actor.name} ({actor.role}) may not see notice {notice_id}: it is neither "
                "of their organ nor entrusted to their vendor"
            )
        vendor_org = None
        if notice.vendor is not None:
            vendor_org = s.scalar(
                select(VendorRow.organisation).where(VendorRow.name == notice.vendor)
            )
        verify_url = rio.settings.verify_url(notice.id)
        agent = user_agent(s, notice, verify_url=verify_url)
    scope, policy = notice.scope, notice.policy
    zone = ZoneInfo(scope.windows[0].timezone)
    fmt_zone = {w.timezone for w in scope.windows}
    context = {
        "id": notice.id,
        "object_id": scope.object.id,
        "object_name": scope.object.name,
        "announced_local": _local(notice.announced_at, zone),
        "lead_met_local": _local(notice.lead_time_met_at(), zone),
        "organ": notice.organ or "(not recorded)",
        "co_inspecting": list(notice.co_inspecting),
        "vendor": notice.vendor,
        "vendor_organisation": vendor_org or "-",
        "timezone": ", ".join(sorted(fmt_zone)),
        "windows": [
            {
                "start": _local(w.start_utc, ZoneInfo(w.timezone)),
                "end": _local(w.end_utc, ZoneInfo(w.timezone)),
                "timezone": w.timezone,
            }
            for w in scope.windows
        ],
        "policy_name": policy.name,
        "targets": [t.label() for t in scope.targets],
        "excludes": [t.label() for t in scope.excludes],
        "sources": list(scope.sources),
        "probes": probe_words(policy),
        "rates": {
            "per_ip": policy.rates.per_ip,
            "per_network": policy.rates.per_network,
            "per_notice": policy.rates.per_notice,
        },
        "concurrency": policy.concurrency,
        "probe_timeout": int(policy.probe_timeout.total_seconds()),
        "user_agent": agent,
        "verify_url": verify_url,
        "contact_name": scope.contact.name,
        "contact_email": scope.contact.email,
        "contact_phone": scope.contact.phone,
        "digest": notice_digest(notice),
        "scope_name": notice.scope_name,
        "scope_sha256": notice.scope_sha256,
        "policy_sha256": notice.policy_sha256,
    }
    page = render("notice_letter.html", n=context, footer=f"rio notice {notice.id}")
    return to_bytes(page, fmt)
