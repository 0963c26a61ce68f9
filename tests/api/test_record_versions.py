"""A record's versions through the API and its page: what a version changed since the one
before (an order of rectification makes version 2), and the record printed to sign and file."""

from __future__ import annotations

import base64
import hashlib

from orchestrator.record.rectify import order_rectification
from orchestrator.record.workdays import WorkingCalendar
from tests.api.conftest import Api

RUN = "R-20260902-a1"


async def _order(api: Api) -> tuple[int, str]:
    """View version 1 (assembled on first view), then order rectification: version 2."""
    headers = await api.headers("officer-a")
    assert (await api.client.get(f"/api/v1/runs/{RUN}/record", headers=headers)).json()[
        "version"
    ] == 1
    finding = api.lab.findings[RUN][0]
    order = order_rectification(
        api.lab.rio.db,
        RUN,
        [finding],
        calendar=WorkingCalendar(),
        working_days=10,
        now=api.lab.rio.clock.now(),
    )
    return order.id, finding


async def test_version_one_has_nothing_before_it(api: Api) -> None:
    headers = await api.headers("auditor-u")
    assert (await api.client.get(f"/api/v1/runs/{RUN}/record", headers=headers)).status_code == 200
    diff = await api.client.get(f"/api/v1/runs/{RUN}/record/diff", headers=headers)
    assert diff.status_code == 200, diff.text
    assert diff.json() == {"run_id": RUN, "version": 1, "since": None, "changes": []}


async def test_a_record_not_stored_yet_is_its_first_version(api: Api) -> None:
    diff = await api.client.get(
        f"/api/v1/runs/{RUN}/record/diff", headers=await api.headers("officer-a")
    )
    assert diff.status_code == 200, diff.text
    assert (diff.json()["version"], diff.json()["since"]) == (1, None)


async def test_an_order_makes_version_two_and_the_diff_names_it(api: Api) -> None:
    order_id, finding = await _order(api)
    headers = await api.headers("tech-t")
    diff = (await api.client.get(f"/api/v1/runs/{RUN}/record/diff", headers=headers)).json()
    assert (diff["version"], diff["since"]) == (2, 1)
    changes = {c["path"]: c for c in diff["changes"]}
    added = changes[f"rectifications[id={order_id}]"]
    assert added["kind"] == "added" and added["before"] is None
    assert added["after"]["findings"] == [finding]
    assert changes[f"conclusions.risks[finding={finding}]"]["kind"] == "removed"
    assert changes[f"conclusions.violations[finding={finding}]"]["kind"] == "added"
    assert "version" not in changes and "created_at" not in changes
    # Asking for version 1 explicitly, and for a version that does not exist.
    first = await api.client.get(f"/api/v1/runs/{RUN}/record/diff?version=1", headers=headers)
    assert first.json()["since"] is None
    missing = await api.client.get(f"/api/v1/runs/{RUN}/record/diff?version=9", headers=headers)
    assert missing.status_code == 404


async def test_the_record_page_shows_what_changed_since_the_previous_version(api: Api) -> None:
    await api.login("officer-b")  # the page reads the session cookie the login set
    first = await api.client.get(f"/runs/{RUN}/record")
    assert first.status_code == 200, first.text
    assert "is the first version" in first.text
    order_id, _ = await _order(api)
    await api.login("officer-b")
    page = await api.client.get(f"/runs/{RUN}/record")
    assert "Version 2 against version 1" in page.text
    assert f"rectifications[id={order_id}]" in page.text


async def test_diff_and_print_follow_the_role_matrix(api: Api) -> None:
    paths = ("/record/diff", "/record/print")
    for path in paths:  # before any login (a login also sets the page cookie on the client)
        assert (await api.client.get(f"/api/v1/runs/{RUN}{path}")).status_code == 401
    for path in paths:
        url = f"/api/v1/runs/{RUN}{path}"
        for name in ("tech-other", "admin-m", "officer-x"):
            response = await api.client.get(url, headers=await api.headers(name))
            assert response.status_code == 403, (name, path, response.text)


async def test_the_record_prints_as_html_and_pdf(api: Api) -> None:
    headers = await api.headers("officer-a")
    record = (await api.client.get(f"/api/v1/runs/{RUN}/record", headers=headers)).json()
    html = await api.client.get(f"/api/v1/runs/{RUN}/record/print", headers=headers)
    assert html.status_code == 200, html.text
    assert html.headers["content-type"].startswith("text/html")
    # The print carries the SHA-256 of the very bytes the signatures cover.
    digest = hashlib.sha256(base64.b64decode(record["payload"])).hexdigest()
    assert RUN in html.text and digest in html.text
    pdf = await api.client.get(f"/api/v1/runs/{RUN}/record/print?format=pdf", headers=headers)
    assert pdf.status_code == 200, pdf.text[:300]
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
