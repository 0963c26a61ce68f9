"""The access lab: a fresh SQLite home with two vendors, every role, runs and sealed evidence.

Built only through rio's own code (``init_home``, the registry, ``announce``, ``create_run``,
``cipher_for``); nothing is mocked. Other test modules build it with :func:`build_lab`; the two
tests here check the lab itself, so a broken fixture fails loudly in one obvious place.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from orchestrator.access.identity import authenticate
from orchestrator.context import Rio, init_home
from orchestrator.intake import registry
from orchestrator.intake.keys import generate_keypair, load_public_key
from orchestrator.intake.notices import announce
from orchestrator.intake.registry import Person, Role
from orchestrator.record.archive import ARCHIVE_FORMAT, MANIFEST_PAYLOAD_TYPE
from orchestrator.record.dsse import Envelope, sign_payload
from orchestrator.run.runs import create_run
from orchestrator.settings import load_settings
from orchestrator.store.evidence import cipher_for
from orchestrator.store.models import FindingRow, RecordRow, RunKeyRow

REPO = Path(__file__).resolve().parents[2]
SCOPE = REPO / "scopes" / "demo-loopback.yaml"
POLICY = REPO / "policies" / "demo.yaml"
SENTINEL = b"SENTINEL-EVIDENCE-admin-panel-password-hunter2-7f3a9c"
VENDOR_A, VENDOR_B = "acme-sec", "beta-sec"
ANNOUNCED_AT = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
RUN_A_AT = datetime(2026, 9, 2, 2, 0, tzinfo=UTC)
RUN_B_AT = datetime(2026, 9, 10, 2, 0, tzinfo=UTC)

PEOPLE: dict[str, tuple[Role, str | None]] = {
    "officer-a": (Role.OFFICER, None),
    "officer-b": (Role.OFFICER, None),
    "tech-a": (Role.TECHNICIAN, VENDOR_A),
    "tech-b": (Role.TECHNICIAN, VENDOR_B),
    "auditor-u": (Role.AUDITOR, None),
    "admin-m": (Role.ADMIN, None),
}


@dataclass
class Lab:
    """An initialised home: people with keys, notices for vendors A, B and none, two runs."""

    home: Path
    rio: Rio
    notice_a: str
    notice_b: str
    notice_none: str
    run_a: str
    run_b: str
    keys: dict[str, Path] = field(default_factory=dict)
    findings: dict[str, list[str]] = field(default_factory=dict)

    def person(self, name: str) -> Person:
        with self.rio.db.session() as s:
            return registry.get_person(s, name)

    def login(self, name: str) -> Person:
        return authenticate(self.rio, self.keys[name], claimed=name)

    def evidence_blob(self, finding_id: str) -> bytes | None:
        with self.rio.db.session() as s:
            row = s.get(FindingRow, finding_id)
            assert row is not None
            return None if row.evidence is None else bytes(row.evidence)

    def set_evidence_blob(self, finding_id: str, blob: bytes | None) -> None:
        with self.rio.db.session() as s:
            row = s.get(FindingRow, finding_id)
            assert row is not None
            row.evidence = blob

    def close_record(self, run_id: str, *, closed: bool = True) -> bytes:
        body = json.dumps({"format": "rio.record/v1", "run": run_id, "version": 1}).encode()
        with self.rio.db.session() as s:
            s.add(
                RecordRow(
                    run_id=run_id,
                    version=1,
                    body=body,
                    created_at=RUN_B_AT,
                    closed_at=RUN_B_AT if closed else None,
                )
            )
        return body

    def write_archive(
        self,
        run_id: str,
        record: bytes,
        out: Path,
        *,
        tamper: bool = False,
        signer: object | None = None,
        manifest_run: str | None = None,
    ) -> Path:
        """A minimal archive in the documented format (manifest, its signature, members)."""
        body = [("notice.json", b"{}"), ("record.json", record)]
        manifest = json.dumps(
            {
                "format": ARCHIVE_FORMAT,
                "run": manifest_run or run_id,
                "files": [
                    {"name": n, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                    for n, d in body
                ],
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        key = signer if signer is not None else self.rio.signing_key
        sig = sign_payload(MANIFEST_PAYLOAD_TYPE, manifest, key)  # type: ignore[arg-type]
        envelope = Envelope(payload_type=MANIFEST_PAYLOAD_TYPE, payload=manifest, signatures=(sig,))
        if tamper:
            body[0] = ("notice.json", b'{"x":1}')
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in [
                ("manifest.json", manifest),
                ("manifest.sig", envelope.dumps()),
                *body,
            ]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        out.write_bytes(buffer.getvalue())
        return out


def _seal_findings(rio: Rio, run_id: str, count: int) -> list[str]:
    ids: list[str] = []
    with rio.db.session() as s:
        cipher = cipher_for(rio, s)
        cipher.ensure_key(run_id)
        for n in range(1, count + 1):
            fid = f"{run_id}-F{n}"
            s.add(
                FindingRow(
                    id=fid,
                    key=fid,
                    run_id=run_id,
                    leaf_seq=n,
                    rule="RIO-PORT-TELNET",
                    title="telnet open",
                    severity="high",
                    kind="risk",
                    probe="port",
                    target="127.0.10.0/27",
                    ip="127.0.10.5",
                    port=23,
                    transport="tcp",
                    digest=hashlib.sha256(fid.encode()).hexdigest(),
                    remediation="close port 23",
                    refs=[],
                    sightings=[],
                    evidence=cipher.seal(
                        run_id,
                        SENTINEL + fid.encode(),
                        table="findings",
                        row=fid,
                        column="evidence",
                    ),
                )
            )
            ids.append(fid)
    return ids


def copy_lab(template: Lab, tmp_path: Path) -> Lab:
    """A fresh, independent copy of a closed template lab (much faster than building one).

    The copy keeps file modes (private and master keys stay 0600).
    """
    shutil.copytree(template.home, tmp_path / "home")
    shutil.copytree(template.keys[next(iter(template.keys))].parent, tmp_path / "keys")
    rio = Rio(load_settings({"RIO_HOME": str(tmp_path / "home")}))
    return replace(
        template,
        home=tmp_path / "home",
        rio=rio,
        keys={name: tmp_path / "keys" / path.name for name, path in template.keys.items()},
        findings={run: list(ids) for run, ids in template.findings.items()},
    )


def build_lab(tmp_path: Path) -> Lab:
    home = tmp_path / "home"
    settings = load_settings({"RIO_HOME": str(home)})
    init_home(settings)
    rio = Rio(settings)
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    keys: dict[str, Path] = {}
    with rio.db.session() as s:
        registry.add_vendor(s, VENDOR_A, "Acme Security Ltd", now=rio.clock.now())
        registry.add_vendor(s, VENDOR_B, "Beta Security Ltd", now=rio.clock.now())
        for name, (role, vendor) in PEOPLE.items():
            registry.add_person(s, name, role, "" if vendor else "PSB", vendor, now=rio.clock.now())
            private, public = key_dir / f"{name}.key", key_dir / f"{name}.pub"
            generate_keypair(private, public)
            registry.add_key(s, name, load_public_key(public), now=rio.clock.now())
            keys[name] = private
        notices = {
            vendor: announce(
                s,
                scope_bytes=SCOPE.read_bytes(),
                scope_name="scopes/demo-loopback.yaml",
                policy_bytes=POLICY.read_bytes(),
                policy_name="policies/demo.yaml",
                vendor=vendor,
                now=ANNOUNCED_AT,
            ).id
            for vendor in (VENDOR_A, VENDOR_B, None)
        }
        run_a = create_run(s, notices[VENDOR_A], "tech-a", now=RUN_A_AT).id
        run_b = create_run(s, notices[VENDOR_B], "tech-b", now=RUN_B_AT).id
    lab = Lab(
        home=home,
        rio=rio,
        notice_a=notices[VENDOR_A],
        notice_b=notices[VENDOR_B],
        notice_none=notices[None],
        run_a=run_a,
        run_b=run_b,
        keys=keys,
    )
    lab.findings[run_a] = _seal_findings(rio, run_a, 2)
    lab.findings[run_b] = _seal_findings(rio, run_b, 1)
    return lab


def test_lab_stores_evidence_only_as_ciphertext(tmp_path: Path) -> None:
    lab = build_lab(tmp_path)
    try:
        for ids in lab.findings.values():
            for fid in ids:
                blob = lab.evidence_blob(fid)
                assert blob is not None and SENTINEL not in blob
        for db_file in lab.home.glob("rio.db*"):  # the database and its WAL
            assert SENTINEL not in db_file.read_bytes()
    finally:
        lab.rio.close()


def test_lab_gives_every_run_a_wrapped_data_key(tmp_path: Path) -> None:
    lab = build_lab(tmp_path)
    try:
        with lab.rio.db.session() as s:
            assert set(s.scalars(select(RunKeyRow.run_id))) == {lab.run_a, lab.run_b}
    finally:
        lab.rio.close()
