"""The archive format does not drift: a run built by rio's own code paths exports byte for byte
the archive checked in as ``tests/record/golden/archive.tar``.

The build (``tests/record/golden_archive.py``) fixes every input - keys, clocks, ids, resolver
answers, probe answers - so nothing is masked: any byte that changes in any member (a leaf
body's key, a number's type, a header of the tar, a signature) fails this test. A change of
the format that is MEANT regenerates the file, and the commit says why::

    .venv/bin/python -m tests.record.golden_archive tests/record/golden/archive.tar
"""

from __future__ import annotations

import difflib
import io
import json
import tarfile
from datetime import timedelta
from pathlib import Path

from orchestrator.audit.verify import verify_archive
from orchestrator.intake.keys import key_id

from .golden_archive import GOLDEN, RUN_START, build_golden_archive, orchestrator_key


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        out: dict[str, bytes] = {}
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
        return out


def _first_difference(golden: bytes, built: bytes) -> str:
    """Which member differs and how, in lines a reader can act on."""
    want, got = _members(golden), _members(built)
    if list(want) != list(got):
        return f"members differ: {list(want)} != {list(got)}"
    # The manifest and its signature change with any member: name the member itself first.
    for name in sorted(want, key=lambda n: n.startswith("manifest.")):
        if want[name] != got[name]:
            a = want[name].decode().replace("},{", "},\n{").splitlines()
            b = got[name].decode().replace("},{", "},\n{").splitlines()
            diff = difflib.unified_diff(a, b, f"golden/{name}", f"built/{name}", lineterm="", n=0)
            return "\n".join(list(diff)[:40])
    return "members are equal: the tar headers or padding differ"


def test_an_archive_exported_today_is_byte_identical_to_the_golden_one(tmp_path: Path) -> None:
    built = build_golden_archive(tmp_path, tmp_path / "archive.tar").read_bytes()
    golden = GOLDEN.read_bytes()
    assert built == golden, (
        "the archive format changed; if that is intended, regenerate "
        "(.venv/bin/python -m tests.record.golden_archive tests/record/golden/archive.tar):\n"
        + _first_difference(golden, built)
    )


def test_the_golden_archive_holds_every_leaf_kind_the_run_writes_and_verifies() -> None:
    members = _members(GOLDEN.read_bytes())
    leaves = [json.loads(line) for line in members["ledger/leaves.jsonl"].splitlines()]
    kinds = {leaf["kind"] for leaf in leaves}
    assert kinds == {"state", "intent", "refusal", "outcome", "health"}
    outcomes = {leaf["data"]["outcome"] for leaf in leaves if leaf["kind"] == "outcome"}
    assert outcomes == {"ok", "error", "timeout"}
    assert any(leaf["data"]["resolution"] for leaf in leaves if leaf["kind"] == "intent")
    assert any(leaf["data"]["findings"] for leaf in leaves if leaf["kind"] == "outcome")
    # Trusted as an auditor would: the key id of the build's own orchestrator key, not the
    # one the archive carries.
    audited = RUN_START + timedelta(days=1)  # a fixed time: the verdict never depends on today
    report = verify_archive(
        GOLDEN, trusted_key_id=key_id(orchestrator_key().public_key()), now=audited
    )
    assert report, [c for c in report.checks if not c]
