"""Services authorise the acting person themselves, and refusals name the role needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.access.roles import Action, authorize
from orchestrator.errors import AccessDeniedError
from orchestrator.services import directory, gate, rectify, runs
from tests.access.test_lab import Lab


def test_a_technician_announcing_is_told_only_officers_may(lab: Lab) -> None:
    with lab.rio.db.session() as s, pytest.raises(AccessDeniedError) as refused:
        authorize(s, lab.person("tech-a"), Action.ANNOUNCE_NOTICE, now=lab.rio.clock.now())
    assert str(refused.value) == (
        "tech-a (technician) may not announce a notice: only officers may do this, not a technician"
    )


def test_a_technician_ordering_rectification_is_not_told_about_closing(lab: Lab) -> None:
    with lab.rio.db.session() as s, pytest.raises(AccessDeniedError) as refused:
        authorize(
            s,
            lab.person("tech-a"),
            Action.ORDER_RECTIFICATION,
            run_id=lab.run_a,
            now=lab.rio.clock.now(),
        )
    message = str(refused.value)
    assert "order rectification of run" in message and "close" not in message
    assert "only officers may do this, not a technician" in message


def test_an_auditor_killing_is_told_which_roles_may(lab: Lab) -> None:
    with lab.rio.db.session() as s, pytest.raises(AccessDeniedError) as refused:
        authorize(
            s, lab.person("auditor-u"), Action.KILL_RUN, run_id=lab.run_a, now=lab.rio.clock.now()
        )
    assert "only officers and technicians may do this, not an auditor" in str(refused.value)


def test_registry_lists_need_a_registered_person(lab: Lab) -> None:
    people = directory.list_people(lab.rio, lab.person("tech-a"))
    assert {p.name for p in people} >= {"officer-a", "tech-a", "admin-m"}
    vendors = directory.list_vendors(lab.rio, lab.person("auditor-u"))
    assert [v.name for v in vendors] == ["acme-sec", "beta-sec"]
    assert len(directory.list_people(lab.rio, lab.person("admin-m"))) == len(people)


def test_only_an_administrator_rotates_the_master_key(lab: Lab, tmp_path: Path) -> None:
    new = tmp_path / "new-master.key"
    with pytest.raises(AccessDeniedError, match="only administrators may do this"):
        directory.rotate_master_key(lab.rio, lab.person("officer-a"), new)
    assert not new.exists()
    assert directory.rotate_master_key(lab.rio, lab.person("admin-m"), new) >= 2


def test_rotating_the_master_key_is_one_transaction(lab: Lab, tmp_path: Path) -> None:
    # The authorisation and every re-wrap commit together: a revocation cannot fall between
    # them, and a failure leaves every key as it was.
    from sqlalchemy import event

    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    admin = lab.person("admin-m")
    event.listen(lab.rio.db.engine, "commit", count)
    try:
        directory.rotate_master_key(lab.rio, admin, tmp_path / "new.key")
    finally:
        event.remove(lab.rio.db.engine, "commit", count)
    assert len(commits) == 1


async def test_gate_explain_refuses_a_technician_of_another_vendor(lab: Lab) -> None:
    with pytest.raises(AccessDeniedError, match="not entrusted to their vendor beta-sec"):
        await gate.explain_probe(lab.rio, lab.person("tech-b"), lab.notice_a, "127.0.10.5")
    answer = await gate.explain_probe(lab.rio, lab.person("tech-a"), lab.notice_a, "127.0.10.5")
    entrusted = [c for c in answer.checks if c.check == "entrusted"]
    assert entrusted and entrusted[0].reason != "no-technician"  # the asking technician


def test_rectification_orders_are_listed_only_for_visible_runs(lab: Lab) -> None:
    assert rectify.list_orders(lab.rio, lab.person("tech-b")) == []
    with pytest.raises(AccessDeniedError):
        rectify.list_orders(lab.rio, lab.person("tech-b"), lab.run_a)


async def test_run_status_and_kill_authorise_inside_the_service(lab: Lab) -> None:
    with pytest.raises(AccessDeniedError):
        await runs.run_figures(lab.rio, lab.person("tech-b"), lab.run_a)
    status = (await runs.run_figures(lab.rio, lab.person("auditor-u"), lab.run_a)).to_json()
    assert status["id"] == lab.run_a
    with pytest.raises(AccessDeniedError):
        await runs.kill_runs(lab.rio, lab.person("auditor-u"), [lab.run_a], reason="no")
