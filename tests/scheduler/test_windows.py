"""Openings: the next instant at which every time rule of the gate holds, and when it ends."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.intake.policy import Policy, parse_policy
from orchestrator.intake.scope import Scope, parse_scope
from orchestrator.run.windows import Opening, allowed_at, next_opening_for
from tests.scheduler import ALL_DAYS, SHANGHAI, policy_doc, scope_doc, window

SH = ZoneInfo(SHANGHAI)


def _scope(windows: list[dict[str, str]]) -> Scope:
    return parse_scope(json.dumps(scope_doc(windows)).encode(), "test scope")


def _policy(**kwargs: object) -> Policy:
    return parse_policy(json.dumps(policy_doc(**kwargs)).encode(), "test policy")  # type: ignore[arg-type]


def _sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


WEEKDAY_NIGHTS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "00:00", "end": "06:00"}]


def test_opening_is_the_announced_start_in_shanghai_when_the_policy_allows_it() -> None:
    # 2030-12-02 is a Monday; the scope announces 01:00-05:00 Beijing time.
    scope = _scope([window("2030-12-02T01:00:00", "2030-12-02T05:00:00")])
    policy = _policy(windows=WEEKDAY_NIGHTS)
    after = datetime(2030, 12, 1, 12, 0, tzinfo=UTC)  # Sunday 20:00 in Shanghai
    opening = next_opening_for(scope, policy, after)
    assert opening == Opening(
        start=datetime(2030, 12, 1, 17, 0, tzinfo=UTC), end=datetime(2030, 12, 1, 21, 0, tzinfo=UTC)
    )


def test_opening_waits_for_the_policy_window_inside_a_longer_announcement() -> None:
    # Announced all weekend and Monday; the policy allows weekday nights only.
    scope = _scope([window("2030-11-30T00:00:00", "2030-12-03T00:00:00")])
    policy = _policy(windows=WEEKDAY_NIGHTS)
    opening = next_opening_for(scope, policy, _sh(2030, 11, 30, 9))
    assert opening is not None
    assert opening.start == _sh(2030, 12, 2, 0)
    assert opening.end == _sh(2030, 12, 2, 6)


def test_opening_skips_a_blackout_date() -> None:
    scope = _scope([window("2030-12-02T00:00:00", "2030-12-05T00:00:00")])
    policy = _policy(windows=WEEKDAY_NIGHTS, blackouts=[{"from": "2030-12-02", "to": "2030-12-03"}])
    opening = next_opening_for(scope, policy, _sh(2030, 12, 1))
    assert opening is not None
    assert opening.start == _sh(2030, 12, 4, 0)


def test_opening_starts_when_the_lead_time_is_met_inside_a_window() -> None:
    scope = _scope([window("2030-12-02T01:00:00", "2030-12-02T05:00:00")])
    policy = _policy()
    ready = _sh(2030, 12, 2, 2, 30)
    opening = next_opening_for(scope, policy, _sh(2030, 12, 1), not_before=ready)
    assert opening is not None
    assert opening.start == ready


def test_opening_inside_a_window_is_now() -> None:
    scope = _scope([window("2030-12-02T01:00:00", "2030-12-02T05:00:00")])
    now = _sh(2030, 12, 2, 3, 17)
    opening = next_opening_for(scope, _policy(), now)
    assert opening is not None and opening.start == now


def test_no_opening_once_every_announced_window_has_passed() -> None:
    scope = _scope([window("2030-12-02T01:00:00", "2030-12-02T05:00:00")])
    assert next_opening_for(scope, _policy(), _sh(2030, 12, 2, 5)) is None


def test_opening_shorter_than_min_length_is_skipped() -> None:
    scope = _scope(
        [
            window("2030-12-02T01:00:00", "2030-12-02T01:00:05"),
            window("2030-12-03T01:00:00", "2030-12-03T02:00:00"),
        ]
    )
    opening = next_opening_for(scope, _policy(), _sh(2030, 12, 1), min_length=timedelta(seconds=10))
    assert opening is not None and opening.start == _sh(2030, 12, 3, 1)


def test_announced_window_in_utc_meets_a_policy_in_shanghai() -> None:
    # 18:00-23:00 UTC is 02:00-07:00 Beijing time; the policy allows only until 06:00.
    scope = _scope([window("2030-12-01T18:00:00", "2030-12-01T23:00:00", tz="UTC")])
    opening = next_opening_for(scope, _policy(windows=WEEKDAY_NIGHTS), _sh(2030, 12, 1))
    assert opening == Opening(start=_sh(2030, 12, 2, 2), end=_sh(2030, 12, 2, 6))


def test_naive_after_is_refused() -> None:
    scope = _scope([window("2030-12-02T01:00:00", "2030-12-02T05:00:00")])
    with pytest.raises(InputError, match="after"):
        next_opening_for(scope, _policy(), datetime(2030, 12, 1))


BERLIN_SUNDAYS = [{"days": ["sun"], "start": "02:15", "end": "02:45"}]


def test_opening_in_a_spring_forward_gap_starts_when_the_clock_jumps() -> None:
    # 2026-03-29 02:00 CET does not exist in Berlin: clocks jump to 03:00 CEST (01:00 UTC).
    scope = _scope([window("2026-03-28T00:00:00", "2026-03-30T00:00:00", tz="UTC")])
    policy = _policy(
        windows=[{"days": ["sun"], "start": "02:30", "end": "04:00"}], tz="Europe/Berlin"
    )
    opening = next_opening_for(scope, policy, datetime(2026, 3, 28, tzinfo=UTC))
    assert opening is not None
    assert opening.start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_repeated_hour_opens_on_both_passes_as_the_gate_decides() -> None:
    # 2026-10-25 02:15 happens twice in Berlin: 00:15 UTC (CEST) and 01:15 UTC (CET). A window
    # written 02:15-02:45 local therefore holds twice; on the second pass its end is the second
    # pass of 02:45 (PolicyWindow.end_on follows the fold), so the gate allows probes there too.
    scope = _scope([window("2026-10-24T00:00:00", "2026-10-26T00:00:00", tz="UTC")])
    policy = _policy(windows=BERLIN_SUNDAYS, tz="Europe/Berlin")
    first = next_opening_for(scope, policy, datetime(2026, 10, 24, tzinfo=UTC))
    assert first == Opening(
        start=datetime(2026, 10, 25, 0, 15, tzinfo=UTC),
        end=datetime(2026, 10, 25, 0, 45, tzinfo=UTC),
    )
    assert first is not None
    assert next_opening_for(scope, policy, first.end) == Opening(
        start=datetime(2026, 10, 25, 1, 15, tzinfo=UTC),
        end=datetime(2026, 10, 25, 1, 45, tzinfo=UTC),
    )


# -- properties: every opening passes the gate's time checks, and none is missed ---------------

# Fridays; Europe/Berlin moves its clocks forward / back two days later.
BASES = [date(2026, 3, 27), date(2026, 10, 23)]
ZONES = ["Asia/Shanghai", "UTC", "Europe/Berlin"]
HORIZON_MIN = 4 * 24 * 60


@st.composite
def cases(draw: st.DrawFn) -> tuple[Scope, Policy, datetime, datetime | None]:
    scope_tz = draw(st.sampled_from(ZONES))
    policy_tz = draw(st.sampled_from(ZONES))
    day0 = draw(st.sampled_from(BASES))
    base = datetime(day0.year, day0.month, day0.day)
    spans = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, 3 * 24 * 60)) // 5 * 5
        length = draw(st.integers(5, 24 * 60)) // 5 * 5
        spans.append(
            window(
                (base + timedelta(minutes=start)).isoformat(),
                (base + timedelta(minutes=start + length)).isoformat(),
                tz=scope_tz,
            )
        )
    pwindows = []
    for _ in range(draw(st.integers(1, 3))):
        days = draw(st.lists(st.sampled_from(ALL_DAYS), min_size=1, max_size=7, unique=True))
        # Quarter hours; midnight and whole hours (where DST moves clocks) come up often.
        a = draw(st.sampled_from([0, 8, 12]) | st.integers(0, 24 * 4 - 1))
        b = draw(st.sampled_from([96, a + 4]).filter(lambda x: x <= 96) | st.integers(a + 1, 96))
        end = "24:00" if b == 96 else f"{b // 4:02d}:{b % 4 * 15:02d}"
        pwindows.append({"days": days, "start": f"{a // 4:02d}:{a % 4 * 15:02d}", "end": end})
    blackouts = [
        {
            "from": (day0 + timedelta(days=d)).isoformat(),
            "to": (day0 + timedelta(days=d)).isoformat(),
        }
        for d in draw(st.lists(st.integers(0, 4), max_size=2, unique=True))
    ]
    scope = _scope(spans)
    policy = _policy(windows=pwindows, blackouts=blackouts, tz=policy_tz)
    origin = datetime(day0.year, day0.month, day0.day, tzinfo=UTC) - timedelta(hours=14)
    if draw(st.booleans()):
        after = origin + timedelta(minutes=draw(st.integers(0, HORIZON_MIN)))
    else:
        # Shortly before a local midnight of the policy, where days, blackouts and DST turn.
        midnight = datetime.combine(
            day0 + timedelta(days=draw(st.integers(0, 3))), time(0), ZoneInfo(policy_tz)
        )
        after = midnight.astimezone(UTC) - timedelta(minutes=draw(st.integers(0, 180)))
    lead = draw(st.none() | st.integers(0, HORIZON_MIN))
    ready = None if lead is None else origin + timedelta(minutes=lead)
    return scope, policy, after, ready


def _gate_allows(scope: Scope, policy: Policy, t: datetime, ready: datetime | None) -> bool:
    """The gate's own checks, written out from the model methods it calls."""
    return (
        (ready is None or t >= ready)
        and scope.window_at(t) is not None
        and policy.window_at(t) is not None
        and policy.blackout_on(t) is None
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_next_opening_is_the_first_minute_the_gate_allows(
    case: tuple[Scope, Policy, datetime, datetime | None],
) -> None:
    scope, policy, after, ready = case
    opening = next_opening_for(scope, policy, after, not_before=ready)
    last_end = max(w.end_utc for w in scope.windows)
    stop = opening.start if opening is not None else last_end
    t = after
    while t < stop:
        assert not _gate_allows(scope, policy, t, ready), f"{t} allowed before {opening}"
        t += timedelta(minutes=1)
    if opening is None:
        return
    assert opening.start >= after
    assert _gate_allows(scope, policy, opening.start, ready)
    assert allowed_at(scope, policy, opening.start, not_before=ready)
    assert opening.end > opening.start
    t = opening.start
    while t < opening.end:
        assert _gate_allows(scope, policy, t, ready), f"{t} refused inside {opening}"
        t += timedelta(minutes=1)
