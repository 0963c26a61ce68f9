"""Fixtures for probe tests: permits for loopback targets, a probe context, certificates.

``issue_permit`` is TEMPORARY: it seals a permit directly with ``probes.base._seal_permit``
instead of asking the gate. It refuses any address that is not loopback, so no probe test can
be pointed elsewhere; the lead will route it through the real gate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from probes.base import Permit, ProbeContext, _seal_permit
from probes.findings import Catalogue, load_catalogue
from tests.support.servers import CertFactory

IssuePermit = Callable[..., Permit]

USER_AGENT = "rio/0.0-test (+notice test-notice; tests@rio.invalid)"


def _seal(probe: str, ip: str, fields: dict[str, Any]) -> Permit:
    values: dict[str, Any] = {
        "run_id": "run-test",
        "notice_id": "notice-test",
        "decision": 1,
        "probe": probe,
        "target": ip,
        "ip": ip,
        "deadline": datetime.now(UTC) + timedelta(seconds=60),
    }
    values.update(fields)
    return _seal_permit(**values)


@pytest.fixture
def issue_permit() -> IssuePermit:
    """``issue_permit(probe, ip, **fields)`` -> a sealed permit for a loopback ``ip`` only."""

    def issue(probe: str, ip: str, **fields: Any) -> Permit:
        assert ipaddress.ip_address(ip).is_loopback, f"probe tests target loopback only, not {ip}"
        return _seal(probe, ip, fields)

    return issue


@pytest.fixture
def argument_permit() -> IssuePermit:
    """A sealed permit with *any* field values, for argument-builder tests that send nothing.

    Tests using it must never pass the permit to a probe's ``run``.
    """

    def issue(probe: str, ip: Any, **fields: Any) -> Permit:
        return _seal(probe, ip, fields)

    return issue


@pytest.fixture
def ctx() -> ProbeContext:
    return ProbeContext(user_agent=USER_AGENT)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertFactory]:
    directory: Path = tmp_path_factory.mktemp("certs")
    yield CertFactory(directory)
