"""Art. 19: rectification deadlines, re-check and feedback in Chinese working days."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import (
    AccessDeniedError,
    CalendarRangeError,
    ConflictError,
    InputError,
    StateError,
)
from orchestrator.intake import registry
from orchestrator.intake.registry import Person
from orchestrator.record.assemble import current_record
from orchestrator.record.findings import DiffItem, FindingView
from orchestrator.record.rectify import (
    OrderState,
    apply_early,
    finding_diff,
    get_order,
    list_orders,
    order_diff,
    order_rectification,
    recheck_plan,
    recompute_provisional,
    record_feedback,
    record_recheck,
)
from orchestrator.record.workdays import WorkingCalendar
from probes.findings import Location

from .conftest import SCOPE, Lab, add_sealed_run, build_lab

# 10:00 in Beijing on Tuesday 2026-09-29, the day before the National Day holiday.
BEFORE_NATIONAL_DAY = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


def _order(
    lab: Lab,
    calendar: WorkingCalendar,
    *,
    findings: list[str] | None = None,
    deadline: date | None = None,
    working_days: int | None = None,
    now: datetime = BEFORE_NATIONAL_DAY,
) -> int:
    order = order_rectification(
        lab.rio.db,
        lab.run_id,
        lab.findings[lab.run_id] if findings is None else findings,
        calendar=calendar,
        deadline=deadline,
        working_days=working_days,
        now=now,
    )
    return order.id


def test_recheck_due_three_working_days_after_deadline_lands_on_make_up_saturday(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    # 10-01..10-07 are days off; Saturday 10-10 is a make-up working day.
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    order = list_orders(lab.rio.db)[0]
    assert order.id == order_id
    assert order.recheck_due == date(2026, 10, 10)
    assert order.state is OrderState.ORDERED


def test_working_days_deadline_skips_the_national_day_holiday(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    _order(lab, calendar, working_days=3)
    order = list_orders(lab.rio.db)[0]
    assert order.deadline == date(2026, 10, 9)  # 09-30, 10-08, 10-09
    assert order.recheck_due == date(2026, 10, 13)  # 10-10 (Saturday), 10-12, 10-13


def test_early_application_makes_the_recheck_due_three_working_days_after_it(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 10, 30))
    applied = apply_early(lab.rio.db, order_id, on=date(2026, 10, 9), calendar=calendar)
    assert applied.applied_on == date(2026, 10, 9)
    assert applied.recheck_due == date(2026, 10, 13)
    assert applied.state is OrderState.APPLIED
    with pytest.raises(StateError, match="only once"):
        apply_early(lab.rio.db, order_id, on=date(2026, 10, 10), calendar=calendar)


def test_early_application_after_the_deadline_is_refused(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 10, 9))
    with pytest.raises(InputError, match="after the deadline"):
        apply_early(lab.rio.db, order_id, on=date(2026, 10, 12), calendar=calendar)


def test_deadline_in_an_uncovered_year_is_refused_with_the_calendars_error(
    lab: Lab, tmp_path: Path
) -> None:
    with pytest.raises(CalendarRangeError, match="2099-03-02 is outside the working-day"):
        _order(lab, WorkingCalendar(), deadline=date(2099, 3, 2))
    # Covered deadline, but the re-check would fall in the next, uncovered year.
    # (2100 is the last year the holidays package computes: nothing after it is provisional.)
    file = tmp_path / "cn-2100.yaml"
    file.write_text(
        "format: rio.calendar/v1\nyear: 2100\nsource: test notice\n"
        "holidays: [2100-01-01]\nworkdays: []\n"
    )
    with pytest.raises(CalendarRangeError, match="2101-01-01 is outside"):
        _order(lab, WorkingCalendar(extra_file=file), deadline=date(2100, 12, 30))
    assert list_orders(lab.rio.db) == []


def test_order_into_a_year_without_a_notice_is_provisional_until_the_notice_is_added(
    lab: Lab, tmp_path: Path
) -> None:
    calendar = WorkingCalendar()
    last = max(calendar.covered_years)
    # 18 working days from mid-December run into the next year, which has no notice yet.
    order = order_rectification(
        lab.rio.db,
        lab.run_id,
        lab.findings[lab.run_id][:1],
        calendar=calendar,
        working_days=18,
        now=datetime(last, 12, 14, 2, 0, tzinfo=UTC),
    )
    assert order.provisional and order.working_days == 18
    assert order.deadline.year == last + 1
    record = current_record(lab.rio.db, lab.run_id)
    assert record.document()["rectifications"][0]["deadline_provisional"] is True
    # The operator types in the next year's notice: one more day off in early January.
    extra = date(last + 1, 1, 4) if date(last + 1, 1, 4).weekday() < 5 else date(last + 1, 1, 6)
    file = tmp_path / "next.yaml"
    file.write_text(
        f"format: rio.calendar/v1\nyear: {last + 1}\nsource: test notice\n"
        f"holidays: [{last + 1}-01-01, {extra.isoformat()}]\nworkdays: []\n"
    )
    covered = WorkingCalendar(extra_file=file)
    [(before, after)] = recompute_provisional(lab.rio.db, calendar=covered, now=lab.rio.clock.now())
    assert before == order
    assert not after.provisional
    assert after.deadline == covered.add_working_days(date(last, 12, 14), 18)
    assert after.deadline > order.deadline
    assert get_order(lab.rio.db, order.id) == after
    record = current_record(lab.rio.db, lab.run_id)
    entry = record.document()["rectifications"][0]
    assert entry["deadline"] == after.deadline.isoformat()
    assert "deadline_provisional" not in entry
    assert recompute_provisional(lab.rio.db, calendar=covered, now=lab.rio.clock.now()) == []


def test_recheck_refused_when_the_run_ended_before_the_order(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    add_sealed_run(lab, "R-20260910-rc", [], start=datetime(2026, 9, 10, 2, tzinfo=UTC))
    with pytest.raises(InputError, match="before order"):
        record_recheck(lab.rio.db, order_id, recheck_run_id="R-20260910-rc", calendar=calendar)


def test_operator_calendar_file_covers_a_year_the_package_lacks(lab: Lab, tmp_path: Path) -> None:
    file = tmp_path / "cn-2027.yaml"
    file.write_text(
        "format: rio.calendar/v1\nyear: 2027\nsource: test notice\n"
        "holidays: [2027-01-01]\nworkdays: []\n"
    )
    calendar = WorkingCalendar(extra_file=file)
    _order(lab, calendar, deadline=date(2026, 12, 30))
    # 12-31 (Thursday), then 2027-01-01 is a day off: Monday 01-04 and Tuesday 01-05.
    assert list_orders(lab.rio.db)[0].recheck_due == date(2027, 1, 5)


def test_order_refused_for_a_finding_of_another_run(lab: Lab, calendar: WorkingCalendar) -> None:
    other = add_sealed_run(lab, "R-20260903-b2", [("RIO-PORT-TELNET", 23)])
    with pytest.raises(InputError, match="not a finding of this run"):
        _order(lab, calendar, findings=other, deadline=date(2026, 10, 30))


def test_order_needs_either_a_deadline_or_working_days(lab: Lab, calendar: WorkingCalendar) -> None:
    with pytest.raises(InputError, match="either a deadline or"):
        _order(lab, calendar)
    with pytest.raises(InputError, match="either a deadline or"):
        _order(lab, calendar, deadline=date(2026, 10, 30), working_days=3)


def test_order_turns_a_risk_into_a_violation_in_a_new_record_version(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    telnet, ftp = lab.findings[lab.run_id]
    order_id = _order(lab, calendar, findings=[telnet], deadline=date(2026, 10, 30))
    record = current_record(lab.rio.db, lab.run_id)
    doc = record.document()
    assert doc["version"] == record.version == 2  # v1 assembled before the order, v2 with it
    assert [v["finding"] for v in doc["conclusions"]["violations"]] == [telnet]
    assert doc["conclusions"]["violations"][0]["rectification"] == [order_id]
    assert [r["finding"] for r in doc["conclusions"]["risks"]] == [ftp]
    assert doc["rectifications"] == [
        {
            "id": order_id,
            "findings": [telnet],
            "ordered_at": "2026-09-29T02:00:00.000000000Z",
            "deadline": "2026-10-30",
        }
    ]


def _view(run: str, n: int, key: str, port: int, target: str = "cidr:127.0.10.0/27") -> FindingView:
    return FindingView(
        id=f"{run}/F{n}",
        key=key,
        run_id=run,
        rule=key.split(":")[0],
        title="t",
        severity="high",
        kind="risk",
        probe="port",
        location=Location(
            target=target,
            ip="127.0.10.5",
            port=port,
            transport="tcp",
            scheme=None,
            server_name=None,
            path=None,
        ),
        seen_as=((target, None),),
        leaf_seq=n,
        digest="0" * 64,
        remediation="r",
        refs=(),
        has_evidence=False,
    )


def test_finding_diff_is_keyed_by_stable_key_not_by_id_or_target() -> None:
    old = [_view("A", 1, "TELNET:k1", 23), _view("A", 2, "FTP:k2", 21), _view("A", 3, "FTP:k3", 21)]
    new = [
        # Same key, other id and another target as announced: the same finding, still there.
        _view("B", 7, "TELNET:k1", 23, target="host:www.demo.test"),
        _view("B", 8, "FTP:k4", 2121),
        _view("B", 9, "RDP:k5", 3389),
    ]
    diff = finding_diff(old, new)
    assert [i.key for i in diff.fixed] == ["FTP:k2", "FTP:k3"]
    assert [(i.key, i.id) for i in diff.still_present] == [("TELNET:k1", "B/F7")]
    assert [i.key for i in diff.new] == ["FTP:k4", "RDP:k5"]
    assert diff.still_present[0].where == "127.0.10.5:23/tcp via host:www.demo.test"


def test_recheck_stores_the_diff_and_feedback_due_three_working_days_later(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    # The re-check run ends on 2026-09-30 (Beijing); feedback is due on make-up Saturday 10-10.
    add_sealed_run(
        lab,
        "R-20260930-rc",
        [("RIO-PORT-TELNET", 23), ("RIO-PORT-RDP", 3389)],
        recheck_of=order_id,
        start=datetime(2026, 9, 30, 2, 0, tzinfo=UTC),
    )
    order, diff = record_recheck(
        lab.rio.db, order_id, recheck_run_id="R-20260930-rc", calendar=calendar
    )
    assert order.feedback_due == date(2026, 10, 10)
    assert order.recheck_run_id == "R-20260930-rc"
    assert order.state is OrderState.UNRESOLVED

    def keys(items: tuple[DiffItem, ...]) -> list[tuple[str, str, int | None]]:
        return [(i.rule, i.location.ip, i.location.port) for i in items]

    assert keys(diff.fixed) == [("RIO-PORT-FTP", "127.0.10.5", 21)]
    assert keys(diff.still_present) == [("RIO-PORT-TELNET", "127.0.10.5", 23)]
    assert keys(diff.new) == [("RIO-PORT-RDP", "127.0.10.5", 3389)]
    assert order_diff(lab.rio.db, order) == diff
    with pytest.raises(StateError, match="already re-checked"):
        record_recheck(lab.rio.db, order_id, recheck_run_id="R-20260930-rc", calendar=calendar)


def test_recheck_reports_the_original_runs_unordered_findings_apart_not_as_new(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    # The original run found TELNET and FTP; the order named TELNET only.
    telnet = lab.findings[lab.run_id][0]
    order_id = _order(lab, calendar, findings=[telnet], deadline=date(2026, 9, 30))
    add_sealed_run(
        lab,
        "R-20260930-rc",
        [("RIO-PORT-TELNET", 23), ("RIO-PORT-FTP", 21), ("RIO-PORT-RDP", 3389)],
        recheck_of=order_id,
        start=datetime(2026, 9, 30, 2, 0, tzinfo=UTC),
    )
    order, diff = record_recheck(
        lab.rio.db, order_id, recheck_run_id="R-20260930-rc", calendar=calendar
    )
    assert [i.rule for i in diff.still_present] == ["RIO-PORT-TELNET"]
    assert [i.rule for i in diff.not_ordered] == ["RIO-PORT-FTP"]  # seen before: not new
    assert [i.rule for i in diff.new] == ["RIO-PORT-RDP"]
    assert diff.fixed == ()
    assert order_diff(lab.rio.db, order) == diff
    assert [i["rule"] for i in diff.to_json()["not_ordered"]] == ["RIO-PORT-FTP"]


def test_recheck_refused_when_the_recheck_run_is_not_sealed(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    add_sealed_run(lab, "R-20260930-rc", [], state="completed")
    with pytest.raises(StateError, match="completed"):
        record_recheck(lab.rio.db, order_id, recheck_run_id="R-20260930-rc", calendar=calendar)


def test_recheck_plan_names_the_notice_window_that_covers_the_due_date(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    plan = recheck_plan(lab.rio.db, order_id, now=BEFORE_NATIONAL_DAY)
    assert plan.due == date(2026, 10, 10)
    assert plan.notice_id == lab.notice_id
    assert plan.window_start == BEFORE_NATIONAL_DAY
    assert plan.announce_by is None
    assert plan.probes == ("port",)
    assert plan.targets == ("127.0.10.0/27",)


def test_recheck_plan_says_which_notice_to_announce_by_when(
    tmp_path: Path, calendar: WorkingCalendar
) -> None:
    # The only announced window closes at the end of September, before the re-check is due.
    short = SCOPE.read_bytes().replace(b"end: 2030-12-31T23:59:59", b"end: 2026-09-30T23:59:59")
    assert short != SCOPE.read_bytes()
    lab = build_lab(tmp_path / "home", scope_bytes=short)
    try:
        order_id = _order(lab, calendar, deadline=date(2026, 10, 9))
        plan = recheck_plan(lab.rio.db, order_id, now=datetime(2026, 10, 9, 2, tzinfo=UTC))
        assert plan.notice_id is None
        assert plan.due == date(2026, 10, 13)
        # Start of 2026-10-13 in Beijing minus the demo policy's 2 s lead time.
        assert plan.announce_by == datetime(2026, 10, 12, 16, 0, tzinfo=UTC) - timedelta(seconds=2)
        assert "announce" in plan.why
    finally:
        lab.rio.close()


def test_overdue_recheck_is_marked(lab: Lab, calendar: WorkingCalendar) -> None:
    _order(lab, calendar, deadline=date(2026, 9, 30))
    order = list_orders(lab.rio.db)[0]
    assert order.overdue(date(2026, 10, 10)) == ()
    assert order.overdue(date(2026, 10, 11)) == ("re-check was due 2026-10-10",)


def _rechecked(lab: Lab, calendar: WorkingCalendar) -> int:
    """An order whose re-check ended on 2026-09-30 (feedback due on make-up Saturday 10-10)."""
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    add_sealed_run(
        lab,
        "R-20260930-fb",
        [("RIO-PORT-TELNET", 23)],
        recheck_of=order_id,
        start=datetime(2026, 9, 30, 2, 0, tzinfo=UTC),
    )
    record_recheck(lab.rio.db, order_id, recheck_run_id="R-20260930-fb", calendar=calendar)
    return order_id


def _officer(lab: Lab, name: str = "officer-a") -> Person:
    with lab.rio.db.session() as s:
        return registry.get_person(s, name)


def test_feedback_overdue_when_not_given_within_three_working_days(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order = get_order(lab.rio.db, _rechecked(lab, calendar))
    assert order.feedback_due == date(2026, 10, 10)
    assert order.overdue(date(2026, 10, 10)) == ()
    assert order.overdue(date(2026, 10, 11)) == ("feedback of the re-check was due 2026-10-10",)


def test_feedback_records_who_when_and_the_document_and_clears_overdue(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _rechecked(lab, calendar)
    sent = datetime(2026, 10, 9, 3, 0, tzinfo=UTC)
    order = record_feedback(
        lab.rio.db,
        order_id,
        actor=_officer(lab),
        document_name="feedback-1.pdf",
        document=b"%PDF- the result",
        now=sent,
    )
    assert (order.feedback_at, order.feedback_by, order.feedback_document) == (
        sent,
        "officer-a",
        "feedback-1.pdf",
    )
    assert order.feedback_sha256 == hashlib.sha256(b"%PDF- the result").hexdigest()
    assert get_order(lab.rio.db, order_id).overdue(date(2026, 12, 1)) == ()
    with pytest.raises(ConflictError, match="already recorded"):
        record_feedback(
            lab.rio.db, order_id, actor=_officer(lab), document_name="x", document=b"x", now=sent
        )


def test_late_feedback_stays_flagged(lab: Lab, calendar: WorkingCalendar) -> None:
    order = record_feedback(
        lab.rio.db,
        _rechecked(lab, calendar),
        actor=_officer(lab),
        document_name="late.pdf",
        document=b"late",
        now=datetime(2026, 10, 12, 3, 0, tzinfo=UTC),
    )
    assert order.overdue(date(2026, 12, 1)) == (
        "feedback given 2026-10-12, after its due date 2026-10-10",
    )


def test_feedback_refused_before_the_recheck_and_to_a_technician(
    lab: Lab, calendar: WorkingCalendar
) -> None:
    order_id = _order(lab, calendar, deadline=date(2026, 9, 30))
    with pytest.raises(StateError, match="no re-check yet"):
        record_feedback(
            lab.rio.db,
            order_id,
            actor=_officer(lab),
            document_name="f",
            document=b"f",
            now=lab.rio.clock.now(),
        )
    with pytest.raises(AccessDeniedError):
        record_feedback(
            lab.rio.db,
            order_id,
            actor=_officer(lab, "tech-t"),
            document_name="f",
            document=b"f",
            now=lab.rio.clock.now(),
        )
