"""Browsing a run's probe log over the API and on the audit page: filtered as ``rio audit log``
filters it, a page at a time, with the per-target summary; the role matrix decides who reads."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_resources import RUN
from tests.api.test_transparency import _close

URL = f"/api/v1/runs/{RUN}/leaves"


async def test_leaves_need_a_session_and_the_right_to_read_the_ledger(api: Api) -> None:
    assert (await api.client.get(URL)).status_code == 401
    for name in ("tech-other", "admin-m", "officer-x"):
        response = await api.client.get(URL, headers=await api.headers(name))
        assert response.status_code == 403, name


async def test_the_log_is_listed_filtered_and_paged(api: Api) -> None:
    headers = await api.headers("auditor-u")
    everything = (await api.client.get(URL, headers=headers)).json()
    # The lab's run: running, two intent/outcome pairs, a refusal, completed (+ the seal).
    kinds = [leaf["kind"] for leaf in everything["leaves"]]
    assert kinds[:6] == ["state", "intent", "outcome", "intent", "outcome", "refusal"]
    assert everything["matched"] == len(kinds) and everything["next_after"] is None
    summary = {t["target"]: (t["probes"], t["refusals"]) for t in everything["targets"]}
    assert summary == {"127.0.10.5": (2, 0), "127.0.10.13": (0, 1)}

    refusals = (await api.client.get(URL + "?refused=true", headers=headers)).json()
    assert [leaf["kind"] for leaf in refusals["leaves"]] == ["refusal"]
    assert refusals["leaves"][0]["target"] == "127.0.10.13"

    first = (await api.client.get(URL + "?limit=2", headers=headers)).json()
    assert [leaf["seq"] for leaf in first["leaves"]] == [0, 1] and first["next_after"] == 1
    rest = (await api.client.get(URL + "?after=1&limit=500", headers=headers)).json()
    assert rest["leaves"][0]["seq"] == 2 and rest["next_after"] is None
    assert len(first["leaves"]) + len(rest["leaves"]) == everything["matched"]

    naive = await api.client.get(URL + "?since=2026-09-02T02:00:00", headers=headers)
    assert naive.status_code == 422
    later = (await api.client.get(URL + "?since=2026-09-02T02:00:03Z", headers=headers)).json()
    assert all(leaf["at"] >= "2026-09-02T02:00:03" for leaf in later["leaves"])
    assert 0 < later["matched"] < everything["matched"]


async def test_the_audit_page_filters_the_log(api: Api) -> None:
    await _close(api)
    await api.login("auditor-u")  # the page reads the session cookie
    page = await api.client.get(f"/runs/{RUN}/audit?refused=true")
    assert page.status_code == 200, page.text
    assert "1 leaves match" in page.text and "127.0.10.13" in page.text
    assert 'class="leaf-intent"' not in page.text
    full = await api.client.get(f"/runs/{RUN}/audit?target=127.0.10.5")
    assert full.text.count('class="leaf-intent"') == 2
