"""The end of ``rio demo``: two officers and the technician sign, the record closes, the archive
is exported and verified offline, as an auditor would."""

from __future__ import annotations

from pathlib import Path

from orchestrator.context import Rio
from orchestrator.record.archive import export_archive
from orchestrator.record.assemble import assemble_record
from orchestrator.record.dsse import Ed25519Signer
from orchestrator.record.signoff import close, sign_record, signoff_status
from orchestrator.record.trust import export_trust
from orchestrator.terminal import console

__all__ = ["sign_close_archive_verify"]


def sign_close_archive_verify(rio: Rio, run_id: str, keys: Path) -> bool:
    """Returns the audit verdict of the exported archive."""
    from orchestrator.audit.verify import load_trusted_keys, verify_archive
    from orchestrator.demo.walkthrough import DEMO_OFFICERS, DEMO_TECHNICIAN

    now = rio.clock.now
    record = assemble_record(rio.db, run_id, checkpoint_key=rio.verify_key, now=now())
    console.print(f"record {run_id} version {record.version} assembled")
    for name in (*DEMO_OFFICERS, DEMO_TECHNICIAN):
        signer = Ed25519Signer.from_file(keys / f"{name}.key")
        sign_record(rio.db, run_id, name=name, signer=signer, now=now())
        console.print(f"  signed by {name}")
    status = signoff_status(rio.db, run_id)
    console.print(f"sign-off: {status.why}")
    close(rio.db, run_id, now=now())
    console.print(f"record {run_id} closed")
    out = rio.settings.home / "archives" / f"{run_id}.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = export_archive(rio.db, run_id, out, signing_key=rio.signing_key, now=now())
    console.print(f"archive {out} (sha256 {summary.sha256[:16]}...)")
    # The auditor's side: the organ hands out its trusted-keys file, the auditor verifies
    # the archive against it (not against the keys the archive carries).
    trusted_file = rio.settings.home / "trusted-keys.json"
    export_trust(rio.db, rio.verify_key, trusted_file, now=now())
    console.print(f"trusted keys {trusted_file} (rio keys export-trust)")
    report = verify_archive(out, trusted_keys=load_trusted_keys(trusted_file), now=now())
    for check in report.checks:
        console.print(
            f"  {'ok  ' if check.ok else 'FAIL'} {check.name:22} {check.detail}", markup=False
        )
    console.print(
        f"audit verify: {'PASS' if report else 'FAIL'} ({report.verdict}; offline, from the "
        "archive and the trusted-keys file)"
    )
    return bool(report)
