"""``rio doctor`` with ``RIO_EXECUTOR=celery`` checks the broker and who answers a ping."""

from __future__ import annotations

import pytest

from orchestrator.errors import ToolError
from orchestrator.run.executors._broker import check_broker, ping_workers
from orchestrator.settings import Settings, load_settings

from .conftest import WORKER_REDIS_URL, redis_or_skip


def _settings(broker: str) -> Settings:
    return load_settings(
        {
            "RIO_EXECUTOR": "celery",
            "RIO_BROKER_URL": broker,
            "RIO_PERMIT_KEY": "p" * 32,
            "RIO_CELERY_QUEUE": "rio-wtest-doctor",
        }
    )


def test_doctor_reaches_the_broker_and_finds_no_worker_where_none_runs(namespace: str) -> None:
    redis_or_skip()
    # db 13: no test starts workers there, so nobody may answer.
    settings = _settings(WORKER_REDIS_URL.rsplit("/", 1)[0] + "/13")
    assert "redis://127.0.0.1:6379/13" in check_broker(settings)
    assert ping_workers(settings, timeout=0.5) == []


def test_doctor_names_an_unreachable_broker() -> None:
    settings = _settings("redis://127.0.0.1:9/0")  # the discard port: nothing listens
    with pytest.raises(ToolError, match=r"broker redis://127.0.0.1:9/0"):
        check_broker(settings, timeout=0.5)
