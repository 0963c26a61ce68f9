"""Suite-wide settings: hypothesis profiles, and CI's demand that service-backed tests really run.

In CI (``RIO_REQUIRE_SERVICES=1``) a test that skips because PostgreSQL or Redis is unreachable
fails instead: the storage contract must be proven on the real servers there. Locally such tests
skip with a clear reason.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

IN_CI = os.environ.get("HYPOTHESIS_PROFILE") == "ci"
_SERVICE_WORDS = ("postgres", "redis", "rabbitmq")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("RIO_REQUIRE_SERVICES") != "1" or not report.skipped:
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(word in reason.lower() for word in _SERVICE_WORDS):
        report.outcome = "failed"
        report.longrepr = f"RIO_REQUIRE_SERVICES=1 but a service-backed test skipped: {reason}"
