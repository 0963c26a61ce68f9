"""The http probe: findings on loopback sites, pinned connections, no redirect following."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from probes.base import ProbeContext, ProbeResult
from probes.errors import PermitError, ProbeArgumentError, ProbeCancelledError
from probes.findings import Catalogue, derive_findings
from probes.http import HttpClients, HttpProbe, base_url, make_client
from tests.probes.conftest import USER_AGENT, IssuePermit
from tests.support.servers import (
    POORLY_CONFIGURED,
    WELL_CONFIGURED,
    CertFactory,
    HttpBehaviour,
    LoopbackHttpServer,
    server_tls_context,
)

NAME = "www.demo.test"
OTHER = "shop.demo.test"
HTTPS_REDIRECT = HttpBehaviour(status=301, location=f"https://{NAME}/")


def _rules(result: ProbeResult, catalogue: Catalogue) -> set[str]:
    return {f.rule for f in derive_findings(result, target=NAME, catalogue=catalogue)}


async def _probe(
    issue_permit: IssuePermit, ctx: ProbeContext, server: LoopbackHttpServer, **params: Any
) -> ProbeResult:
    permit = issue_permit(
        "http",
        server.host,
        port=server.port,
        server_name=NAME,
        params={"paths": ["/"], "timeout": 5, **params},
    )
    return await HttpProbe().run(permit, ctx)


@pytest.fixture(params=["client per probe", "run's shared clients"])
async def ctx(request: pytest.FixtureRequest) -> AsyncIterator[ProbeContext]:
    """Every probe test runs with a client per probe and with a run's shared clients."""
    if request.param == "client per probe":
        yield ProbeContext(user_agent=USER_AGENT)
        return
    clients = HttpClients(USER_AGENT)
    yield ProbeContext(user_agent=USER_AGENT, http_clients=clients)
    await clients.aclose()


@pytest.fixture(scope="module")
def tls_context(certs: CertFactory) -> ssl.SSLContext:
    return server_tls_context(certs.issued(NAME))


async def test_well_configured_https_site_has_no_findings(
    issue_permit: IssuePermit,
    ctx: ProbeContext,
    catalogue: Catalogue,
    tls_context: ssl.SSLContext,
) -> None:
    with LoopbackHttpServer(WELL_CONFIGURED, tls=tls_context) as server:
        result = await _probe(issue_permit, ctx, server, scheme="https")
    assert result.outcome == "ok", result.error
    assert result.http_status == 200
    assert _rules(result, catalogue) == set()


async def test_poorly_configured_https_site_findings(
    issue_permit: IssuePermit,
    ctx: ProbeContext,
    catalogue: Catalogue,
    tls_context: ssl.SSLContext,
) -> None:
    with LoopbackHttpServer(POORLY_CONFIGURED, tls=tls_context) as server:
        result = await _probe(issue_permit, ctx, server, scheme="https")
    assert _rules(result, catalogue) == {
        "RIO-HTTP-HSTS-MISSING",
        "RIO-HTTP-CSP-MISSING",
        "RIO-HTTP-XCTO-MISSING",
        "RIO-HTTP-XFO-MISSING",
        "RIO-HTTP-COOKIE-NOT-SECURE",
        "RIO-HTTP-COOKIE-NOT-HTTPONLY",
        "RIO-HTTP-BANNER-VERSION",
    }


