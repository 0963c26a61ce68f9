"""Fixtures for the rate-budget tests: one contract, two storages (memory and Redis).

Redis is read from ``RIO_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``, loopback only).
Each test gets its own key namespace and deletes only the keys under it afterwards; nothing
else in the database is touched (no FLUSHDB/FLUSHALL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis

REDIS_URL = os.environ.get("RIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True, kw_only=True, slots=True)
class StorageCase:
    """Where a test's budgets live: the URL to pass to RateBudget and a fresh namespace."""

    kind: str
    url: str
    namespace: str


def _redis_or_skip() -> redis.Redis:
    host = urlsplit(REDIS_URL).hostname or ""
    if host not in _LOOPBACK_HOSTS and not host.startswith("127."):
        pytest.skip(f"RIO_TEST_REDIS_URL {REDIS_URL!r} is not on loopback; tests only use loopback")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis not reachable at {REDIS_URL} (set RIO_TEST_REDIS_URL): {exc}")
    return client


def _delete_namespace(client: redis.Redis, namespace: str) -> None:
    # The shared budgets' keys are prefixed ("RIO-BUDGET:"); the namespace is a fresh uuid, so
    # match it anywhere.
    keys = list(client.scan_iter(match=f"*{namespace}*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_case() -> Iterator[StorageCase]:
    """A Redis-backed storage case (skips when Redis is absent)."""
    client = _redis_or_skip()
    namespace = f"rio-test-{uuid.uuid4().hex}"
    try:
        yield StorageCase(kind="redis", url=REDIS_URL, namespace=namespace)
    finally:
        _delete_namespace(client, namespace)
        client.close()


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Iterator[StorageCase]:
    """Each budget test runs once on in-process memory and once on Redis."""
    if request.param == "memory":
        yield StorageCase(kind="memory", url="memory://", namespace=f"rio-test-{uuid.uuid4().hex}")
        return
    yield request.getfixturevalue("redis_case")
