"""The offline audit checks the Art. 19 feedback an archive's rectification.json records."""

from __future__ import annotations

from typing import Any

from orchestrator.audit._members import _check_feedback
from orchestrator.audit._tally import Tally

SHA = "ab" * 32


def _offences(order: dict[str, Any]) -> str | None:
    tally = Tally("findings")
    _check_feedback(tally, "rectification order 1", order)
    return None if tally.first is None else tally.first.reason


def _order(at: str, **feedback: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "feedback_due": "2026-10-10",
        "feedback": {"at": at, "by": "officer-a", "document": "fb.pdf", "sha256": SHA, **feedback},
    }


def test_feedback_within_its_due_date_passes() -> None:
    # 23:30 in Beijing on the due date is 15:30 UTC: still on time.
    assert _offences(_order("2026-10-10T15:30:00+00:00")) is None
    assert _offences({"id": 1, "feedback_due": "2026-10-10", "feedback": None}) is None


def test_feedback_after_its_due_date_fails_in_china_calendar_days() -> None:
    # 16:30 UTC on the due date is already 00:30 the next day in Beijing.
    reason = _offences(_order("2026-10-10T16:30:00+00:00"))
    assert reason == "feedback given 2026-10-11, after its due date 2026-10-10"


def test_malformed_feedback_fails() -> None:
    assert "SHA-256" in (_offences(_order("2026-10-09T00:00:00+00:00", sha256="x")) or "")
    assert "names nobody" in (_offences(_order("2026-10-09T00:00:00+00:00", by="")) or "")
    order = _order("2026-10-09T00:00:00+00:00")
    del order["feedback_due"]
    assert "no feedback_due" in (_offences(order) or "")
