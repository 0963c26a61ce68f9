"""The demo's real run in the pages: an auditor opens its audit page and sees every check pass;
the public check answers for the demo's source address at the time the run probed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.context import Rio
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair, load_public_key
from orchestrator.settings import load_settings
from orchestrator.store.models import RunRow
from tests.web.conftest import Served

pytestmark = [pytest.mark.slow, pytest.mark.nmap]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo") / "home"
    env = {**os.environ, "RIO_HOME": str(home)}
    env.pop("RIO_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.interfaces.cli", "demo", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "audit verify: PASS" in done.stdout
    return home


@pytest.fixture
def demo(demo_home: Path, tmp_path: Path) -> Iterator[tuple[Rio, str, Path]]:
    rio = Rio(load_settings({"RIO_HOME": str(demo_home)}))
    auditor_key = tmp_path / "auditor.key"
    generate_keypair(auditor_key, auditor_key.with_suffix(".pub"))
    name = f"auditor-{secrets.token_hex(3)}"  # the demo home is shared by this module
    with rio.db.session() as s:
        registry.add_person(s, name, registry.Role.AUDITOR, "Audit Office", now=rio.clock.now())
        registry.add_key(
            s, name, load_public_key(auditor_key.with_suffix(".pub")), now=rio.clock.now()
        )
        run_id = s.scalars(select(RunRow.id)).one()
    try:
        yield rio, run_id, auditor_key
    finally:
        rio.close()


def test_auditor_sees_every_check_of_the_demo_archive_pass(
    browser: Any, demo: tuple[Rio, str, Path], artefacts: Path
) -> None:
    rio, run_id, key = demo
    served = Served(rio)
    try:
        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        page.goto(f"{served.url}/login?next=/runs/{run_id}/audit")
        page.set_input_files("#key-file", str(key))
        page.click("#login-button")
        page.wait_for_url(f"**/runs/{run_id}/audit", timeout=30000)
        page.wait_for_selector("#verdict", timeout=30000)
        page.screenshot(path=str(artefacts / "demo-audit.png"), full_page=True)
        assert page.inner_text("#verdict").startswith("PASS")
        results = page.locator("#checks td:nth-child(2)").all_inner_texts()
        assert len(results) == 15 and set(results) == {"ok"}
        # The leaf list filters: the demo's TLS probes only, their intents and outcomes.
        page.fill("#filter-probe", "tls")
        page.click("#filter-button")
        page.wait_for_url("**probe=tls**", timeout=30000)
        probes = page.locator("#leaves td:nth-child(5)").all_inner_texts()
        kinds = set(page.locator("#leaves td:nth-child(3)").all_inner_texts())
        assert probes and set(probes) == {"tls"}, probes
        assert kinds == {"intent", "outcome"}, kinds
        page.screenshot(path=str(artefacts / "demo-audit-tls.png"), full_page=True)
    finally:
        served.stop()


def test_public_check_answers_for_the_demo_source_address(
    browser: Any, demo: tuple[Rio, str, Path], artefacts: Path
) -> None:
    rio, run_id, _ = demo
    with rio.db.session() as s:
        run = s.get(RunRow, run_id)
        assert run is not None and run.started_at is not None
        at = run.started_at.isoformat()
    served = Served(rio)
    try:
        page = browser.new_context().new_page()
        page.goto(f"{served.url}/verify?source=127.0.0.1&at={at.replace('+', '%2B')}")
        page.wait_for_selector("#answer", timeout=15000)
        page.screenshot(path=str(artefacts / "demo-public-check.png"), full_page=True)
        assert "Yes: announced" in page.inner_text("#answer")
        assert "Runs of the notice active then: 1" in page.inner_text("#answer")
    finally:
        served.stop()
