"""The README's "Using rio" block runs as written, so it cannot drift from the program.

The block is taken from README.md itself (the first ``sh`` fence under "## Using rio") and run
by bash, unchanged, in a temporary folder that holds what a checkout holds: ``scopes/`` and
``policies/`` (links to this checkout's) and ``.venv/bin/activate``. The only stand-in is that
activate script: it puts a ``rio`` that runs this checkout's code first on PATH (the test may run
from any interpreter). The web server the README asks the reader to start
(``python3 -m http.server 8080 --bind 127.0.19.1``) is started by the test, on that loopback
address, which is the one ``scopes/loopback.yaml`` announces: every probe stays on loopback.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADDRESS, PORT = "127.0.19.1", 8080


def using_rio_block() -> str:
    """The shell block of the README's "Using rio" section, exactly as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Using rio\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0] + "\n"


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain web server on the README's loopback address (waits a while if it is taken)."""
    docroot = tmp_path / "www"
    docroot.mkdir()
    (docroot / "index.html").write_text("<h1>hello</h1>\n")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(docroot))
    deadline = time.monotonic() + 60
    while True:
        try:
            server = ThreadingHTTPServer((ADDRESS, PORT), handler)
            break
        except OSError as exc:
            # Another test session may be running this test right now: wait for it, bounded.
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{ADDRESS}:{PORT}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _checkout_like_folder(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    for name in ("scopes", "policies"):
        (work / name).symlink_to(ROOT / name)
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    rio = bin_dir / "rio"
    rio.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m orchestrator.interfaces.cli "$@"\n'
    )
    rio.chmod(0o755)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\nexport PATH\n')
    return work


def test_readme_block_is_a_script_of_rio_commands() -> None:
    block = using_rio_block()
    assert block.startswith("set -e\n. .venv/bin/activate\n")
    assert "rio record close" in block and "rio audit verify" in block


@pytest.mark.slow
def test_readme_using_rio_block_runs_as_written(tmp_path: Path, web_server: str) -> None:
    if shutil.which("nmap") is None and not os.environ.get("RIO_NMAP"):
        if os.environ.get("RIO_REQUIRE_SERVICES") == "1":
            pytest.fail("nmap is not installed (the README's run has a port probe)")
        pytest.skip("nmap is not installed (the README's run has a port probe)")
    work = _checkout_like_folder(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env["RIO_HOME"] = str(tmp_path / "home")
    if os.environ.get("RIO_NMAP"):
        env["RIO_NMAP"] = os.environ["RIO_NMAP"]
    script = work / "using-rio.sh"
    script.write_text(using_rio_block())
    proc = subprocess.run(
        ["bash", str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, (
        f"README block failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    out = proc.stdout
    assert "audit verify: PASS" in out or ": verified" in out
    assert "closed: officers li, wang; technicians zhang" in out
    assert (work / "report.html").is_file() and (work / "scope.schema.json").is_file()
    assert (work / "keys" / "li.key").stat().st_mode & 0o777 == 0o600
    tars = list(work.glob("R-*.tar"))
    assert len(tars) == 1
