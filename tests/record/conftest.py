"""A sealed run in a fresh SQLite home, built through rio's own registries, notices and ledger.

Nothing is mocked: ``init_home`` creates the database through the migrations and the
orchestrator key, people and keys go through the registry, the notice through ``announce``
(with the demo loopback scope and the demo policy), and the leaves through ``ProbeLog``, whose
``close`` writes the signed final checkpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.context import Rio, init_home
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair, load_public_key
from orchestrator.intake.notices import announce
from orchestrator.intake.registry import Role
from orchestrator.ledger.log import ProbeLog
from orchestrator.record.dsse import Ed25519Signer
from orchestrator.settings import load_settings
from orchestrator.store.models import FindingRow, RunRow

REPO = Path(__file__).resolve().parents[2]
SCOPE = REPO / "scopes" / "demo-loopback.yaml"
POLICY = REPO / "policies" / "demo.yaml"
VENDOR = "acme-sec"
OTHER_VENDOR = "other-sec"
ANNOUNCED_AT = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
RUN_START = datetime(2026, 9, 2, 2, 0, tzinfo=UTC)

# name -> (role, vendor, number of keys)
PEOPLE: dict[str, tuple[Role, str | None, int]] = {
    "officer-a": (Role.OFFICER, None, 2),
    "officer-b": (Role.OFFICER, None, 1),
    "officer-c": (Role.OFFICER, None, 1),
    "officer-x": (Role.OFFICER, None, 1),
    "tech-t": (Role.TECHNICIAN, VENDOR, 1),
    "tech-other": (Role.TECHNICIAN, OTHER_VENDOR, 1),
    "auditor-u": (Role.AUDITOR, None, 1),
    "admin-m": (Role.ADMIN, None, 1),
}
ORGANISATIONS = {"officer-x": "Other PSB"}
"""People of another organisation than the announcing organ (PSB)."""


@dataclass
class Lab:
    """An initialised rio home with people, keys, a notice and sealed runs."""

    home: Path
    rio: Rio
    notice_id: str
    run_id: str
    vendor: str | None
    key_files: dict[str, list[Path]] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        # Commands prove who runs them by a key: the lab's operator is the first officer.
        return {"RIO_HOME": str(self.home), "RIO_KEY_FILE": str(self.key_files["officer-a"][0])}

    def signer(self, name: str, index: int = 0) -> Ed25519Signer:
        return Ed25519Signer.from_file(self.key_files[name][index])

    def key_id(self, name: str, index: int = 0) -> str:
        return self.signer(name, index).keyid


def _finding(run_id: str, n: int, rule: str, port: int, leaf_seq: int) -> FindingRow:
    digest = hashlib.sha256(f"{run_id}/{rule}/{port}".encode()).hexdigest()
    return FindingRow(
        id=f"{run_id}-F{n}",
        # Stable across runs, as the runner's keys are: the same rule at the same place.
        key=f"{rule}:{port}",
        run_id=run_id,
        leaf_seq=leaf_seq,
        rule=rule,
        title=f"{rule} title",
        severity="high",
        kind="risk",
        probe="port",
        target="127.0.10.0/27",
        ip="127.0.10.5",
        port=port,
        transport="tcp",
        digest=digest,
        remediation=f"close port {port}",
        refs=[{"id": "MPS151-ART10-4"}],
        sightings=[
            {"leaf_seq": leaf_seq, "target": "127.0.10.0/27", "server_name": None, "digest": digest}
        ],
        evidence=None,
    )


async def _write_ledger(rio: Rio, run_id: str, ports: list[int], start: datetime) -> list[int]:
    log = ProbeLog(
        rio.db,
        run_id,
        rio.signing_key,
        checkpoint_every=1000,
        checkpoint_seconds=3600,
        clock=rio.clock,
    )
    t = start
    await log.append("state", {"state": "running", "reason": None}, at=t)
    outcome_seqs: list[int] = []
    for port in ports:
        t += timedelta(seconds=1)
        intent = await log.append(
            "intent",
            {
                "item": port,
                "probe": "port",
                "target": "127.0.10.0/27",
                "ip": "127.0.10.5",
                "port": port,
                "ports": [port],
                "server_name": None,
                "cost": 1,
                "deadline": None,
                "max_rate": 20,
                "resolution": None,
            },
            at=t,
        )
        t += timedelta(seconds=1)
        outcome_seqs.append(
            await log.append(
                "outcome",
                {
                    "intent": intent,
                    "outcome": "ok",
                    "elapsed": 0.1,
                    "connections": 1,
                    "evidence_digest": None,
                    "findings": [],
                },
                at=t,
            )
        )
    t += timedelta(seconds=1)
    await log.append(
        "refusal",
        {
            "request": {"target": "127.0.10.13"},
            "check": "scope",
            "reason": "excluded",
            "sentence": "127.0.10.13 is excluded",
            "at": None,
            "resolution": None,
        },
        at=t,
    )
    t += timedelta(seconds=1)
    await log.append("state", {"state": "completed", "reason": None}, at=t)
    await log.close()
    return outcome_seqs


def add_sealed_run(
    lab: Lab,
    run_id: str,
    rules: list[tuple[str, int]],
    *,
    recheck_of: int | None = None,
    start: datetime = RUN_START,
    state: str = "sealed",
) -> list[str]:
    """Add a run of the lab's notice, with a closed ledger and the given findings."""
    ports = [port for _, port in rules] or [22]
    with lab.rio.db.session() as s:
        tech = registry.get_person(s, "tech-t")
        vendor_id = registry.get_vendor(s, lab.vendor).id if lab.vendor is not None else None
        s.add(
            RunRow(
                id=run_id,
                notice_id=lab.notice_id,
                technician_id=tech.id,
                vendor_id=vendor_id,
                state="running",
                recheck_of=recheck_of,
                created_at=start,
                started_at=start,
                ended_at=start + timedelta(minutes=5),
                planned=len(ports),
                done=len(ports),
                refused=1,
                failed=0,
                cursor=len(ports),
            )
        )
    seqs = asyncio.run(_write_ledger(lab.rio, run_id, ports, start))
    ids: list[str] = []
    with lab.rio.db.session() as s:
        for n, ((rule, port), seq) in enumerate(zip(rules, seqs, strict=False), start=1):
            row = _finding(run_id, n, rule, port, seq)
            s.add(row)
            ids.append(row.id)
        run = s.get(RunRow, run_id)
        assert run is not None
        run.state = state
    lab.findings[run_id] = ids
    return ids


