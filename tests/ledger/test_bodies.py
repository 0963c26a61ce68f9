"""Typed leaf bodies: the bytes of every leaf they build are the bytes the dict literals made."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.audit._leafchecks import OUTCOMES
from orchestrator.ledger.bodies import KillBody, Outcome, StateBody, unknown_outcome
from orchestrator.ledger.leaves import make_leaf
from orchestrator.run.state import RunState

AT = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
_text = st.text(max_size=40)


def _leaf(kind: str, data: dict[str, Any]) -> bytes:
    return make_leaf("R-20300102-abcdef", 7, kind, AT, data)


@given(st.sampled_from(list(RunState)), st.none() | _text)
def test_a_state_body_makes_the_bytes_of_the_old_literal(
    state: RunState, reason: str | None
) -> None:
    body = StateBody(state=state.value, reason=reason)
    assert _leaf("state", body.to_json()) == _leaf(
        "state", {"state": state.value, "reason": reason}
    )
    assert StateBody.from_json(body.to_json()) == body


@given(_text, _text)
def test_a_kill_body_makes_the_bytes_of_the_old_literal(by: str, reason: str) -> None:
    body = KillBody(by=by, reason=reason)
    assert _leaf("kill", body.to_json()) == _leaf("kill", {"by": by, "reason": reason})
    assert KillBody.from_json(body.to_json()) == body


def test_the_unknown_outcome_of_a_crash_is_the_leaf_it_always_was() -> None:
    old = {
        "intent": 3,
        "outcome": "unknown",
        "elapsed_us": None,
        "connections": None,
        "evidence_digest": None,
        "findings": [],
    }
    assert _leaf("outcome", unknown_outcome(3)) == _leaf("outcome", old)


@pytest.mark.parametrize(
    "value", ["ok", "timeout", "unreachable", "error", "refused", "killed", "unknown", "unsent"]
)
def test_outcome_values_are_the_strings_archives_hold(value: str) -> None:
    assert Outcome(value) == value and value in OUTCOMES
    assert _leaf("outcome", {"outcome": Outcome(value)}) == _leaf("outcome", {"outcome": value})
    assert len(OUTCOMES) == len(Outcome)
