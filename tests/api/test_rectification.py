"""Rectification orders (Art. 19) through the API and the page: due dates, the re-check plan,
and overdue flags judged on today's China calendar day; the role matrix decides who sees them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from orchestrator.record._zone import CALENDAR_ZONE
from orchestrator.record.rectify import order_rectification
from orchestrator.record.workdays import WorkingCalendar
from tests.api.conftest import Api

RUN = "R-20260902-a1"


def _order(api: Api, *, deadline: date, ordered: datetime) -> int:
    finding = api.lab.findings[RUN][0]
    order = order_rectification(
        api.lab.rio.db, RUN, [finding], calendar=WorkingCalendar(), deadline=deadline, now=ordered
    )
    return order.id


async def test_orders_need_a_session_and_follow_the_role_matrix(api: Api) -> None:
    order = _order(api, deadline=date(2026, 9, 30), ordered=datetime(2026, 9, 3, 2, tzinfo=UTC))
    urls = ["/api/v1/rectification/orders", f"/api/v1/rectification/orders/{order}/recheck-plan"]
    for url in urls:
        assert (await api.client.get(url)).status_code == 401
    # The other vendor's technician sees none of this run's orders, and may not ask for one.
    other = await api.headers("tech-other")
    assert (await api.client.get(urls[0], headers=other)).json() == []
    refused = await api.client.get(f"{urls[0]}?run={RUN}", headers=other)
    assert refused.status_code == 403
    assert (await api.client.get(urls[1], headers=other)).status_code == 403
    assert (await api.client.get(urls[1], headers=await api.headers("admin-m"))).status_code == 403
    for name in ("officer-a", "tech-t", "auditor-u"):
        seen = await api.client.get(urls[0], headers=await api.headers(name))
        assert [o["id"] for o in seen.json()] == [order], name


async def test_an_order_past_its_recheck_due_date_is_flagged_overdue(api: Api) -> None:
    # Ordered in September 2026 with a September deadline: the re-check (3 working days after
    # the deadline) was due long before today, and no re-check run is linked.
    late = _order(api, deadline=date(2026, 9, 30), ordered=datetime(2026, 9, 3, 2, tzinfo=UTC))
    # Ordered now, 10 working days ahead: nothing is due yet.
    fresh = order_rectification(
        api.lab.rio.db,
        RUN,
        [api.lab.findings[RUN][-1]],
        calendar=WorkingCalendar(),
        working_days=10,
        now=api.lab.rio.clock.now(),
    ).id
    orders = await api.client.get(
        f"/api/v1/rectification/orders?run={RUN}", headers=await api.headers("officer-b")
    )
    assert orders.status_code == 200, orders.text
    by_id = {o["id"]: o for o in orders.json()}
    assert by_id[late]["deadline"] == "2026-09-30"
    # 3 working days after the National Day week: 8, 9 and Saturday 10 October, a make-up day
    assert by_id[late]["recheck_due"] == "2026-10-10"
    assert by_id[late]["overdue"] == ["re-check was due 2026-10-10"]
    assert by_id[late]["state"] == "ordered" and by_id[late]["recheck_run_id"] is None
    assert by_id[fresh]["overdue"] == [] and by_id[fresh]["working_days"] == 10

    headers = await api.headers("tech-t")
    url = "/api/v1/rectification/orders/{}/recheck-plan"
    plan = await api.client.get(url.format(late), headers=headers)
    assert plan.status_code == 200, plan.text
    assert plan.json()["due"] == "2026-10-10" and plan.json()["run_id"] == RUN
    assert plan.json()["notice_id"] is None and plan.json()["why"]  # the due day has passed
    ahead = (await api.client.get(url.format(fresh), headers=headers)).json()
    assert ahead["notice_id"] == api.lab.notice_id  # its announced window runs to 2030

    await api.login("officer-b")  # the page reads the session cookie
    page = await api.client.get("/rectification")
    assert page.status_code == 200
    assert "1 of 2 orders overdue" in page.text
    assert "re-check was due 2026-10-10" in page.text


async def test_an_unknown_order_is_404(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/rectification/orders/999/recheck-plan", headers=await api.headers("officer-a")
    )
    assert response.status_code == 404


def _fresh_order(api: Api) -> int:
    """F1 (the telnet finding) ordered now, 10 working days ahead."""
    return order_rectification(
        api.lab.rio.db,
        RUN,
        [api.lab.findings[RUN][0]],
        calendar=WorkingCalendar(),
        working_days=10,
        now=api.lab.rio.clock.now(),
    ).id


async def test_the_follow_up_steps_need_a_session_and_the_right_role(api: Api) -> None:
    order = _fresh_order(api)
    base = f"/api/v1/rectification/orders/{order}"
    today = datetime.now(CALENDAR_ZONE).date().isoformat()  # the China day, as the service judges
    steps: list[tuple[str, dict[str, object] | None]] = [
        ("/application", {"on": today}),
        ("/recheck", {"run_id": RUN}),
        ("/recheck/schedule", None),
    ]
    for path, body in steps:
        assert (await api.client.post(base + path, json=body)).status_code == 401
    feedback = await api.client.post(base + "/feedback", files={"document": ("f.pdf", b"x")})
    assert feedback.status_code == 401
    tech = await api.headers("tech-t")
    for path, body in steps[:2]:  # an officer's steps
        response = await api.client.post(base + path, headers=tech, json=body)
        assert response.status_code == 403, (path, response.text)
    officer = await api.headers("officer-a")
    # Launching the re-check run is the entrusted vendor's technician's (the notice has one).
    refused = await api.client.post(base + "/recheck/schedule", headers=officer)
    assert refused.status_code == 403, refused.text


async def test_an_officer_records_the_application_the_recheck_and_the_feedback(api: Api) -> None:
    import asyncio
    import hashlib

    from tests.record.conftest import add_sealed_run

    order = _fresh_order(api)
    base = f"/api/v1/rectification/orders/{order}"
    officer = await api.headers("officer-b")
    today = datetime.now(CALENDAR_ZONE).date()  # the China day, as the service judges
    applied = await api.client.post(
        base + "/application", headers=officer, json={"on": today.isoformat()}
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["state"] == "applied" and applied.json()["applied_on"] == str(today)
    again = await api.client.post(
        base + "/application", headers=officer, json={"on": today.isoformat()}
    )
    assert again.status_code == 409  # applied once

    planned = await api.client.post(base + "/recheck/schedule", headers=await api.headers("tech-t"))
    assert planned.status_code == 201, planned.text
    assert planned.json()["notice_id"] == api.lab.notice_id and not planned.json()["after_due"]

    # The re-check run (sealed) found the FTP service again but not the ordered telnet one.
    await asyncio.to_thread(
        add_sealed_run,
        api.lab,
        "R-20261204-rc",
        [("RIO-PORT-FTP", 21)],
        recheck_of=order,
        start=api.lab.rio.clock.now(),
    )
    linked = await api.client.post(
        base + "/recheck", headers=officer, json={"run_id": "R-20261204-rc"}
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["order"]["state"] == "resolved"
    assert linked.json()["order"]["feedback_due"] is not None
    diff = linked.json()["diff"]
    assert [i["rule"] for i in diff["fixed"]] == ["RIO-PORT-TELNET"]
    assert [i["rule"] for i in diff["not_ordered"]] == ["RIO-PORT-FTP"]

    letter = b"%PDF-1.4 feedback letter to the object"
    fed = await api.client.post(
        base + "/feedback", headers=officer, files={"document": ("feedback.pdf", letter)}
    )
    assert fed.status_code == 200, fed.text
    assert fed.json()["feedback"]["sha256"] == hashlib.sha256(letter).hexdigest()
    assert fed.json()["feedback"]["document"] == "feedback.pdf"
    assert fed.json()["feedback"]["by"] == "officer-b"
    twice = await api.client.post(
        base + "/feedback", headers=officer, files={"document": ("feedback.pdf", letter)}
    )
    assert twice.status_code == 409
    empty = await api.client.post(
        base + "/feedback", headers=officer, files={"document": ("x.pdf", b"")}
    )
    assert empty.status_code in (409, 422)


async def test_an_officer_orders_rectification_and_the_record_moves_on(api: Api) -> None:
    late, fresh = api.lab.findings[RUN]
    url = "/api/v1/rectification/orders"
    body = {"run_id": RUN, "findings": [late], "working_days": 10}
    assert (await api.client.post(url, json=body)).status_code == 401
    for name in ("tech-t", "auditor-u", "officer-x"):
        refused = await api.client.post(url, json=body, headers=await api.headers(name))
        assert refused.status_code == 403, name
    officer = await api.headers("officer-a")
    made = await api.client.post(url, json=body, headers=officer)
    assert made.status_code == 201, made.text
    assert made.json()["findings"] == [late] and made.json()["working_days"] == 10
    assert made.json()["overdue"] == []
    record = (await api.client.get(f"/api/v1/runs/{RUN}/record", headers=officer)).json()
    assert [r["id"] for r in record["document"]["rectifications"]] == [made.json()["id"]]
    for bad in (
        {"run_id": RUN, "findings": [fresh]},  # neither a deadline nor working days
        {"run_id": RUN, "findings": [fresh], "deadline": "2026-12-31", "working_days": 3},
        {"run_id": RUN, "findings": ["R-nope-F9"], "working_days": 3},
        {"run_id": RUN, "findings": [], "working_days": 3},
    ):
        response = await api.client.post(url, json=bad, headers=officer)
        assert response.status_code == 422, (bad, response.text)
