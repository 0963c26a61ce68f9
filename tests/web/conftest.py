"""A real browser against a real server: uvicorn on a loopback port, Debian's Chromium driven
by Playwright (``executable_path``; no browser is downloaded), a fresh profile per test.

Screenshots go to ``RIO_TEST_ARTEFACTS`` (default: the test's tmp folder) as test artefacts.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from orchestrator.context import Rio
from orchestrator.interfaces.api import ApiConfig, create_app
from tests.api.conftest import _api_lab_template, api_lab  # noqa: F401 - the same lab

CHROMIUM = os.environ.get("RIO_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """uvicorn serving the app over ``rio`` on 127.0.0.1 in a thread, until :meth:`stop`."""

    def __init__(self, rio: Rio) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(rio, config=ApiConfig(host_name="rio-browser-test", sse_max_seconds=30))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def artefacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    root = os.environ.get("RIO_TEST_ARTEFACTS")
    out = Path(root) / request.node.name if root else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser() -> Iterator[object]:
    """A Chromium browser (Playwright); skips with the reason where it cannot run."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        # launch() gives Chromium a fresh temporary profile (user-data-dir) of its own, and
        # each new_context() in it is isolated (cookies, sessionStorage): one per person.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()
