"""The public part of a notice, and "was traffic from this address at this time announced?".

The inspected object's staff see probes in their logs; the User-Agent and the notice letter
point them to the public check (Art. 16: the object is told the time and scope in advance).
:func:`public_notice` returns only what the object was told and may repeat to anyone: the
object, the announcing organ, the windows, the scanner source addresses, the contact, the
scope's digest and when probing may start. Targets, excludes, the policy, the vendor and every
run detail stay out.

:func:`lookup_source` answers for one source address and instant: the notices that announce that
address as a scanner source with a window containing the instant, after the policy's lead time.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.errors import InputError
from orchestrator.intake.notices import Notice, get_notice
from orchestrator.store.models import NoticeRow, RunRow

__all__ = ["PublicNotice", "PublicWindow", "SourceAnswer", "lookup_source", "public_notice"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PublicWindow:
    """An announced window, in UTC and as announced (the object's timezone)."""

    start: datetime
    end: datetime
    timezone: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PublicNotice:
    """What anyone may learn about a notice."""

    id: str
    object_id: str
    object_name: str
    organ: str | None
    announced_at: datetime
    probing_from: datetime
    windows: tuple[PublicWindow, ...]
    sources: tuple[str, ...]
    contact_name: str
    contact_email: str | None
    scope_sha256: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceAnswer:
    """The answer for one source address and instant; truthy when the traffic was announced."""

    source: str
    at: datetime
    notices: tuple[PublicNotice, ...]
    runs_active: int
    why: str

    def __bool__(self) -> bool:
        return bool(self.notices)


def _public(notice: Notice) -> PublicNotice:
    scope = notice.scope
    return PublicNotice(
        id=notice.id,
        object_id=scope.object.id,
        object_name=scope.object.name,
        organ=notice.organ,
        announced_at=notice.announced_at,
        probing_from=notice.lead_time_met_at(),
        windows=tuple(
            PublicWindow(start=w.start_utc, end=w.end_utc, timezone=w.timezone)
            for w in scope.windows
        ),
        sources=tuple(str(a) for a in scope.sources),
        contact_name=scope.contact.name,
        contact_email=scope.contact.email,
        scope_sha256=notice.scope_sha256,
    )


def public_notice(s: Session, notice_id: str) -> PublicNotice:
    """The public part of one notice.

    Raises:
        NotFoundError: No such notice.
    """
    return _public(get_notice(s, notice_id))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise InputError(f"source {text!r} is not an IP address") from exc


def lookup_source(s: Session, source: str, at: datetime) -> SourceAnswer:
    """Which notices announce ``source`` as a scanner address at ``at``.

    Args:
        s: A database session.
        source: The source address seen in the object's logs.
        at: When it was seen (aware; naive times are refused).

    Returns:
        The matching notices' public parts, how many of their runs were active at ``at``,
        and a sentence saying why the answer is what it is.

    Raises:
        InputError: ``source`` is not an address or ``at`` has no timezone.
    """
    if at.tzinfo is None:
        raise InputError(f"time {at.isoformat()} has no timezone (add Z or +08:00)")
    address = _address(source)
    when = at.astimezone(UTC)
    matches: list[Notice] = []
    announced_elsewhen = False
    for row in s.scalars(select(NoticeRow).order_by(NoticeRow.announced_at, NoticeRow.id)):
        notice = get_notice(s, row.id)
        if address not in {ipaddress.ip_address(str(a)) for a in notice.scope.sources}:
            continue
        if notice.scope.window_at(when) is not None and when >= notice.lead_time_met_at():
            matches.append(notice)
        else:
            announced_elsewhen = True
    runs = 0
    if matches:
        runs = sum(
            1
            for run in s.scalars(
                select(RunRow).where(RunRow.notice_id.in_([n.id for n in matches]))
            )
            if run.started_at is not None
            and run.started_at <= when
            and (run.ended_at is None or when <= run.ended_at)
        )
    if matches:
        why = f"{address} is an announced scanner source at {when.isoformat()}"
    elif announced_elsewhen:
        why = (
            f"{address} is an announced scanner source, but not at {when.isoformat()}: "
            "outside every announced window or before the notice's lead time"
        )
    else:
        why = f"no notice announces {address} as a scanner source"
    return SourceAnswer(
        source=str(address),
        at=when,
        notices=tuple(_public(n) for n in matches),
        runs_active=runs,
        why=why,
    )
