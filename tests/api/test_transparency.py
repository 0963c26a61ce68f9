"""The transparency report over the API: built from the closed run's archive for its object,
every probe with an inclusion proof the object can check with the orchestrator's key."""

from __future__ import annotations

from orchestrator.audit.transparency import REPORT_FORMAT, verify_transparency_report
from tests.api.conftest import Api
from tests.api.test_resources import RUN, _sign

URL = f"/api/v1/runs/{RUN}/transparency"


async def _close(api: Api) -> None:
    for name in ("officer-a", "officer-b", "tech-t"):
        assert await _sign(api, name) == 201
    closed = await api.client.post(
        f"/api/v1/runs/{RUN}/record/close", headers=await api.headers("officer-a")
    )
    assert closed.status_code == 200, closed.text


async def test_no_report_without_a_session_the_right_run_or_a_closed_record(api: Api) -> None:
    assert (await api.client.get(URL)).status_code == 401
    other = await api.client.get(URL, headers=await api.headers("tech-other"))
    assert other.status_code == 403
    early = await api.client.get(URL, headers=await api.headers("officer-a"))
    assert early.status_code == 409 and "not closed" in early.json()["detail"]


async def test_the_report_proves_every_probe_to_the_objects_key(api: Api) -> None:
    await _close(api)
    response = await api.client.get(URL, headers=await api.headers("auditor-u"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["format"] == REPORT_FORMAT
    assert report["notice"]["id"] == api.lab.notice_id
    # The lab's run sent two port probes to 127.0.10.5, inside the announced 127.0.10.0/27.
    assert [(p["ip"], p["probe"]) for p in report["probes"]] == [("127.0.10.5", "port")] * 2
    verdict = verify_transparency_report(report, public_key=api.lab.rio.verify_key)
    assert verdict.ok, verdict.problems
    assert verdict.probes == 2
    page = await api.client.get(URL + "?format=html", headers=await api.headers("officer-b"))
    assert page.headers["content-type"].startswith("text/html")
    assert api.lab.notice_id in page.text and "127.0.10.5" in page.text
    pdf = await api.client.get(URL + "?format=pdf", headers=await api.headers("officer-b"))
    assert pdf.content.startswith(b"%PDF-")
