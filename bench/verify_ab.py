"""A/B of ``verify_log`` against the ledger code of another git revision, in ONE process.

``python -m bench.verify_ab [--baseline REV] [--rounds N] [--leaves N]``

The baseline's ``orchestrator/ledger/{merkle,leaves,verify}.py`` are read with ``git show``
and loaded under another package name beside the working tree's; both verify the same
in-memory log (intent/outcome pairs shaped like figure 6's, a signed checkpoint every 1000
leaves as :class:`~orchestrator.ledger.log.ProbeLog` cuts them), alternating A and B round by
round so that load on the machine falls on both alike. Rates are CPU leaves per second
(``time.process_time``): on a shared machine wall time measures the neighbours. Both sides
must return the same verdict, or the script stops.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bench.ledger import _intent, _outcome
from orchestrator.ledger import verify as current
from orchestrator.ledger.checkpoint import Checkpoint, run_origin, sign_checkpoint
from orchestrator.ledger.leaves import make_leaf
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME
from orchestrator.ledger.merkle import MerkleAccumulator, leaf_hash

__all__ = ["load_baseline", "main", "sample_log"]

_REPO = Path(__file__).resolve().parent.parent
_MODULES = ("merkle", "leaves", "verify")  # in import order
_ALIAS = "_verify_ab_baseline"
_RUN = "R-bench-0a0b0c0d"
_T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)

Verify = Callable[[str, Sequence[bytes], Sequence[str], Ed25519PublicKey], Any]


def load_baseline(rev: str) -> Verify:
    """``verify_log`` as of git revision ``rev``, loaded beside the working tree's."""
    package = types.ModuleType(_ALIAS)
    package.__path__ = []
    sys.modules[_ALIAS] = package
    for name in _MODULES:
        source = subprocess.run(
            ["git", "-C", str(_REPO), "show", f"{rev}:orchestrator/ledger/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for other in _MODULES:
            source = source.replace(f"orchestrator.ledger.{other} ", f"{_ALIAS}.{other} ")
        module = types.ModuleType(f"{_ALIAS}.{name}")
        module.__file__ = f"{rev}:orchestrator/ledger/{name}.py"
        sys.modules[module.__name__] = module  # dataclasses and msgspec look themselves up
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        setattr(package, name, module)
    verify_log: Verify = sys.modules[f"{_ALIAS}.verify"].verify_log
    return verify_log


def sample_log(leaves: int, key: Ed25519PrivateKey) -> tuple[list[bytes], list[str]]:
    """``leaves`` leaves of intent/outcome pairs and a signed checkpoint every 1000 + the last."""
    out: list[bytes] = []
    notes: list[str] = []
    tree = MerkleAccumulator()
    for n in range(leaves):
        at = _T0 + timedelta(microseconds=37 * n)
        if n % 2 == 0:
            raw = make_leaf(_RUN, n, "intent", at, _intent(n // 2))
        else:
            raw = make_leaf(_RUN, n, "outcome", at, _outcome(n - 1))
        out.append(raw)
        tree.append(leaf_hash(raw))
        if (n + 1) % 1000 == 0 or n + 1 == leaves:
            cp = Checkpoint(origin=run_origin(_RUN), size=n + 1, root=tree.root())
            notes.append(sign_checkpoint(cp, key, CHECKPOINT_KEY_NAME))
    return out, notes


def _cpu_rate(
    verify: Verify, leaves: list[bytes], notes: list[str], key: Ed25519PublicKey
) -> tuple[float, Any]:
    started = time.process_time()
    verdict = verify(_RUN, leaves, notes, key)
    return len(leaves) / (time.process_time() - started), verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_ab", description=__doc__)
    parser.add_argument("--baseline", default="main", help="git revision for A (default main)")
    parser.add_argument("--rounds", type=int, default=7, help="A/B rounds, 1..50 (default 7)")
    parser.add_argument("--leaves", type=int, default=40_960, help="leaves per log (<= 400k)")
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 50))
    size = max(2, min(args.leaves, 400_000))
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    leaves, notes = sample_log(size, key)
    sides: dict[str, Verify] = {
        f"A {args.baseline}": load_baseline(args.baseline),
        "B working tree": current.verify_log,
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        verdicts = []
        for name, verify in sides.items():
            rate, verdict = _cpu_rate(verify, leaves, notes, key.public_key())
            rates[name].append(rate)
            verdicts.append((verdict.ok, verdict.size, verdict.root, verdict.problems))
        if verdicts[0] != verdicts[1] or not verdicts[1][0]:
            print(f"verdicts differ or fail: {verdicts}", file=sys.stderr)
            return 1
    print(f"{size} leaves, {len(notes)} checkpoints, {rounds} rounds (CPU leaves/s, median)")
    a, b = (statistics.median(r) for r in rates.values())
    for name, r in rates.items():
        med = statistics.median(r)
        spread = f"min {min(r):,.0f} max {max(r):,.0f}"
        print(f"  {name:24s} {med:10,.0f}  ({1e6 / med:.2f} us/leaf; {spread})")
    ratios = [y / x for x, y in zip(*rates.values(), strict=True)]
    print(f"  B/A {b / a:.3f} (per-round ratios {min(ratios):.3f}..{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
