"""Least privilege: one matrix, asked by every interface (MPS Order 151, Art. 5 and 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import orchestrator.access as access
from orchestrator.access.roles import Action, authorize, decide, visible_notices, visible_runs
from orchestrator.errors import AccessDeniedError, NotFoundError
from orchestrator.intake import registry
from tests.access.test_lab import Lab, build_lab, copy_lab


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    built = build_lab(tmp_path_factory.mktemp("template"))
    built.rio.close()
    return built


@pytest.fixture
def lab(template: Lab, tmp_path: Path) -> Iterator[Lab]:
    built = copy_lab(template, tmp_path)
    try:
        yield built
    finally:
        built.rio.close()


def _allowed(lab: Lab, name: str, action: Action, **where: str) -> bool:
    with lab.rio.db.session() as s:
        return bool(decide(s, lab.person(name), action, **where, now=lab.rio.clock.now()))  # type: ignore[arg-type]


def test_exported_names_are_the_intended_api() -> None:
    assert set(access.__all__) == {
        "AccessRecord",
        "Action",
        "GrantInfo",
        "access_log",
        "authenticate",
        "authorize",
        "decide",
        "grant_evidence",
        "purge",
        "read_evidence",
        "visible_notices",
        "visible_runs",
    }


def test_technician_lists_only_runs_and_notices_of_own_vendor(lab: Lab) -> None:
    with lab.rio.db.session() as s:
        runs = list(s.scalars(visible_runs(s, lab.person("tech-a"), now=lab.rio.clock.now())))
        notices = list(s.scalars(visible_notices(s, lab.person("tech-a"), now=lab.rio.clock.now())))
    assert [r.id for r in runs] == [lab.run_a]
    assert [n.id for n in notices] == [lab.notice_a]


def test_technician_may_not_view_or_launch_another_vendors_run(lab: Lab) -> None:
    tech_a = lab.person("tech-a")
    with lab.rio.db.session() as s:
        with pytest.raises(AccessDeniedError, match=r"tech-a \(technician\) may not view run"):
            authorize(s, tech_a, Action.VIEW_RUN, run_id=lab.run_b, now=lab.rio.clock.now())
        with pytest.raises(AccessDeniedError, match="may not launch a run of notice"):
            authorize(s, tech_a, Action.LAUNCH_RUN, notice_id=lab.notice_b, now=lab.rio.clock.now())
        authorize(s, tech_a, Action.LAUNCH_RUN, notice_id=lab.notice_a, now=lab.rio.clock.now())
        authorize(s, tech_a, Action.VIEW_RUN, run_id=lab.run_a, now=lab.rio.clock.now())


def test_technician_may_not_act_on_a_notice_without_vendor(lab: Lab) -> None:
    assert not _allowed(lab, "tech-a", Action.LAUNCH_RUN, notice_id=lab.notice_none)
    assert _allowed(lab, "officer-a", Action.LAUNCH_RUN, notice_id=lab.notice_none)
    assert not _allowed(lab, "officer-a", Action.LAUNCH_RUN, notice_id=lab.notice_a)


def test_administrator_may_not_sign_launch_or_read_evidence(lab: Lab) -> None:
    admin = lab.person("admin-m")
    with lab.rio.db.session() as s:
        with pytest.raises(
            AccessDeniedError,
            match=r"^admin-m \(admin\) may not sign the record of run .*: only officers and "
            r"technicians may do this, not an administrator$",
        ):
            authorize(s, admin, Action.SIGN_RECORD, run_id=lab.run_a, now=lab.rio.clock.now())
        authorize(s, admin, Action.MANAGE_REGISTRY, now=lab.rio.clock.now())
    assert not _allowed(lab, "admin-m", Action.LAUNCH_RUN, notice_id=lab.notice_none)
    assert not _allowed(lab, "admin-m", Action.READ_EVIDENCE, run_id=lab.run_a)
    with lab.rio.db.session() as s:
        assert list(s.scalars(visible_runs(s, admin, now=lab.rio.clock.now()))) == []


def test_only_administrators_manage_registries(lab: Lab) -> None:
    for name in ("officer-a", "tech-a", "auditor-u"):
        assert not _allowed(lab, name, Action.MANAGE_REGISTRY)


def test_auditor_reads_ledgers_but_never_signs(lab: Lab) -> None:
    assert _allowed(lab, "auditor-u", Action.READ_LEDGER, run_id=lab.run_b)
    assert _allowed(lab, "auditor-u", Action.VIEW_RUN, run_id=lab.run_a)
    assert not _allowed(lab, "auditor-u", Action.SIGN_RECORD, run_id=lab.run_a)
    assert not _allowed(lab, "auditor-u", Action.READ_EVIDENCE, run_id=lab.run_a)


def test_officers_sign_close_and_grant_technicians_only_cosign_own_runs(lab: Lab) -> None:
    for action in (Action.SIGN_RECORD, Action.CLOSE_RECORD, Action.GRANT_EVIDENCE):
        assert _allowed(lab, "officer-b", action, run_id=lab.run_b)
    assert _allowed(lab, "tech-b", Action.SIGN_RECORD, run_id=lab.run_b)
    assert not _allowed(lab, "tech-b", Action.SIGN_RECORD, run_id=lab.run_a)
    assert not _allowed(lab, "tech-b", Action.CLOSE_RECORD, run_id=lab.run_b)
    assert not _allowed(lab, "tech-b", Action.GRANT_EVIDENCE, run_id=lab.run_b)


def test_revoked_person_may_do_nothing(lab: Lab) -> None:
    officer = lab.person("officer-a")
    with lab.rio.db.session() as s:
        registry.revoke_person(s, "officer-a", when=lab.rio.clock.now())
    with lab.rio.db.session() as s:
        with pytest.raises(AccessDeniedError, match="revoked"):
            authorize(s, officer, Action.VIEW_RUN, run_id=lab.run_a, now=lab.rio.clock.now())
        assert list(s.scalars(visible_runs(s, officer, now=lab.rio.clock.now()))) == []


def test_unknown_run_is_not_found(lab: Lab) -> None:
    with lab.rio.db.session() as s, pytest.raises(NotFoundError, match="R-nope"):
        authorize(
            s, lab.person("officer-a"), Action.VIEW_RUN, run_id="R-nope", now=lab.rio.clock.now()
        )


def test_run_bound_action_without_run_refused(lab: Lab) -> None:
    assert not _allowed(lab, "officer-a", Action.SIGN_RECORD)
    assert not _allowed(lab, "officer-a", Action.LAUNCH_RUN)


def test_officer_of_a_co_inspecting_organ_lists_what_they_may_view(lab: Lab) -> None:
    # Listing and viewing ask one rule: an organ named as co-inspecting sees the notice and
    # its runs in its lists, as it may act on them; an organ not named sees neither.
    from orchestrator.intake.notices import announce
    from orchestrator.run.runs import create_run
    from tests.access.test_lab import ANNOUNCED_AT, POLICY, RUN_A_AT, SCOPE, VENDOR_A

    now = lab.rio.clock.now()
    with lab.rio.db.session() as s:
        registry.add_person(s, "officer-x", registry.Role.OFFICER, "Other PSB", now=now)
        registry.add_person(s, "officer-y", registry.Role.OFFICER, "Third PSB", now=now)
        joint = announce(
            s,
            scope_bytes=SCOPE.read_bytes(),
            scope_name="scopes/demo-loopback.yaml",
            policy_bytes=POLICY.read_bytes(),
            policy_name="policies/demo.yaml",
            vendor=VENDOR_A,
            organ="PSB",
            co_inspecting=["Other PSB"],
            now=ANNOUNCED_AT,
        ).id
        run = create_run(s, joint, "tech-a", now=RUN_A_AT).id
    for name, sees in (("officer-x", True), ("officer-y", False)):
        assert _allowed(lab, name, Action.VIEW_NOTICE, notice_id=joint) is sees
        assert _allowed(lab, name, Action.VIEW_RUN, run_id=run) is sees
        with lab.rio.db.session() as s:
            person = lab.person(name)
            notices = {n.id for n in s.scalars(visible_notices(s, person, now=now))}
            runs = {r.id for r in s.scalars(visible_runs(s, person, now=now))}
        # (The lab's other notices name no organ: every officer sees those.)
        assert (joint in notices, run in runs) == (sees, sees)
