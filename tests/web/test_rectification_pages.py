"""In the browser: an officer reads the rectification page (deadlines, due dates, the overdue
flag) and the record page's "what changed since the previous version"; a technician starts a
run from the notices page and lands on its run page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.record.rectify import order_rectification
from orchestrator.record.workdays import WorkingCalendar
from orchestrator.run.scheduler import RioScheduler
from tests.record.conftest import Lab
from tests.web.conftest import Served

RUN = "R-20260902-a1"


@pytest.fixture
def served(api_lab: Lab) -> Iterator[Served]:
    server = Served(api_lab.rio)
    try:
        yield server
    finally:
        server.stop()


def _login(browser: Any, served: Served, key: Path, then: str) -> Any:
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    page.goto(f"{served.url}/login?next={then}")
    page.set_input_files("#key-file", str(key))
    page.click("#login-button")
    page.wait_for_url(f"**{then}", timeout=15000)
    return page


def test_an_officer_sees_what_is_overdue_and_what_the_order_changed(
    browser: Any, served: Served, api_lab: Lab, artefacts: Path
) -> None:
    late, fresh = api_lab.findings[RUN]
    calendar = WorkingCalendar()
    overdue = order_rectification(
        api_lab.rio.db,
        RUN,
        [late],
        calendar=calendar,
        deadline=date(2026, 9, 30),
        now=datetime(2026, 9, 3, 2, tzinfo=UTC),
    )
    order_rectification(
        api_lab.rio.db,
        RUN,
        [fresh],
        calendar=calendar,
        working_days=10,
        now=api_lab.rio.clock.now(),
    )
    page = _login(browser, served, api_lab.key_files["officer-a"][0], "/rectification")
    assert "1 of 2 orders overdue" in page.inner_text("#overdue-summary")
    row = page.locator(f"#order-{overdue.id}")
    assert "re-check was due 2026-10-10" in row.inner_text()
    assert row.get_attribute("class") == "overdue-row"
    page.screenshot(path=str(artefacts / "rectification.png"), full_page=True)

    page.click(f"#order-{overdue.id} a[href='/runs/{RUN}/record']")
    page.wait_for_url(f"**/runs/{RUN}/record", timeout=15000)
    changes = page.inner_text("#changes")
    assert "against version 2" in changes  # version 3: the second order
    assert "rectifications[id=" in changes
    page.screenshot(path=str(artefacts / "record-changes.png"), full_page=True)
    page.context.close()


def test_a_technician_starts_a_run_from_the_notices_page(
    browser: Any, served: Served, api_lab: Lab, artefacts: Path
) -> None:
    page = _login(browser, served, api_lab.key_files["tech-t"][0], "/notices")
    page.click(f"button.launch[data-notice='{api_lab.notice_id}'][data-when='now']")
    page.wait_for_url("**/runs/R-*", timeout=15000)
    run_id = page.url.rsplit("/", 1)[-1]
    assert page.inner_text("#state").startswith("scheduled")
    page.screenshot(path=str(artefacts / "run-started.png"), full_page=True)
    page.context.close()
    # Handed to the scheduler: a job due now that the serving `rio serve` fires.
    with RioScheduler(api_lab.rio) as scheduler:
        assert [j.subject for j in scheduler.jobs()] == [run_id]
