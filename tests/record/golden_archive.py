"""A deterministic archive, built through rio's own code paths, for the golden-archive test.

Everything an archive depends on is fixed here: the orchestrator, master and people keys are
derived from fixed seeds (Ed25519 signatures are deterministic, RFC 8032), every clock is a
:class:`~orchestrator.clock.FakeClock` or an explicit ``now=``, the run and notice ids come from
a fixed ``secrets.token_hex``, the resolver is a stub that always answers the same, and the
probes go through a :class:`~orchestrator.run.executors.FakeExecutor` with scripted answers at
concurrency 1, so the real gate, runner, probe log, health breaker, record, sign-off and
archive export write every leaf kind (state, intent with and without a resolution, refusal,
outcome ok / error / timeout, health) exactly as they do in production. Nothing leaves the
process: the fake executor sends nothing, the stub resolver asks nobody.

One seam rio does not have yet is patched for the build only: ``secrets.token_hex`` (run and
notice ids). People and keys are registered at ``REGISTERED_AT``, passed as every time is.

Regenerate the golden file after an INTENDED format change (and say so in the commit)::

    .venv/bin/python -m tests.record.golden_archive tests/record/golden/archive.tar
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.clock import FakeClock
from orchestrator.context import Rio, init_home
from orchestrator.gate.resolve import Resolution, Resolver
from orchestrator.intake import registry
from orchestrator.intake.notices import announce
from orchestrator.intake.registry import Role
from orchestrator.record.archive import export_archive
from orchestrator.record.assemble import assemble_record
from orchestrator.record.dsse import Ed25519Signer
from orchestrator.record.signoff import close, sign_record
from orchestrator.run.executors import FakeExecutor
from orchestrator.run.runner import Runner
from orchestrator.run.runs import create_run
from orchestrator.settings import load_settings
from probes.base import Observation, Permit, ProbeResult

__all__ = ["GOLDEN", "build_golden_archive", "orchestrator_key"]

GOLDEN = Path(__file__).with_name("golden") / "archive.tar"

ANNOUNCED_AT = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
REGISTERED_AT = datetime(2026, 8, 31, 9, 0, tzinfo=UTC)
RUN_START = datetime(2026, 9, 2, 2, 0, tzinfo=UTC)
VENDOR = "golden-sec"
NETWORK = "127.0.77.0/29"

SCOPE = f"""format: rio.scope/v1
object:
  id: golden-isp
  name: Golden Loopback ISP (lab)
  services: [idc]
contact:
  name: Golden NOC
targets:
  - cidr: {NETWORK}
  - host: www.golden.test
  - host: out.golden.test
excludes:
  - ip: 127.0.77.6
windows:
  - start: 2026-09-01T00:00:00
    end: 2026-09-30T00:00:00
    timezone: UTC
sources: [127.0.0.1]
""".encode()

POLICY = b"""format: rio.policy/v1
name: golden
description: Golden-archive lab. Never use against real networks.
timezone: Asia/Shanghai
min_notice_lead: 2s
windows:
  - days: [mon, tue, wed, thu, fri, sat, sun]
    start: "00:00"
    end: "24:00"
blackouts: []
rates:
  per_ip: 20
  per_network: 200
  per_notice: 200
  global: 400
concurrency: 1
probe_timeout: 10s
max_disruption: light
probes:
  http:
    ports: [8080, 8081, 8082]
    https_ports: []
    paths: ["/"]
    method: GET
    max_body: 65536
    timeout: 5s
health:
  consecutive_failures: 3
  latency_factor: 10
  cooldown: 5s
signoff:
  officers: 2
  technicians: 1
"""

PEOPLE = (
    ("officer-a", Role.OFFICER, None),
    ("officer-b", Role.OFFICER, None),
    ("tech-t", Role.TECHNICIAN, VENDOR),
)

_ANSWERS = {
    # address -> what the fake executor answers for every probe to it
    "127.0.77.1": "banner",
    "127.0.77.2": "ok",
    "127.0.77.3": "error",
    "127.0.77.4": "timeout",
    "127.0.77.5": "slow",
}


def _private(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def orchestrator_key() -> Ed25519PrivateKey:
    """The golden home's orchestrator key (signs checkpoints and the manifest)."""
    return _private("golden orchestrator")


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class _StubResolver(Resolver):
    """Answers from a fixed table, asks no server (``out.golden.test`` lies outside the scope)."""

    _TABLE = {"www.golden.test": ("127.0.77.2",), "out.golden.test": ("127.0.99.9",)}

    def __init__(self) -> None:
        super().__init__(["127.0.0.1"], port=9, timeout=0.5)

    async def resolve(self, name: str) -> Resolution:
        return Resolution(
            name=name,
            addresses=self._TABLE[name],
            cname_chain=(),
            nameserver="127.0.0.1",
            answered_at=RUN_START,
        )


