"""Rules for Chinese working days (Art. 19: re-check within 3 working days)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import CalendarFileError, CalendarRangeError
from orchestrator.record.workdays import (
    PROVISIONAL_YEARS,
    WorkingCalendar,
    load_operator_calendar,
)

# A made-up 2031 notice: National Day Oct 1-7 off, Sunday Sep 28 and Saturday Oct 11 worked.
CALENDAR_2031 = """\
format: rio.calendar/v1
year: 2031
source: "State Council General Office notice on the 2031 holiday arrangements (test copy)"
holidays: [2031-01-01, 2031-10-01, 2031-10-02, 2031-10-03, 2031-10-04, 2031-10-05,
           "2031-10-06", 2031-10-07]
workdays: [2031-09-28, 2031-10-11]
"""


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


def _write(tmp_path: Path, text: str, name: str = "cal.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_package_covers_the_state_council_notice_years(calendar: WorkingCalendar) -> None:
    assert min(calendar.covered_years) == 2001
    assert set(range(2001, 2027)) <= calendar.covered_years
    assert "holidays" in calendar.source_for(2026)


@pytest.mark.parametrize("day", range(1, 8))
def test_national_day_golden_week_2026_is_off(calendar: WorkingCalendar, day: int) -> None:
    assert not calendar.is_working_day(date(2026, 10, day))


@pytest.mark.parametrize(
    "make_up_day",
    [date(2026, 9, 20), date(2026, 10, 10)],
    ids=["sunday-before-national-day", "saturday-after-national-day"],
)
def test_national_day_make_up_weekend_days_2026_are_working_days(
    calendar: WorkingCalendar, make_up_day: date
) -> None:
    assert make_up_day.weekday() >= 5
    assert calendar.is_working_day(make_up_day)


def test_ordinary_weekend_is_not_a_working_day(calendar: WorkingCalendar) -> None:
    assert not calendar.is_working_day(date(2026, 10, 11))  # Sunday
    assert not calendar.is_working_day(date(2026, 10, 17))  # Saturday
    assert calendar.is_working_day(date(2026, 10, 8))  # Thursday after the holiday


@pytest.mark.parametrize("day", range(15, 24))
def test_spring_festival_2026_is_off(calendar: WorkingCalendar, day: int) -> None:
    assert not calendar.is_working_day(date(2026, 2, day))


@pytest.mark.parametrize("make_up_day", [date(2026, 2, 14), date(2026, 2, 28)])
def test_spring_festival_make_up_saturdays_2026_are_working_days(
    calendar: WorkingCalendar, make_up_day: date
) -> None:
    assert calendar.is_working_day(make_up_day)


def test_recheck_three_working_days_after_deadline_skips_national_day(
    calendar: WorkingCalendar,
) -> None:
    # Thu 10-08, Fri 10-09, then the make-up Saturday 10-10.
    assert calendar.add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)


def test_recheck_three_working_days_after_deadline_skips_spring_festival(
    calendar: WorkingCalendar,
) -> None:
    # Make-up Saturday 02-14, then the festival, then Tue 02-24 and Wed 02-25.
    assert calendar.add_working_days(date(2026, 2, 13), 3) == date(2026, 2, 25)


def test_start_day_is_not_counted(calendar: WorkingCalendar) -> None:
    assert calendar.add_working_days(date(2026, 3, 2), 1) == date(2026, 3, 3)
    assert calendar.add_working_days(date(2026, 3, 2), 0) == date(2026, 3, 2)
    # A start on a holiday is not counted either.
    assert calendar.add_working_days(date(2026, 10, 1), 1) == date(2026, 10, 8)


def test_adding_negative_working_days_is_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="negative"):
        calendar.add_working_days(date(2026, 3, 2), -1)


def test_working_days_between_counts_end_but_not_start(calendar: WorkingCalendar) -> None:
    assert calendar.working_days_between(date(2026, 9, 30), date(2026, 10, 10)) == 3
    assert calendar.working_days_between(date(2026, 10, 10), date(2026, 9, 30)) == -3
    assert calendar.working_days_between(date(2026, 10, 1), date(2026, 10, 7)) == 0
    assert calendar.working_days_between(date(2026, 3, 2), date(2026, 3, 2)) == 0


@settings(max_examples=60, deadline=None)
@given(
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 6, 30)),
    n=st.integers(min_value=0, max_value=60),
)
def test_working_days_between_inverts_add_working_days(start: date, n: int) -> None:
    calendar = _shared_calendar()
    end = calendar.add_working_days(start, n)
    assert calendar.working_days_between(start, end) == n
    assert n == 0 or calendar.is_working_day(end)


_CACHE: list[WorkingCalendar] = []


def _shared_calendar() -> WorkingCalendar:
    if not _CACHE:
        _CACHE.append(WorkingCalendar())
    return _CACHE[0]


def test_date_in_uncovered_year_is_refused_naming_date_and_years(
    calendar: WorkingCalendar,
) -> None:
    assert 2040 not in calendar.covered_years | calendar.provisional_years
    with pytest.raises(CalendarRangeError) as caught:
        calendar.is_working_day(date(2040, 10, 8))
    message = str(caught.value)
    assert "2040-10-08" in message
    assert f"2001-{max(calendar.covered_years)}" in message


def test_years_after_the_last_announced_notice_are_provisional_not_authoritative(
    calendar: WorkingCalendar,
) -> None:
    # The holidays package computes these years from fixed rules: usable, but marked.
    first_unannounced = max(calendar.covered_years) + 1
    new_year = date(first_unannounced, 1, 1)
    assert first_unannounced in calendar.provisional_years
    assert calendar.is_provisional(new_year)
    assert not calendar.is_provisional(date(first_unannounced - 1, 12, 31))
    assert not calendar.is_working_day(new_year)  # the fixed-rule New Year's Day
    assert "provisional" in calendar.source_for(first_unannounced)
    assert "provisional" in calendar.describe()
    assert len(calendar.provisional_years) == PROVISIONAL_YEARS


def test_deadline_running_into_a_provisional_year_says_which(
    calendar: WorkingCalendar,
) -> None:
    last = max(calendar.covered_years)
    end = calendar.add_working_days(date(last, 12, 28), 10)
    assert end.year == last + 1
    assert calendar.provisional_between(date(last, 12, 28), end) == (last + 1,)
    assert calendar.provisional_between(date(last, 1, 5), date(last, 3, 5)) == ()


def test_deadline_running_past_the_provisional_years_is_refused(
    calendar: WorkingCalendar,
) -> None:
    beyond = max(calendar.provisional_years)
    with pytest.raises(CalendarRangeError, match=f"{beyond + 1}-01-"):
        calendar.add_working_days(date(beyond, 12, 28), 10)


def test_datetime_is_refused_as_ambiguous_calendar_day(calendar: WorkingCalendar) -> None:
    with pytest.raises(TypeError, match="Asia/Shanghai"):
        calendar.is_working_day(datetime(2026, 10, 8, 1, 0))


def test_operator_file_covers_an_unannounced_year(tmp_path: Path) -> None:
    calendar = WorkingCalendar(extra_file=_write(tmp_path, CALENDAR_2031))
    assert 2031 in calendar.covered_years
    assert "2031 holiday arrangements" in calendar.source_for(2031)
    assert not calendar.is_working_day(date(2031, 10, 1))
    assert not calendar.is_working_day(date(2031, 10, 6))
    assert calendar.is_working_day(date(2031, 9, 28))  # make-up Sunday
    assert calendar.is_working_day(date(2031, 10, 8))
    assert not calendar.is_working_day(date(2031, 10, 12))  # ordinary Sunday
    # Wed 09-30 + 3: Wed 10-08, Thu 10-09, Fri 10-10.
    assert calendar.add_working_days(date(2031, 9, 30), 3) == date(2031, 10, 10)
    # Years in between are provisional, not authoritative.
    assert calendar.is_provisional(date(2030, 6, 3))
    assert calendar.is_working_day(date(2030, 6, 3))
    assert not calendar.is_provisional(date(2031, 6, 3))


def test_operator_file_replaces_the_package_view_of_its_year(tmp_path: Path) -> None:
    text = """\