def build_lab(
    home: Path,
    *,
    vendor: str | None = VENDOR,
    scope_bytes: bytes | None = None,
    database_url: str | None = None,
) -> Lab:
    env = {"RIO_HOME": str(home)}
    if database_url is not None:
        env["RIO_DATABASE_URL"] = database_url
    settings = load_settings(env)
    init_home(settings)
    rio = Rio(settings)
    key_dir = home / "people-keys"
    key_dir.mkdir()
    key_files: dict[str, list[Path]] = {}
    with rio.db.session() as s:
        registry.add_vendor(s, VENDOR, "Acme Security Ltd", now=rio.clock.now())
        registry.add_vendor(s, OTHER_VENDOR, "Other Security Ltd", now=rio.clock.now())
        for name, (role, person_vendor, nkeys) in PEOPLE.items():
            organisation = ORGANISATIONS.get(name, "PSB" if person_vendor is None else "")
            registry.add_person(s, name, role, organisation, person_vendor, now=rio.clock.now())
            for i in range(nkeys):
                private, public = key_dir / f"{name}-{i}.key", key_dir / f"{name}-{i}.pub"
                generate_keypair(private, public)
                registry.add_key(s, name, load_public_key(public), now=rio.clock.now())
                key_files.setdefault(name, []).append(private)
        notice = announce(
            s,
            scope_bytes=SCOPE.read_bytes() if scope_bytes is None else scope_bytes,
            scope_name="scopes/demo-loopback.yaml",
            policy_bytes=POLICY.read_bytes(),
            policy_name="policies/demo.yaml",
            vendor=vendor,
            organ="PSB",
            now=ANNOUNCED_AT,
        )
    lab = Lab(
        home=home,
        rio=rio,
        notice_id=notice.id,
        run_id="R-20260902-a1",
        vendor=vendor,
        key_files=key_files,
    )
    add_sealed_run(lab, lab.run_id, [("RIO-PORT-TELNET", 23), ("RIO-PORT-FTP", 21)])
    return lab


@pytest.fixture(scope="session")
def _lab_template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """One lab built through the real code paths; each test gets a copy of its home."""
    built = build_lab(tmp_path_factory.mktemp("lab-template") / "home")
    built.rio.close()  # no open connection: the SQLite files are complete on disk
    return built


@pytest.fixture
def lab(_lab_template: Lab, tmp_path: Path) -> Iterator[Lab]:
    # Migrations and key generation take half a second; copying the finished home does not.
    home = tmp_path / "home"
    shutil.copytree(_lab_template.home, home)
    copy = Lab(
        home=home,
        rio=Rio(load_settings({"RIO_HOME": str(home)})),
        notice_id=_lab_template.notice_id,
        run_id=_lab_template.run_id,
        vendor=_lab_template.vendor,
        key_files={
            name: [home / p.relative_to(_lab_template.home) for p in files]
            for name, files in _lab_template.key_files.items()
        },
        findings={run: list(ids) for run, ids in _lab_template.findings.items()},
    )
    try:
        yield copy
    finally:
        copy.rio.close()


@pytest.fixture
def lab_without_vendor(tmp_path: Path) -> Iterator[Lab]:
    built = build_lab(tmp_path / "home", vendor=None)
    try:
        yield built
    finally:
        built.rio.close()
