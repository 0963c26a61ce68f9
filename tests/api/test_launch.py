"""Starting and scheduling runs through the API: the role matrix decides who may (401 without a
session, 403 for the wrong role or vendor), and a run that is allowed lands in the scheduler's
job store (the serving ``rio serve`` fires it), as ``rio run start``/``schedule`` would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.run.scheduler import RioScheduler
from tests.api.conftest import Api
from tests.record.conftest import POLICY, SCOPE


def _jobs_of(api: Api, run_id: str) -> list[datetime | None]:
    with RioScheduler(api.lab.rio) as scheduler:
        return [j.next_run for j in scheduler.jobs() if j.subject == run_id]


def _url(api: Api, notice: str | None = None) -> str:
    return f"/api/v1/notices/{notice or api.lab.notice_id}/runs"


async def test_launching_needs_a_session(api: Api) -> None:
    response = await api.client.post(_url(api), json={"when": "now"})
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthenticated"


async def test_only_a_technician_of_the_entrusted_vendor_launches(api: Api) -> None:
    # The lab's notice entrusts acme-sec: its officers, auditors, administrators and the other
    # vendor's technician may not launch it (officers launch only notices without a vendor).
    for name in ("auditor-u", "admin-m", "tech-other", "officer-a"):
        for when in ("now", "next-opening"):
            response = await api.client.post(
                _url(api), headers=await api.headers(name), json={"when": when}
            )
            assert response.status_code == 403, (name, when, response.text)
            assert response.json()["type"] == "/problems/access-denied"
    with RioScheduler(api.lab.rio) as scheduler:
        assert scheduler.jobs() == []


async def test_a_technician_starts_a_run_now_and_the_scheduler_holds_its_job(api: Api) -> None:
    before = datetime.now(UTC)
    response = await api.client.post(
        _url(api), headers=await api.headers("tech-t"), json={"when": "now"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    run_id = body["run_id"]
    assert body["run"]["state"] == "scheduled" and body["run"]["notice_id"] == api.lab.notice_id
    assert body["series"] is None
    (due,) = _jobs_of(api, run_id)
    assert due is not None and before - timedelta(seconds=1) <= due <= datetime.now(UTC)
    listed = await api.client.get("/api/v1/runs", headers=await api.headers("officer-a"))
    assert run_id in {r["id"] for r in listed.json()}


async def test_a_recurring_check_is_scheduled_at_the_next_opening(api: Api) -> None:
    response = await api.client.post(
        _url(api),
        headers=await api.headers("tech-t"),
        json={"when": "next-opening", "every": "7d"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["series"] is not None and body["next_period"] is not None
    start = datetime.fromisoformat(body["start"])
    assert datetime.fromisoformat(body["next_period"]) - start >= timedelta(days=7)
    assert _jobs_of(api, body["run_id"]) == [start]


async def test_bad_launch_requests_are_422(api: Api) -> None:
    headers = await api.headers("tech-t")
    for body in (
        {"when": "now", "every": "7d"},  # a recurring check starts at an opening
        {"when": "next-opening", "every": "soon"},
        {"when": "next-opening", "every": "10s"},  # shorter than a minute
        {"when": "yesterday"},
    ):
        response = await api.client.post(_url(api), headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)


async def test_start_now_is_refused_with_the_gates_reason_before_the_lead_time(api: Api) -> None:
    policy = POLICY.read_text().replace("min_notice_lead: 2s", "min_notice_lead: 3d")
    assert "3d" in policy
    announced = await api.client.post(
        "/api/v1/notices",
        headers=await api.headers("officer-a"),
        json={
            "scope_name": "scopes/demo-loopback.yaml",
            "scope": SCOPE.read_text(),
            "policy_name": "policies/demo-3d.yaml",
            "policy": policy,
            "vendor": "acme-sec",
        },
    )
    assert announced.status_code == 201, announced.text
    notice = announced.json()["id"]
    headers = await api.headers("tech-t")
    now = await api.client.post(_url(api, notice), headers=headers, json={"when": "now"})
    assert now.status_code == 409, now.text
    assert now.json()["type"] == "/problems/wrong-state"
    assert "rio run schedule" in now.json()["detail"]
    later = await api.client.post(_url(api, notice), headers=headers, json={"when": "next-opening"})
    assert later.status_code == 201, later.text
    start = datetime.fromisoformat(later.json()["start"])
    assert start >= datetime.fromisoformat(announced.json()["lead_time_met_at"])


async def test_unknown_notice_is_404(api: Api) -> None:
    response = await api.client.post(
        _url(api, "N-nope"), headers=await api.headers("tech-t"), json={"when": "now"}
    )
    assert response.status_code == 404
