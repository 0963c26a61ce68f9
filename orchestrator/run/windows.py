"""When may a notice's probes run? Openings: the instants the gate's window checks would pass.

An *opening* starts at an instant where every time rule the gate checks holds at once:

- the notice's lead time is met (``announced_at + policy.min_notice_lead``);
- the instant lies inside an announced window (:meth:`Scope.window_at`);
- it lies inside a policy window, in the policy's timezone (:meth:`Policy.window_at`);
- its date (policy timezone) is not a blackout date (:meth:`Policy.blackout_on`).

It ends where the gate's ``window_end`` says probing must have stopped: the earlier of the
announced window's end and the policy window's end that day. Adjacent windows therefore give
adjacent openings, one per window, exactly as the gate would pause and resume a run.

These are pure functions: the same predicate the gate uses is evaluated only at *candidate*
instants (the lead time, announced window starts, each local day's policy window starts in both
folds, and the day's UTC-offset change), because the allowed set is a union of half-open
intervals that can only begin at one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from orchestrator.errors import InputError
from orchestrator.intake.notices import Notice
from orchestrator.intake.policy import Policy, Weekday
from orchestrator.intake.scope import Scope

__all__ = ["Opening", "allowed_at", "next_opening", "next_opening_for", "opening_at", "openings"]

_ZERO = timedelta(0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Opening:
    """A stretch of time in which probing may start.

    Attributes:
        start: the first instant probing may start (aware, UTC).
        end: when probing must have stopped (aware, UTC), as the gate's ``window_end`` computes
            it at ``start``; always after ``start``.
    """

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def contains(self, instant: datetime) -> bool:
        """True when ``instant`` lies in [start, end)."""
        return self.start <= instant < self.end


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise InputError(f"{what}: {value.isoformat()} has no timezone (give an aware datetime)")
    return value.astimezone(UTC)


def allowed_at(
    scope: Scope, policy: Policy, instant: datetime, *, not_before: datetime | None = None
) -> bool:
    """The gate's time checks at ``instant`` (lead time, announced and policy window, blackout).

    Args:
        scope: the announced scope (its windows).
        policy: the policy (its windows, timezone and blackout dates).
        instant: an aware datetime.
        not_before: the instant the lead time is met, if any.
    """
    if not_before is not None and instant < not_before:
        return False
    return (
        scope.window_at(instant) is not None
        and policy.window_at(instant) is not None
        and policy.blackout_on(instant) is None
    )


def _window_end(scope: Scope, policy: Policy, instant: datetime) -> datetime:
    # The same rule as Gate.window_end; only called where allowed_at holds.
    announced = scope.window_at(instant)
    allowed = policy.window_at(instant)
    assert announced is not None and allowed is not None
    return min(announced.end_utc, allowed.end_on(instant.astimezone(policy.tz))).astimezone(UTC)


def _merged(scope: Scope) -> list[tuple[datetime, datetime]]:
    """The announced windows as a sorted union of disjoint [start, end) intervals (UTC)."""
    spans = sorted((w.start_utc, w.end_utc) for w in scope.windows)
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _offset_change(day: date, tz: ZoneInfo) -> datetime | None:
    """The instant within local ``day`` where the UTC offset changes (DST), if any."""
    lo = datetime.combine(day, time(0), tz).astimezone(UTC)
    hi = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    if lo.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
        return None
    # Bisect to the second: offsets change at whole seconds in every tz database zone.
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
            lo = mid
        else:
            hi = mid
    return hi


def _day_candidates(day: date, policy: Policy) -> list[datetime]:
    """Instants of local ``day`` where a policy window may open (UTC, sorted)."""
    tz = policy.tz
    weekday = list(Weekday)[day.weekday()]
    found: set[datetime] = set()
    for w in policy.windows:
        if weekday not in w.days:
            continue
        for fold in (0, 1):
            found.add(datetime.combine(day, w.start, tz).replace(fold=fold).astimezone(UTC))
    change = _offset_change(day, tz)
    if change is not None:
        # A window start that falls in a spring-forward gap opens when the clock jumps.
        found.add(change)
    return sorted(found)


def _starts(
    scope: Scope, policy: Policy, after: datetime, not_before: datetime | None
) -> Iterator[datetime]:
    """Every instant >= ``after`` at which an allowed stretch may begin, in increasing order.

    Each yielded instant satisfies :func:`allowed_at`; ``after`` itself comes first if allowed.
    """
    floor = after if not_before is None else max(after, not_before)
    tz = policy.tz
    last = None
    for start, end in _merged(scope):
        if end <= floor:
            continue
        lo = max(floor, start)
        candidates = [lo]
        day = lo.astimezone(tz).date() - timedelta(days=1)
        last_day = end.astimezone(tz).date() + timedelta(days=1)
        while True:
            # Days are walked lazily: a years-long window costs only as many days as it takes.
            pending = [c for c in candidates if lo <= c < end]
            for c in sorted(pending):
                if (last is None or c > last) and allowed_at(scope, policy, c, not_before=floor):
                    last = c
                    yield c
            if day > last_day:
                break
            candidates = _day_candidates(day, policy)
            day += timedelta(days=1)


def next_opening_for(
    scope: Scope,
    policy: Policy,
    after: datetime,
    *,
    not_before: datetime | None = None,
    min_length: timedelta = _ZERO,
) -> Opening | None:
    """The first opening that starts at or after ``after``.

    Args:
        scope: the announced scope.
        policy: the policy.
        after: an aware datetime; the opening starts at it or later.
        not_before: the instant the lead time is met (``None``: no lead time).
        min_length: skip openings shorter than this (e.g. the policy's probe timeout, so that
            a run is not started where the gate could permit no probe).

    Returns:
        The opening, or ``None`` when no announced window has such an instant left.

    Raises:
        InputError: ``after`` or ``not_before`` is naive.
    """
    floor = _utc(after, "after")
    ready = _utc(not_before, "not_before") if not_before is not None else None
    for start in _starts(scope, policy, floor, ready):
        opening = Opening(start=start, end=_window_end(scope, policy, start))
        # end <= start where the gate's window end falls before now (the second pass of a
        # repeated DST hour): the gate would refuse every probe there, so it is no opening.
        if opening.end > opening.start and opening.length >= min_length:
            return opening
    return None


def next_opening(
    notice: Notice, after: datetime, *, min_length: timedelta = _ZERO
) -> Opening | None:
    """The first opening of ``notice`` at or after ``after`` (its lead time included).

    Args:
        notice: the notice (its scope's windows, its policy, its announcement time).
        after: an aware datetime.
        min_length: skip openings shorter than this.

    Returns:
        The opening, or ``None`` when every announced window has passed.
    """
    return next_opening_for(
        notice.scope,
        notice.policy,
        after,
        not_before=notice.lead_time_met_at(),
        min_length=min_length,
    )


def opening_at(notice: Notice, instant: datetime) -> Opening | None:
    """The opening ``instant`` lies in, from ``instant`` to its end; ``None`` if it lies in none.

    Args:
        notice: the notice.
        instant: an aware datetime.
    """
    now = _utc(instant, "instant")
    if not allowed_at(notice.scope, notice.policy, now, not_before=notice.lead_time_met_at()):
        return None
    end = _window_end(notice.scope, notice.policy, now)
    return Opening(start=now, end=end) if end > now else None


def openings(
    notice: Notice, start: datetime, end: datetime, *, min_length: timedelta = _ZERO
) -> Iterator[Opening]:
    """Every opening of ``notice`` that starts in [start, end), in order.

    Args:
        notice: the notice.
        start: aware; the first opening starts at it or later.
        end: aware; no opening starting at or after it is yielded.
        min_length: skip openings shorter than this.
    """
    stop = _utc(end, "end")
    opening = next_opening(notice, start, min_length=min_length)
    while opening is not None and opening.start < stop:
        yield opening
        # Openings never overlap: the next one starts where this one's gate deadline falls.
        opening = next_opening(notice, opening.end, min_length=min_length)
