"""A permit crosses processes only as its tagged wire form; a worker refuses any alteration."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.run.executors import PermitWireError, idempotency_key, open_permit, wire_permit

from .conftest import CTX, PERMIT_KEY, a_permit

NOW = datetime.now(UTC)


def test_a_wire_permit_opens_to_the_same_permit_in_the_worker() -> None:
    permit = a_permit()
    doc = wire_permit(permit, granted_at=NOW, ctx=CTX, key=PERMIT_KEY)

    opened = open_permit(doc, key=PERMIT_KEY, now=NOW)

    assert opened.permit.to_json() == permit.to_json()
    assert opened.granted_at == NOW
    assert opened.ctx.user_agent == CTX.user_agent
    assert opened.key == idempotency_key(permit.run_id, permit.decision)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ip", "127.0.0.10"),
        ("port", 22),
        ("probe", "port"),
        ("run", "R-20261204-ffffff"),
        ("decision", 8),
        ("deadline", (NOW + timedelta(days=1)).isoformat()),
        ("params", {"paths": ["/admin"]}),
    ],
)
def test_a_permit_altered_on_the_wire_is_refused(field: str, value: object) -> None:
    doc = wire_permit(a_permit(), granted_at=NOW, ctx=CTX, key=PERMIT_KEY)
    altered = copy.deepcopy(doc)
    altered["body"]["permit"][field] = value

    with pytest.raises(PermitWireError, match="tag does not verify"):
        open_permit(altered, key=PERMIT_KEY, now=NOW)


def test_a_permit_tagged_under_another_key_is_refused() -> None:
    doc = wire_permit(a_permit(), granted_at=NOW, ctx=CTX, key=b"x" * 32)
    with pytest.raises(PermitWireError, match="tag does not verify"):
        open_permit(doc, key=PERMIT_KEY, now=NOW)


def test_an_altered_grant_or_user_agent_is_refused() -> None:
    doc = wire_permit(a_permit(), granted_at=NOW, ctx=CTX, key=PERMIT_KEY)
    for path, value in (
        (("granted_at",), "2020-01-01T00:00:00+00:00"),
        (("ctx", "user_agent"), "x"),
    ):
        altered = copy.deepcopy(doc)
        target = altered["body"]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        with pytest.raises(PermitWireError):
            open_permit(altered, key=PERMIT_KEY, now=NOW)


def test_an_expired_permit_is_refused_by_the_worker() -> None:
    doc = wire_permit(
        a_permit(deadline=NOW + timedelta(seconds=1)), granted_at=NOW, ctx=CTX, key=PERMIT_KEY
    )
    with pytest.raises(PermitWireError, match="deadline"):
        open_permit(doc, key=PERMIT_KEY, now=NOW + timedelta(seconds=2))


@pytest.mark.parametrize("doc", [None, "x", {"body": "x"}, {"tag": "x"}])
def test_a_document_that_is_no_wire_permit_is_refused(doc: object) -> None:
    with pytest.raises(PermitWireError):
        open_permit(doc, key=PERMIT_KEY, now=NOW)
