"""The public notice check: no login, nothing confidential, rate-limited per client address."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.api.conftest import Api, _serve, config
from tests.record.conftest import Lab


async def test_public_notice_shows_object_windows_sources_and_contact_only(api: Api) -> None:
    response = await api.client.get(f"/api/v1/public/notices/{api.lab.notice_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["object_id"] == "demo-isp"
    assert body["sources"] == ["127.0.0.1"]
    assert body["contact_name"] == "Demo NOC"
    assert body["windows"][0]["timezone"] == "Asia/Shanghai"
    text = response.text
    # The scope's targets and excludes, the vendor and the policy stay out.
    for secret in ("127.0.10.0/27", "127.0.10.13", "acme-sec", "demo.yaml", "per_ip"):
        assert secret not in text


async def test_traffic_from_an_announced_source_inside_the_window_is_announced(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/public/lookup", params={"source": "127.0.0.1", "at": "2026-09-02T02:03:00Z"}
    )
    body = response.json()
    assert body["announced"] is True
    assert [n["id"] for n in body["notices"]] == [api.lab.notice_id]
    assert body["runs_active"] == 1  # the lab's run ran 02:00..02:05


async def test_traffic_before_the_announcement_is_not_announced(api: Api) -> None:
    body = (
        await api.client.get(
            "/api/v1/public/lookup",
            params={"source": "127.0.0.1", "at": "2026-08-31T10:00:00+08:00"},
        )
    ).json()
    assert body["announced"] is False
    assert body["notices"] == []
    assert "not at" in body["why"]


async def test_traffic_from_another_address_is_not_announced(api: Api) -> None:
    body = (
        await api.client.get(
            "/api/v1/public/lookup", params={"source": "127.0.0.9", "at": "2026-09-02T02:03:00Z"}
        )
    ).json()
    assert body == {
        "source": "127.0.0.9",
        "at": "2026-09-02T02:03:00Z",
        "announced": False,
        "why": "no notice announces 127.0.0.9 as a scanner source",
        "runs_active": 0,
        "notices": [],
    }


async def test_lookup_refuses_a_time_without_offset_and_a_non_address(api: Api) -> None:
    naive = await api.client.get(
        "/api/v1/public/lookup", params={"source": "127.0.0.1", "at": "2026-09-02T02:03:00"}
    )
    assert naive.status_code == 422
    assert "no timezone" in naive.json()["detail"]
    bad = await api.client.get(
        "/api/v1/public/lookup", params={"source": "not-an-ip", "at": "2026-09-02T02:03:00Z"}
    )
    assert bad.status_code == 422
    assert "not an IP address" in bad.json()["detail"]


async def test_unknown_notice_is_404_problem(api: Api) -> None:
    response = await api.client.get("/api/v1/public/notices/N-nope")
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/not-found"


@pytest.fixture
async def tight_api(api_lab: Lab) -> AsyncIterator[Api]:
    cfg = config()
    from dataclasses import replace

    async for served in _serve(api_lab, replace(cfg, public_rate="3/minute")):
        yield served


async def test_public_check_is_rate_limited_per_client(tight_api: Api) -> None:
    url = f"/api/v1/public/notices/{tight_api.lab.notice_id}"
    codes = [(await tight_api.client.get(url)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = await tight_api.client.get(url)
    assert limited.json()["type"] == "/problems/rate-limited"
    assert limited.headers["retry-after"] == "60"
    # The page shares the same budget: a browser cannot dodge the limit through it.
    page = await tight_api.client.get(url.replace("/api/v1/public/notices", "/verify"))
    assert page.status_code == 429


async def test_verify_page_shows_the_public_notice(api: Api) -> None:
    page = await api.client.get(f"/verify/{api.lab.notice_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Demo Loopback ISP (lab)" in page.text
    assert "127.0.0.1" in page.text
    assert "127.0.10.0/27" not in page.text


async def test_verify_lookup_page_answers_yes_for_the_announced_source(api: Api) -> None:
    page = await api.client.get(
        "/verify", params={"source": "127.0.0.1", "at": "2026-09-02T10:03:00+08:00"}
    )
    assert "Yes: announced" in page.text
    assert api.lab.notice_id in page.text


async def test_pages_write_times_one_way_iso_8601_with_the_offset(api: Api) -> None:
    # #19: the verify page gives the announcement and windows as ISO 8601 with the offset,
    # the windows in the timezone they were announced in (the demo scope: Asia/Shanghai).
    page = await api.client.get(f"/verify/{api.lab.notice_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "2026-01-01T00:00:00+08:00" in page.text  # the demo window's start, as announced
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", page.text)
    assert stamps and {frac for frac, _ in stamps} == {""}  # to the second, for people
    assert {zone for _, zone in stamps} == {"+08:00"}