format: rio.calendar/v1
year: 2026
source: "corrected notice"
holidays: [2026-01-01, 2026-10-01, 2026-12-31]
workdays: []
"""
    calendar = WorkingCalendar(extra_file=_write(tmp_path, text))
    assert calendar.source_for(2026).endswith("corrected notice")
    assert not calendar.is_working_day(date(2026, 12, 31))
    assert calendar.is_working_day(date(2026, 10, 2))
    assert not calendar.is_working_day(date(2026, 10, 10))  # no longer a make-up day
    assert calendar.is_working_day(date(2025, 10, 11))  # other years still from the package


def test_operator_workday_may_fall_in_december_of_the_year_before(tmp_path: Path) -> None:
    text = CALENDAR_2031.replace("2031-09-28, 2031-10-11", "2030-12-28, 2031-10-11")
    operator = load_operator_calendar(_write(tmp_path, text))
    assert date(2030, 12, 28) in operator.workdays


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ("format: rio.calendar/v1\n", "", "format", "missing"),
        ("rio.calendar/v1", "rio.calendar/v2", "format", "is not 'rio.calendar/v1'"),
        ("year: 2031", 'year: "2031"', "year", "is not a year"),
        ("year: 2031", "year: true", "year", "is not a year"),
        (CALENDAR_2031.splitlines()[2], 'source: "  "', "source", "must name the notice"),
        ("workdays: [", "extra: 1\nworkdays: [", "extra", "unknown field"),
        ("year: 2031\n", "year: 2031\nyear: 2032\n", "year", "duplicate key"),
        ("year: 2031\n", "year: 2031\n? [a, b]\n: 1\n", "", "not valid YAML (line 3"),
        ("holidays: [2031-01-01,", "holidays: [2030-01-01,", "holidays[0]", "is not in 2031"),
        (
            "holidays: [2031-01-01,",
            "holidays: [2031-13-01,",
            "holidays[0]",
            "not a YYYY-MM-DD date",
        ),
        ("holidays: [2031-01-01,", 'holidays: ["20310101",', "holidays[0]", "YYYY-MM-DD"),
        ("holidays: [2031-01-01,", "holidays: [2031-01-01 09:00:00,", "holidays[0]", "YYYY-MM-DD"),
        ("holidays: [2031-01-01,", "holidays: [2031-10-07,", "holidays[7]", "listed twice"),
        ("2031-09-28, 2031-10-11", "2031-09-29, 2031-10-11", "workdays[0]", "is a Monday"),
        ("2031-09-28, 2031-10-11", "2031-09-28, 2031-10-04", "workdays[1]", "also listed"),
        ("2031-09-28, 2031-10-11", "2030-11-30", "workdays[0]", "is not in 2031"),
        ("workdays: [2031-09-28, 2031-10-11]", "workdays: 2031-09-28", "workdays", "list"),
    ],
)
def test_malformed_operator_file_refused_with_field_named(
    tmp_path: Path, old: str, new: str, field: str, problem: str
) -> None:
    assert old in CALENDAR_2031
    path = _write(tmp_path, CALENDAR_2031.replace(old, new, 1))
    with pytest.raises(CalendarFileError) as caught:
        WorkingCalendar(extra_file=path)
    assert caught.value.file == str(path)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_operator_file_with_no_holidays_refused(tmp_path: Path) -> None:
    text = "format: rio.calendar/v1\nyear: 2031\nsource: x\nholidays: []\nworkdays: []\n"
    with pytest.raises(CalendarFileError, match="holidays: must list"):
        load_operator_calendar(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- 2031-01-01\n", "expected a mapping"),
        ("format: [unclosed\n", "not valid YAML"),
        ("", "expected a mapping"),
    ],
)
def test_operator_file_that_is_not_a_calendar_mapping_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(CalendarFileError, match=problem):
        load_operator_calendar(_write(tmp_path, text))


def test_missing_operator_file_refused(tmp_path: Path) -> None:
    with pytest.raises(CalendarFileError, match=r"nope\.yaml: file does not exist"):
        WorkingCalendar(extra_file=tmp_path / "nope.yaml")


def test_covered_years_are_contiguous_from_the_first_notice(calendar: WorkingCalendar) -> None:
    last = max(calendar.covered_years)
    assert calendar.covered_years == frozenset(range(2001, last + 1))
    assert calendar.is_working_day(date(last, 12, 1)) is (date(last, 12, 1).weekday() < 5)