async def test_poorly_configured_plain_http_site_findings(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    with LoopbackHttpServer(POORLY_CONFIGURED) as server:
        result = await _probe(issue_permit, ctx, server, scheme="http")
    # HSTS and the Secure flag mean nothing on plain http; the missing redirect does.
    assert _rules(result, catalogue) == {
        "RIO-HTTP-NO-HTTPS-REDIRECT",
        "RIO-HTTP-CSP-MISSING",
        "RIO-HTTP-XCTO-MISSING",
        "RIO-HTTP-XFO-MISSING",
        "RIO-HTTP-COOKIE-NOT-HTTPONLY",
        "RIO-HTTP-BANNER-VERSION",
    }


async def test_plain_http_redirecting_to_https_has_no_findings(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    with LoopbackHttpServer(HTTPS_REDIRECT) as server:
        result = await _probe(issue_permit, ctx, server, scheme="http")
    assert result.http_status == 301
    assert _rules(result, catalogue) == set()


async def test_finding_evidence_is_the_banner_and_digest_hides_it(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    with LoopbackHttpServer(POORLY_CONFIGURED) as server:
        result = await _probe(issue_permit, ctx, server, scheme="http")
    banner = next(
        f
        for f in derive_findings(result, target=NAME, catalogue=catalogue)
        if f.rule == "RIO-HTTP-BANNER-VERSION"
    )
    assert banner.evidence is not None
    seen = json.loads(banner.evidence)["seen"]
    assert [(s["value"]["header"], s["read"]) for s in seen] == [
        ("server", "Apache/2.4.41 (Ubuntu)")
    ]
    assert banner.port == server.port
    assert "Apache" not in str(banner.to_json())


async def test_probe_connects_only_to_pinned_address_and_does_not_follow_redirect(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    with LoopbackHttpServer(WELL_CONFIGURED) as elsewhere:
        bounce = HttpBehaviour(status=302, location=f"http://127.0.0.1:{elsewhere.port}/next")
        with LoopbackHttpServer(bounce) as pinned:
            result = await _probe(
                issue_permit, ctx, pinned, scheme="http", paths=["/", "/login"], method="GET"
            )
        assert elsewhere.connections == []
    assert pinned.connections, "the probe never reached the pinned server"
    assert {c.local for c in pinned.connections} == {("127.0.0.1", pinned.port)}
    assert [(r.method, r.path, r.host, r.user_agent) for r in pinned.requests] == [
        ("GET", "/", NAME, USER_AGENT),
        ("GET", "/login", NAME, USER_AGENT),
    ]
    redirects = [o for o in result.observations if o.key == "http.redirect"]
    assert [o.evidence for o in redirects] == [f"http://127.0.0.1:{elsewhere.port}/next"] * 2


async def test_https_sends_announced_name_as_sni_and_host(
    issue_permit: IssuePermit, ctx: ProbeContext, certs: CertFactory
) -> None:
    seen: list[str | None] = []
    context = server_tls_context(certs.issued(NAME))
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)
    with LoopbackHttpServer(WELL_CONFIGURED, tls=context) as server:
        result = await _probe(issue_permit, ctx, server, scheme="https")
    assert result.outcome == "ok", result.error
    assert seen == [NAME]
    assert [r.host for r in server.requests] == [NAME]


async def test_too_many_requests_stops_the_probe_and_reports_retry_after(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    slow_down = HttpBehaviour(status=429, headers=(("Retry-After", "7"),))
    with LoopbackHttpServer(slow_down) as server:
        result = await _probe(issue_permit, ctx, server, scheme="http", paths=["/", "/a", "/b"])
    assert (result.http_status, result.retry_after) == (429, 7.0)
    assert len(server.requests) == 1
    assert result.latency is not None


async def test_large_body_is_read_only_up_to_max_body(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    big = HttpBehaviour(body=b"x" * 2_000_000)
    with LoopbackHttpServer(big) as server:
        result = await _probe(issue_permit, ctx, server, scheme="http", method="GET", max_body=1024)
    assert result.outcome == "ok", result.error
    assert result.http_status == 200


async def test_closed_port_is_an_unreachable_outcome_not_an_exception(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    from tests.support.servers import closed_port

    permit = issue_permit("http", "127.0.0.1", port=closed_port(), params={"timeout": 2})
    result = await HttpProbe().run(permit, ctx)
    assert result.outcome == "unreachable"
    assert result.observations == ()


async def test_shared_client_from_make_client_is_reused(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    with LoopbackHttpServer(WELL_CONFIGURED) as server:
        permit = issue_permit("http", "127.0.0.1", port=server.port, params={"paths": ["/"]})
        async with make_client(permit, ctx) as client:
            first = await HttpProbe().run(permit, ctx, client)
            second = await HttpProbe().run(permit, ctx, client)
        assert client.is_closed
    assert (first.outcome, second.outcome) == ("ok", "ok")
    assert len(server.connections) == 1  # keep-alive: one connection served both runs


async def test_run_shares_one_client_for_plain_http_and_one_per_https_name(
    issue_permit: IssuePermit,
) -> None:
    clients = HttpClients(USER_AGENT)
    try:

        def permit(scheme: str, name: str | None) -> Any:
            return issue_permit(
                "http", "127.0.0.1", port=8080, server_name=name, params={"scheme": scheme}
            )

        plain = clients.client_for(permit("http", None))
        assert plain is not None
        assert clients.client_for(permit("http", NAME)) is plain  # Host travels per request
        one = clients.client_for(permit("https", NAME))
        assert one is not None and one is not plain
        assert clients.client_for(permit("https", NAME)) is one
        assert clients.client_for(permit("https", OTHER)) not in (one, plain)
    finally:
        await clients.aclose()
    assert plain.is_closed and one.is_closed
    assert clients.client_for(permit("http", None)) is None  # closed: probes make their own


async def test_shared_https_connection_never_carries_another_names_request(
    issue_permit: IssuePermit, certs: CertFactory
) -> None:
    seen: list[str | None] = []
    context = server_tls_context(certs.issued(NAME))
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)
    clients = HttpClients(USER_AGENT)
    ctx = ProbeContext(user_agent=USER_AGENT, http_clients=clients)
    try:
        with LoopbackHttpServer(WELL_CONFIGURED, tls=context) as server:
            for name in (NAME, OTHER, NAME, OTHER):
                permit = issue_permit(
                    "http",
                    server.host,
                    port=server.port,
                    server_name=name,
                    params={"scheme": "https", "paths": ["/"], "timeout": 5},
                )
                result = await HttpProbe().run(permit, ctx)
                assert result.outcome == "ok", result.error
    finally:
        await clients.aclose()
    # One TLS connection per name, each opened with its own SNI and reused only for that name.
    assert seen == [NAME, OTHER]
    assert [r.host for r in server.requests] == [NAME, OTHER, NAME, OTHER]
    assert len(server.connections) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"scheme": "ftp"}, "scheme"),
        ({"paths": ["http://elsewhere.example/"]}, "paths"),
        ({"paths": ["//elsewhere.example/"]}, "paths"),
        ({"paths": ["relative"]}, "paths"),
        ({"paths": ["/a b"]}, "paths"),
        ({"paths": ["/a\r\nHost: x"]}, "paths"),
        ({"paths": ["/#frag"]}, "paths"),
        ({"paths": []}, "paths"),
        ({"method": "POST"}, "method"),
        ({"max_body": -1}, "max_body"),
        ({"timeout": 0}, "timeout"),
        ({"follow_redirects": True}, "params"),
    ],
)
async def test_parameters_refused_outside_allowlist(
    argument_permit: IssuePermit, ctx: ProbeContext, params: dict[str, Any], field: str
) -> None:
    # The gate would refuse these parameters first (tests/gate); this proves the probe's own
    # allowlist holds too. The permit is sealed by hand and the probe refuses before sending.
    permit = argument_permit("http", "127.0.0.1", port=80, params=params)
    with pytest.raises(ProbeArgumentError, match=field):
        await HttpProbe().run(permit, ctx)


async def test_probe_refused_when_permit_names_another_probe(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    with pytest.raises(PermitError):
        await HttpProbe().run(issue_permit("tls", "127.0.0.1", port=80), ctx)


def test_base_url_brackets_ipv6_and_refuses_non_canonical(argument_permit: IssuePermit) -> None:
    assert base_url(argument_permit("http", "::1", port=8443), "https") == "https://[::1]:8443"
    with pytest.raises(ProbeArgumentError, match="ip"):
        base_url(argument_permit("http", "0:0::1", port=80), "http")
    with pytest.raises(ProbeArgumentError, match="port"):
        base_url(argument_permit("http", "127.0.0.1", port=None), "http")


async def test_cancelling_the_task_raises_probe_cancelled(
    issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    import asyncio
    import socket

    # A listener that never accepts: the TCP handshake completes from the backlog, no answer comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        permit = issue_permit(
            "http", "127.0.0.1", port=silent.getsockname()[1], params={"timeout": 30}
        )
        task = asyncio.create_task(HttpProbe().run(permit, ctx))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(ProbeCancelledError):
            await task


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) in this environment")
async def test_ipv6_loopback_target_is_reached_by_bracketed_literal(
    issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    with LoopbackHttpServer(HTTPS_REDIRECT, host="::1") as server:
        result = await _probe(issue_permit, ctx, server, scheme="http")
    assert result.outcome == "ok", result.error
    assert {c.local[:2] for c in server.connections} == {("::1", server.port)}
    assert _rules(result, catalogue) == set()
