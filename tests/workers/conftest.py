"""Worker tests: a real Redis (db 11 by default, ``RIO_TEST_WORKER_REDIS_URL``), loopback only.

Each test gets its own namespace (the queue name), so parallel sessions never share keys.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from probes.base import Permit, ProbeContext, _seal_permit

WORKER_REDIS_URL = os.environ.get("RIO_TEST_WORKER_REDIS_URL", "redis://127.0.0.1:6379/11")
PERMIT_KEY = b"k" * 32


def redis_or_skip(url: str = WORKER_REDIS_URL) -> redis.Redis:
    host = urlsplit(url).hostname or ""
    if not (host in {"localhost", "::1"} or host.startswith("127.")):
        pytest.skip(f"{url!r} is not on loopback; tests only use loopback")
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("RIO_REQUIRE_SERVICES"):
            raise
        pytest.skip(f"Redis not reachable at {url} (set RIO_TEST_WORKER_REDIS_URL): {exc}")
    return client


@pytest.fixture
def namespace() -> Iterator[str]:
    client = redis_or_skip()
    ns = f"rio-wtest-{uuid.uuid4().hex[:12]}"
    try:
        yield ns
    finally:
        keys = list(client.scan_iter(match=f"{ns}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


def a_permit(**change: Any) -> Permit:
    fields: dict[str, Any] = {
        "run_id": "R-20261204-abcdef",
        "notice_id": "N-20261204-123456",
        "decision": 7,
        "probe": "http",
        "target": "cidr:127.0.0.0/8",
        "ip": "127.0.0.9",
        "port": 9,
        "params": {"paths": ["/"]},
        "deadline": datetime.now(UTC) + timedelta(seconds=30),
        "max_rate": 2.0,
    }
    fields.update(change)
    return _seal_permit(**fields)


CTX = ProbeContext(user_agent="rio/test (+notice N-20261204-123456)", dns_port=9)
