"""The redis, memcached and ftp probes against Debian's real servers on loopback standard ports.

Each server runs twice (field lab): with the planted flaw, and configured with care; the probe's
rules must fire on the first and stay silent on the second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.base import Observation, ProbeContext, ProbeResult
from probes.findings import Catalogue, derive_findings
from probes.services import FtpProbe, MemcachedProbe, RedisProbe
from tests.integration.field.lab import Lab
from tests.probes.conftest import IssuePermit, lab_servers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    names = ("redis", "redis-sound", "memcached", "memcached-sound", "ftp", "ftp-sound")
    with lab_servers(tmp_path_factory.mktemp("services-lab"), *names) as running:
        yield running


def _only(result: ProbeResult, key: str) -> Observation:
    (obs,) = [o for o in result.observations if o.key == key]
    return obs


def _rules(result: ProbeResult, catalogue: Catalogue, target: str) -> set[str]:
    return {f.rule for f in derive_findings(result, target=target, catalogue=catalogue)}


def test_redis_without_password_answers_info_and_is_a_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit("redis", lab.ip("redis"), port=6379, params={"timeout": 5})
    result = asyncio.run(RedisProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == 1
    auth = _only(result, "redis.auth")
    assert auth.value["open"] is True and auth.value["version"]
    assert auth.evidence is not None and "redis_version:" in auth.evidence
    assert _rules(result, catalogue, permit.target) == {"RIO-REDIS-NO-AUTH"}


def test_redis_with_password_answers_noauth_and_no_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit("redis", lab.ip("redis-sound"), port=6379, params={"timeout": 5})
    result = asyncio.run(RedisProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert _only(result, "redis.auth").value == {"open": False, "answer": "NOAUTH"}
    assert _rules(result, catalogue, permit.target) == set()


def test_memcached_without_authentication_answers_version_and_is_a_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit("memcached", lab.ip("memcached"), port=11211, params={"timeout": 5})
    result = asyncio.run(MemcachedProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    auth = _only(result, "memcached.auth").value
    assert auth["open"] is True and auth["version"]
    assert _rules(result, catalogue, permit.target) == {"RIO-MEMCACHED-NO-AUTH"}


def test_memcached_with_an_auth_file_refuses_and_no_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit("memcached", lab.ip("memcached-sound"), port=11211, params={"timeout": 5})
    result = asyncio.run(MemcachedProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert _only(result, "memcached.auth").value["open"] is False
    assert _rules(result, catalogue, permit.target) == set()


def test_ftp_anonymous_login_and_version_greeting_are_findings(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit("ftp", lab.ip("ftp"), port=21, params={"timeout": 5, "anonymous": True})
    result = asyncio.run(FtpProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == 1
    assert _only(result, "ftp.anonymous").value == {"accepted": True, "code": 230}
    assert _rules(result, catalogue, permit.target) == {
        "RIO-FTP-ANONYMOUS",
        "RIO-FTP-BANNER-VERSION",
    }


def test_ftp_without_anonymous_login_and_neutral_greeting_has_no_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit(
        "ftp", lab.ip("ftp-sound"), port=21, params={"timeout": 5, "anonymous": True}
    )
    result = asyncio.run(FtpProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert _only(result, "ftp.anonymous").value["accepted"] is False
    assert _rules(result, catalogue, permit.target) == set()


def test_ftp_probe_without_the_anonymous_switch_only_reads_the_greeting(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    permit = issue_permit("ftp", lab.ip("ftp"), port=21, params={"timeout": 5})
    result = asyncio.run(FtpProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert [o.key for o in result.observations] == ["ftp.banner"]
