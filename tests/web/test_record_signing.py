"""Two officers and the technician sign a record in the page (WebCrypto Ed25519, the key file
picked in the browser), and an officer closes it; the public check answers for the source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


def _login(browser: Any, served: Served, key: Path) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{served.url}/login?next=/runs/{RUN}/record")
    page.set_input_files("#key-file", str(key))
    page.click("#login-button")
    page.wait_for_url(f"**/runs/{RUN}/record", timeout=15000)
    return page


def test_two_officers_and_a_technician_sign_in_the_page_and_an_officer_closes(
    browser: Any, served: Served, api_lab: Lab, artefacts: Path
) -> None:
    for name in ("officer-a", "tech-t", "officer-b"):
        key = api_lab.key_files[name][0]
        page = _login(browser, served, key)
        assert f"{name} (" in page.inner_text("#who")
        page.set_input_files("#sign-key", str(key))
        page.click("#sign-button")
        page.wait_for_selector(f"#signatures td:text-is('{name}')", timeout=15000)
        page.screenshot(path=str(artefacts / f"signed-by-{name}.png"), full_page=True)
        if name != "officer-b":
            page.context.close()
    # officer-b's page: the rule is met, the close button is enabled.
    assert "Ready to close" in page.inner_text("#missing")
    page.click("#close-button")
    page.wait_for_selector("#record-state:has-text('closed')", timeout=15000)
    page.screenshot(path=str(artefacts / "record-closed.png"), full_page=True)
    rows = page.locator("#signatures tr").count()
    assert rows == 4  # header + three signers
    page.context.close()
    with api_lab.rio.db.session() as s:
        from orchestrator.store.models import RecordRow

        closed = s.query(RecordRow).filter(RecordRow.run_id == RUN).one().closed_at
    assert closed is not None


def test_a_technician_key_does_not_close_and_an_auditor_cannot_sign(
    browser: Any, served: Served, api_lab: Lab, artefacts: Path
) -> None:
    page = _login(browser, served, api_lab.key_files["auditor-u"][0])
    assert page.locator("#close-button").count() == 0
    page.set_input_files("#sign-key", str(api_lab.key_files["auditor-u"][0]))
    page.click("#sign-button")
    page.wait_for_selector("#record-message.error", timeout=15000)
    assert "Signature refused" in page.inner_text("#record-message")
    page.screenshot(path=str(artefacts / "auditor-refused.png"), full_page=True)


def test_public_check_answers_for_the_source_address_without_login(
    browser: Any, served: Served, api_lab: Lab, artefacts: Path
) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{served.url}/verify")
    page.fill("input[name=source]", "127.0.0.1")
    page.fill("input[name=at]", "2026-09-02T10:03:00+08:00")
    page.click("button[type=submit]")
    page.wait_for_selector("#answer", timeout=15000)
    assert "Yes: announced" in page.inner_text("#answer")
    assert api_lab.notice_id in page.content()
    page.screenshot(path=str(artefacts / "public-check.png"), full_page=True)