def _answerer(clock: FakeClock) -> Callable[[Permit], ProbeResult]:
    """The fake executor's answers; every probe takes a quarter of a second on the fake clock
    (concurrency 1 makes the order of answers, so of clock moves, the plan's)."""

    def answer(permit: Permit) -> ProbeResult:
        clock.advance(0.25)
        return _answer(permit)

    return answer


def _answer(permit: Permit) -> ProbeResult:
    kind = _ANSWERS[permit.ip]
    if kind == "banner":
        return ProbeResult(
            probe=permit.probe,
            ip=permit.ip,
            outcome="ok",
            connections=1,
            elapsed=0.004,
            latency=0.002,
            http_status=200,
            observations=(
                Observation(
                    key="http.banner",
                    value={"path": "/", "header": "server", "version": True},
                    port=permit.port,
                    evidence="nginx/1.18.0",
                ),
                Observation(
                    key="http.header.hsts",
                    value={"path": "/", "present": False},
                    port=permit.port,
                ),
            ),
        )
    if kind == "error":
        return ProbeResult(
            probe=permit.probe, ip=permit.ip, outcome="error", error="connection reset by peer"
        )
    if kind == "timeout":
        return ProbeResult(probe=permit.probe, ip=permit.ip, outcome="timeout", elapsed=5.0)
    # ok, and slow on its second port: the breaker throttles on latency
    latency = 0.9 if permit.port == 8081 else 0.002
    return ProbeResult(
        probe=permit.probe,
        ip=permit.ip,
        outcome="ok",
        connections=1,
        elapsed=latency + 0.001,
        latency=latency,
        http_status=200,
    )


@contextlib.contextmanager
def _fixed_ids() -> Iterator[None]:
    counter = itertools.count(0xA1)

    def token_hex(nbytes: int | None = None) -> str:
        return f"{next(counter):0{2 * (nbytes or 32)}x}"

    with (
        mock.patch("secrets.token_hex", token_hex),
        mock.patch(
            "orchestrator.store.crypto.new_data_key",
            lambda: hashlib.sha256(b"golden data key").digest(),
        ),
    ):
        yield


def build_golden_archive(workdir: Path, out: Path) -> Path:
    """Build the golden run in a fresh home under ``workdir`` and export its archive to ``out``."""
    home = workdir / "home"
    home.mkdir(parents=True)
    (home / "orchestrator.key").write_bytes(_pem(orchestrator_key()))
    (home / "orchestrator.key").chmod(0o600)
    master = base64.b64encode(hashlib.sha256(b"golden master").digest()).decode()
    settings = load_settings(
        {
            "RIO_HOME": str(home),
            "RIO_MASTER_KEY": master,
            "RIO_CHECKPOINT_EVERY": "16",
            "RIO_CHECKPOINT_SECONDS": "86400",
        }
    )
    with _fixed_ids():
        init_home(settings)
        clock = FakeClock(RUN_START)
        rio = Rio(settings, clock=clock)
        try:
            signers: dict[str, Ed25519Signer] = {}
            with rio.db.session() as s:
                registry.add_vendor(s, VENDOR, "Golden Security Ltd", now=REGISTERED_AT)
                for name, role, vendor in PEOPLE:
                    registry.add_person(
                        s, name, role, "PSB" if vendor is None else "", vendor, now=REGISTERED_AT
                    )
                    key = _private(f"golden {name}")
                    registry.add_key(s, name, key.public_key(), now=REGISTERED_AT)
                    signers[name] = Ed25519Signer(key)
                notice = announce(
                    s,
                    scope_bytes=SCOPE,
                    scope_name="scopes/golden.yaml",
                    policy_bytes=POLICY,
                    policy_name="policies/golden.yaml",
                    vendor=VENDOR,
                    organ="PSB",
                    now=ANNOUNCED_AT,
                )
                run_id = create_run(s, notice.id, "tech-t", now=RUN_START).id

            runner = Runner(
                rio,
                run_id,
                clock=clock,
                resolver=_StubResolver(),
                dns_port=9,
                poll_seconds=0.05,
                executor=FakeExecutor(_answerer(clock)),
            )
            asyncio.run(runner.execute())
            t = clock.now() + timedelta(minutes=5)
            assemble_record(rio.db, run_id, now=t)
            for n, name in enumerate(("officer-a", "officer-b", "tech-t"), start=1):
                sign_record(
                    rio.db, run_id, name=name, signer=signers[name], now=t + timedelta(minutes=n)
                )
            close(rio.db, run_id, now=t + timedelta(minutes=10))
            export_archive(
                rio.db, run_id, out, signing_key=rio.signing_key, now=t + timedelta(minutes=11)
            )
        finally:
            rio.close()
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else GOLDEN
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_golden_archive(Path(tmp), target)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
