"""``rio demo --serve``: after the demo, its pages are served and the last line printed is the
record page's URL, which answers (a login redirect without a session); SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
_RIO = [sys.executable, "-m", "orchestrator.interfaces.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_demo_serve_ends_by_printing_its_record_page_url(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env.update({"RIO_HOME": str(home), "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen(
        [*_RIO, "demo", "--quiet", "--serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("record page: ") for line in lines):
            assert proc.poll() is None, "\n".join(lines)
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.2)
        url = next(line for line in lines if line.startswith("record page: "))
        url = url.removeprefix("record page: ")
        assert url.startswith(f"http://127.0.0.1:{port}/runs/R-") and url.endswith("/record")
        time.sleep(0.5)
        assert lines[-1].startswith("record page: "), lines[-3:]  # nothing after it
        page = httpx.get(url, follow_redirects=False, timeout=10)
        assert page.status_code == 303
        run_path = url.removeprefix(f"http://127.0.0.1:{port}")
        assert page.headers["location"] == f"/login?next={run_path}"
        public = httpx.get(f"http://127.0.0.1:{port}/verify", timeout=10)
        assert public.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(5)
