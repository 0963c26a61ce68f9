"""How a run names itself on the wire: the User-Agent and From headers of its HTTP probes.

A defender reading their logs must learn *who* is scanning and *under which notice*: the
User-Agent names the notice and the inspecting side (the entrusted vendor's organisation, for
the organ whose officer announced the notice), never the inspected object's own contact, and
the From header carries the inspecting side's mailbox (``RIO_CONTACT``). With
``RIO_PUBLIC_BASE_URL`` set, the User-Agent ends with the notice's public check
(``+BASE/verify/NOTICE``), where the defender confirms the traffic was announced.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator import __version__
from orchestrator.intake.notices import Notice
from orchestrator.store.models import NoticeRow, PersonRow, VendorRow

__all__ = ["user_agent"]

# A User-Agent comment may not hold parentheses, backslashes or control characters unescaped.
_UNSAFE = re.compile(r"[()\\\x00-\x1f\x7f]+")
_MAX_NAME = 100


def _clean(text: str) -> str:
    return " ".join(_UNSAFE.sub(" ", text).split())[:_MAX_NAME]


def user_agent(s: Session, notice: Notice, *, verify_url: str | None = None) -> str:
    """``rio/<version> (+notice <id>; remote inspection by <vendor> for <organ>[; +<url>])``.

    The organ is the organisation of the officer who announced the notice; a notice without a
    vendor reads ``by <organ>``. ``verify_url`` is the notice's public check
    (:meth:`~orchestrator.settings.Settings.verify_url`, already checked for the characters a
    comment may hold).
    """
    organ = s.scalar(
        select(PersonRow.organisation)
        .join(NoticeRow, NoticeRow.announced_by == PersonRow.id)
        .where(NoticeRow.id == notice.id)
    )
    vendor = None
    if notice.vendor is not None:
        vendor = s.scalar(select(VendorRow.organisation).where(VendorRow.name == notice.vendor))
    parts = [_clean(vendor)] if vendor else []
    if organ:
        parts.append(("for " if parts else "") + _clean(organ))
    who = " ".join(parts) or "an unnamed inspecting organ"
    link = f"; +{verify_url}" if verify_url else ""
    return f"rio/{__version__} (+notice {notice.id}; remote inspection by {who}{link})"
