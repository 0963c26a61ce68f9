"""verify_log's batch path changes nothing but speed: with it and without it (every leaf through
the exact parser), the same log gets the same verdict, problem for problem, however it was
tampered with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.ledger import verify as verify_mod
from orchestrator.ledger.bodies import IntentBody, Outcome, OutcomeBody, StateBody
from orchestrator.ledger.checkpoint import Checkpoint, run_origin, sign_checkpoint
from orchestrator.ledger.leaves import Leaf, make_leaf, parse_leaf_exact
from orchestrator.ledger.log import CHECKPOINT_KEY_NAME
from orchestrator.ledger.merkle import root_from_leaves
from orchestrator.ledger.verify import LogVerdict, verify_log

RUN = "R-20261130-fa5700"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def _log(pairs: int, health_at: int | None) -> list[bytes]:
    """started, ``pairs`` intent/outcome pairs (a health leaf after pair ``health_at``), completed."""

    def leaf(kind: str, data: dict[str, Any]) -> bytes:
        seq = len(leaves)
        return make_leaf(RUN, seq, kind, T0 + timedelta(microseconds=137 * seq), data)

    leaves: list[bytes] = []
    leaves.append(leaf("state", StateBody(state="running", reason="started").to_json()))
    for item in range(pairs):
        intent = len(leaves)
        ip = f"127.0.0.{item % 7 + 1}"
        leaves.append(
            leaf(
                "intent",
                IntentBody(
                    item=item,
                    probe="http",
                    target=f"cidr:{ip}/32",
                    ip=ip,
                    port=8080,
                    ports=(),
                    server_name=None,
                    cost=1,
                    deadline="2026-11-30T02:00:10+00:00",
                    max_rate=20,
                    resolution=None,
                ).to_json(),
            )
        )
        leaves.append(
            leaf(
                "outcome",
                OutcomeBody(
                    intent=intent,
                    outcome=Outcome.OK,
                    elapsed_us=900,
                    connections=1,
                    evidence_digest=None,
                    findings=(),
                    sent_at=None,
                    error=None,
                ).to_json(),
            )
        )
        if item == health_at:
            leaves.append(
                leaf(
                    "health",
                    {
                        "ip": ip,
                        "state": "throttled",
                        "factor": 0.5,
                        "until": None,
                        "reason": "latency",
                    },
                )
            )
    leaves.append(leaf("state", StateBody(state="completed", reason=None).to_json()))
    return leaves


def _notes(leaves: list[bytes], sizes: list[int]) -> list[str]:
    notes = []
    for size in sizes:
        _, root = root_from_leaves(leaves[:size])
        notes.append(
            sign_checkpoint(
                Checkpoint(origin=run_origin(RUN), size=size, root=root), KEY, CHECKPOINT_KEY_NAME
            )
        )
    return notes


def _slow_verify(
    leaves: list[bytes], notes: list[str], monkeypatch: pytest.MonkeyPatch
) -> LogVerdict:
    """verify_log with both fast paths off: every leaf through parse_leaf_exact."""

    def exact(raw: bytes, *, source: str = "leaf") -> Leaf:
        return parse_leaf_exact(raw, source)

    with monkeypatch.context() as m:
        m.setattr(verify_mod, "batch_leaves", lambda batch: [None] * len(batch))
        m.setattr(verify_mod, "parse_leaf", exact)
        return verify_log(RUN, iter(leaves), notes, KEY.public_key())


_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "drop", "swap", "dup", "seq", "run", "spell", "orphan"]),
        st.integers(min_value=0),
        st.integers(min_value=0, max_value=255),
    ),
    max_size=3,
)


def _edit(leaves: list[bytes], edits: list[tuple[str, int, int]]) -> list[bytes]:
    out = list(leaves)
    for how, where, byte in edits:
        if not out:
            break
        i = where % len(out)
        raw = out[i]
        if how == "flip":
            j = byte % len(raw)
            out[i] = raw[:j] + bytes([raw[j] ^ (byte or 1)]) + raw[j + 1 :]
        elif how == "drop":
            del out[i]
        elif how == "swap" and i + 1 < len(out):
            out[i], out[i + 1] = out[i + 1], out[i]
        elif how == "dup":
            out.insert(i, raw)
        elif how == "seq":
            out[i] = raw.replace(b'"seq":', b'"seq":9', 1)
        elif how == "run":
            out[i] = raw.replace(RUN.encode(), b"R-20261130-000000", 1)
        elif how == "spell":  # the same content in another JSON spelling
            out[i] = raw.replace(b'"v":1}', b'"v":1 }', 1)
        elif how == "orphan":
            out[i] = raw.replace(b'"intent":', b'"intent":7', 1)
    return out


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pairs=st.integers(0, 700),
    health_at=st.none() | st.integers(0, 700),
    cuts=st.lists(st.integers(1, 1500), max_size=3),
    edits=_edits,
)
def test_a_log_gets_the_same_verdict_with_the_batch_path_and_without(
    pairs: int,
    health_at: int | None,
    cuts: list[int],
    edits: list[tuple[str, int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaves = _log(pairs, health_at)
    notes = _notes(leaves, sorted({min(c, len(leaves)) for c in cuts} | {len(leaves)}))
    tampered = _edit(leaves, edits)
    fast = verify_log(RUN, iter(tampered), notes, KEY.public_key())
    assert fast == _slow_verify(tampered, notes, monkeypatch)
    if not edits:
        assert fast.ok, fast
