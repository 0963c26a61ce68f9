"""The test PostgreSQL server: its URL when it is on loopback and reachable, else a skip."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
import pytest

__all__ = ["loopback_pg_url"]


def loopback_pg_url() -> str:
    """``RIO_TEST_DATABASE_URL`` (default: 127.0.0.1:5432/test), or skip with the reason."""
    url = os.environ.get(
        "RIO_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    host = urlsplit(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        pytest.skip(f"RIO_TEST_DATABASE_URL {url!r} is not on loopback; tests only use loopback")
    try:
        psycopg.connect(
            url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=2
        ).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable at {url} (set RIO_TEST_DATABASE_URL): {exc}")
    return url
