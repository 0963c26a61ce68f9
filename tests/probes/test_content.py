"""The http-content probe against Debian's real nginx: planted exposures found, sound site silent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.base import ProbeContext, ProbeResult, monotonic
from probes.content import CONTENT_PATHS, HttpContentProbe, mask_secrets
from probes.findings import Catalogue, derive_findings
from tests.integration.field.lab import DOMAIN, Lab
from tests.probes.conftest import USER_AGENT, IssuePermit, lab_servers

ALL_PATHS = sorted(CONTENT_PATHS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(
        tmp_path_factory.mktemp("content-lab"), "nginx-weak", "nginx-sound"
    ) as running:
        yield running


def _fetch(issue_permit: IssuePermit, ctx: ProbeContext, ip: str, port: int, scheme: str,
           name: str) -> ProbeResult:  # fmt: skip
    permit = issue_permit(
        "http-content", ip, port=port, server_name=name,
        params={"scheme": scheme, "paths": ALL_PATHS, "timeout": 5},
    )  # fmt: skip
    result = asyncio.run(HttpContentProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == len(ALL_PATHS)
    return result


@pytest.mark.slow
def test_planted_exposures_on_the_weak_site_are_found_with_masked_evidence(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    result = _fetch(issue_permit, ctx, lab.ip("nginx-weak"), 80, "http", f"www.{DOMAIN}")
    findings = derive_findings(result, target=f"host:www.{DOMAIN}", catalogue=catalogue)
    assert {f.rule for f in findings} == {
        "RIO-HTTP-DEFAULT-PAGE",
        "RIO-HTTP-VCS-EXPOSED",
        "RIO-HTTP-ENV-EXPOSED",
        "RIO-HTTP-DIRECTORY-LISTING",
        "RIO-HTTP-STATUS-PAGE",
    }
    env = next(f for f in findings if f.rule == "RIO-HTTP-ENV-EXPOSED")
    assert env.evidence is not None and "DB_PASSWORD=***" in env.evidence
    assert "lab-secret" not in env.evidence
    listing = next(f for f in findings if f.rule == "RIO-HTTP-DIRECTORY-LISTING")
    assert listing.detail["path"] == "/backup/" and "index.html" in (listing.evidence or "")


@pytest.mark.slow
def test_sound_site_answering_200_for_every_path_has_no_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    # Its catch-all location answers 200 to /.git/HEAD too: only signatures may decide.
    result = _fetch(issue_permit, ctx, lab.ip("nginx-sound"), 443, "https", f"secure.{DOMAIN}")
    statuses = {o.value["path"]: o.value["status"] for o in result.observations}
    assert statuses["/.git/HEAD"] == 200
    assert derive_findings(result, target=f"host:secure.{DOMAIN}", catalogue=catalogue) == []


@pytest.mark.slow
def test_each_request_reports_its_send_so_the_budget_follows_it_onto_the_wire(
    lab: Lab, issue_permit: IssuePermit
) -> None:
    # The runner moves the grant's units to each reported send (run/wire.py) and logs the first
    # as the probe's sent_at; each answer's head is reported too (end=True), the moment from
    # which the target provably has the request. A probe that reports nothing is pinned to
    # its own end.
    events: list[tuple[float, bool]] = []

    def on_wire(*, end: bool = False) -> None:
        events.append((monotonic(), end))

    ctx = ProbeContext(user_agent=USER_AGENT, on_wire=on_wire)
    result = _fetch(issue_permit, ctx, lab.ip("nginx-weak"), 80, "http", f"www.{DOMAIN}")
    sends = [t for t, end in events if not end]
    answers = [t for t, end in events if end]
    assert len(sends) >= len(ALL_PATHS)  # at least one per request (connection + request)
    assert len(answers) == len(ALL_PATHS)  # one head per request
    assert min(sends) >= result.started
    # Every answer follows a send, and what was sent last was answered.
    assert events[0][1] is False
    assert events[-1][1] is True


def test_masking_hides_values_of_secret_keys_and_env_lines() -> None:
    text = "APP_ENV=prod\npassword: hunter2\napi_key = abc\nplain text stays\n"
    assert mask_secrets(text) == "APP_ENV=***\npassword: ***\napi_key = ***\nplain text stays\n"
