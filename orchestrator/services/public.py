"""The public notice check as operations (no acting person: anyone may ask, nothing is secret)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.context import Rio
from orchestrator.intake import public as _public
from orchestrator.intake.public import PublicNotice, SourceAnswer

__all__ = ["lookup_source", "public_notice"]


def public_notice(rio: Rio, notice_id: str) -> PublicNotice:
    """The public part of a notice (see :mod:`orchestrator.intake.public`).

    Raises:
        NotFoundError: No such notice.
    """
    with rio.db.session() as s:
        return _public.public_notice(s, notice_id)


def lookup_source(rio: Rio, source: str, at: datetime) -> SourceAnswer:
    """Whether traffic from ``source`` at ``at`` belongs to an announced inspection.

    Raises:
        InputError: ``source`` is not an address, or ``at`` has no timezone.
    """
    with rio.db.session() as s:
        return _public.lookup_source(s, source, at)
