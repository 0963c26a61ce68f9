"""The zone of the working-day calendar's days (kept apart so the offline audit can name it
without loading the calendar and its ``holidays`` data)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

__all__ = ["CALENDAR_ZONE"]

#: Art. 19 working days are China calendar days, whatever zone rio's operator sets
#: (``RIO_TIMEZONE``), so that rio's deadlines and the offline audit's recomputation of them
#: agree on every machine.
CALENDAR_ZONE = ZoneInfo("Asia/Shanghai")
