"""Fixtures of the field lab (see :mod:`tests.integration.field.lab` for its API).

* ``field_lab`` (session): every server of :data:`~tests.integration.field.lab.SERVERS` running
  on a loopback block claimed for this test session. Where a server binary is missing (or not
  root), the tests that use it skip with the reason; under ``RIO_REQUIRE_SERVICES=1`` (CI) that
  is a failure instead.
* ``lab_rio``: the real ``rio`` command in a subprocess with its own ``RIO_HOME``, resolving
  names through the lab's BIND, as a user would run it.
* ``lab_people``: an initialised home with an administrator, two officers of one organ, a vendor
  and its technician, all with keys (the README's first steps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.field.lab import Lab, claim_block, unavailable

ROOT = Path(__file__).resolve().parents[3]
#: the inspecting side's mailbox in the lab (RIO_CONTACT): the From header of every HTTP probe
CONTACT = "soc@acme.test"
LabRio = Callable[..., subprocess.CompletedProcess[str]]


def require(reason: str | None) -> None:
    """Skip with ``reason`` (or fail under RIO_REQUIRE_SERVICES=1); nothing when ``None``."""
    if reason is None:
        return
    if os.environ.get("RIO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"RIO_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def field_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require(unavailable())
    block = claim_block()
    directory = tmp_path_factory.mktemp("field-lab")
    try:
        with Lab(block, directory) as lab:
            yield lab
    finally:
        block.release()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of one module's rio (its RIO_HOME is ``home/`` inside)."""
    return tmp_path_factory.mktemp("rio")


@pytest.fixture(scope="module")
def lab_rio(field_lab: Lab, lab_home: Path) -> LabRio:
    tmp_path = lab_home
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env["RIO_HOME"] = str(tmp_path / "home")
    env["RIO_DNS_NAMESERVERS"] = field_lab.ip("dns")
    env["RIO_CONTACT"] = CONTACT
    env["PYTHONPATH"] = str(ROOT)

    def run(
        *args: str, check: bool = True, key: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        call_env = dict(env)
        if key is not None:
            call_env["RIO_KEY_FILE"] = str(key)
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.interfaces.cli", *args],
            cwd=tmp_path,
            env=call_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"rio {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


@dataclass(frozen=True, kw_only=True, slots=True)
class People:
    """Key files of the registered people (``keys/NAME.key``)."""

    keys: Path

    def key(self, name: str) -> Path:
        return self.keys / f"{name}.key"


@pytest.fixture(scope="module")
def lab_people(lab_rio: LabRio, lab_home: Path) -> People:
    keys = lab_home / "keys"
    keys.mkdir()
    lab_rio("init")
    lab_rio("keys", "generate", "root", "--out", str(keys))
    lab_rio("person", "add", "root", "--role", "admin", "--organisation", "PSB",
            "--public-key", str(keys / "root.pub"))  # fmt: skip
    root = keys / "root.key"
    lab_rio("vendor", "add", "acme", "--organisation", "Acme Security", key=root)
    for name, role, extra in (
        ("li", "officer", ["--organisation", "PSB"]),
        ("wang", "officer", ["--organisation", "PSB"]),
        ("zhang", "technician", ["--vendor", "acme"]),
    ):
        lab_rio("keys", "generate", name, "--out", str(keys))
        lab_rio("person", "add", name, "--role", role, *extra,
                "--public-key", str(keys / f"{name}.pub"), key=root)  # fmt: skip
    return People(keys=keys)


@dataclass(frozen=True, kw_only=True, slots=True)
class Launched:
    """A notice announced and run through the CLI: ids and the run's printed summary."""

    notice: str
    run: str
    summary: str


def announce_and_run(
    lab_rio: LabRio, people: People, home: Path, *, scope: str, policy: str, name: str = "lab"
) -> Launched:
    """The README's steps: check both files, an officer announces, the technician runs it."""
    scope_path, policy_path = home / f"{name}-scope.yaml", home / f"{name}-policy.yaml"
    scope_path.write_text(scope)
    policy_path.write_text(policy)
    lab_rio("scope", "check", str(scope_path))
    lab_rio("policy", "check", str(policy_path))
    notice = lab_rio(
        "notice", "announce", "--scope", str(scope_path), "--policy", str(policy_path),
        "--vendor", "acme", key=people.key("li"),
    ).stdout.strip()  # fmt: skip
    time.sleep(2.2)  # the lab policy's 2 s lead time
    started = lab_rio("run", "start", notice, "--quiet", key=people.key("zhang"))
    return Launched(notice=notice, run=started.stdout.split()[1], summary=started.stdout)
