"""The findings export over the API, in every format ``rio findings export`` writes, behind the
same role checks."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.api.conftest import Api
from tests.api.test_resources import RUN

URL = f"/api/v1/runs/{RUN}/findings/export"


async def test_the_export_needs_a_session_and_the_right_to_read_the_run(api: Api) -> None:
    assert (await api.client.get(URL, params={"format": "json"})).status_code == 401
    for name in ("tech-other", "admin-m", "officer-x"):
        response = await api.client.get(
            URL, params={"format": "json"}, headers=await api.headers(name)
        )
        assert response.status_code == 403, name
    bad = await api.client.get(URL, params={"format": "xml"}, headers=await api.headers("tech-t"))
    assert bad.status_code == 422


@pytest.mark.parametrize("fmt", ["json", "csv", "sarif", "html"])
async def test_every_format_names_both_findings(api: Api, fmt: str) -> None:
    response = await api.client.get(
        URL, params={"format": fmt}, headers=await api.headers("auditor-u")
    )
    assert response.status_code == 200, response.text
    text = response.text
    rules = ["RIO-PORT-TELNET", "RIO-PORT-FTP"]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["rule"] for r in rows] == rules
    elif fmt == "sarif":
        doc = json.loads(text)
        assert doc["version"] == "2.1.0"
        assert [r["ruleId"] for r in doc["runs"][0]["results"]] == rules
        assert response.headers["content-type"] == "application/sarif+json"
    else:
        assert all(rule in text for rule in rules)


async def test_an_evidence_reason_must_say_something(api: Api) -> None:
    # (The lab's findings carry no evidence; reads and their refusals are tested with evidence
    # in tests/access, through the same export_findings.)
    empty = await api.client.get(
        URL, params={"format": "json", "evidence_reason": ""}, headers=await api.headers("tech-t")
    )
    assert empty.status_code == 422
