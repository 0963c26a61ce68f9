"""``/healthz``, ``/metrics`` and the OpenAPI document."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_healthz_says_ok_when_the_database_answers(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_metrics_count_runs_probes_and_refusals_in_prometheus_text(api: Api) -> None:
    response = await api.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    # The lab's sealed run: two probes sent, one refusal by the scope check.
    assert 'rio_runs{state="sealed"} 1' in lines
    assert "rio_probes_sent_total 2" in lines
    assert 'rio_refusals_total{reason="gate scope: excluded"} 1' in lines
    assert "# TYPE rio_probes_sent_total counter" in lines
    for line in lines:
        assert line.startswith("#") or line.startswith("rio_"), line


async def test_openapi_document_is_served_and_names_the_login_routes(api: Api) -> None:
    doc = (await api.client.get("/api/v1/openapi.json")).json()
    assert doc["info"]["title"] == "rio"
    assert "/api/v1/auth/challenge" in doc["paths"]
    assert "/api/v1/public/lookup" in doc["paths"]


async def test_unknown_route_is_a_404_problem(api: Api) -> None:
    response = await api.client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_bug_is_a_500_problem_without_trace_or_message(api: Api) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]

    @app.get("/api/v1/test-bug")
    def bug() -> None:
        raise RuntimeError("SECRET-evidence-bytes in an exception message")

    response = await api.client.get("/api/v1/test-bug")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/internal"
    assert "SECRET" not in response.text and "Traceback" not in response.text


async def test_a_page_error_is_a_readable_page(api: Api) -> None:
    page = await api.client.get("/verify/N-none", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "N-none" in page.text and "is not known" in page.text
