"""Defect 3 of #12: refusals are counted by reason, the gate's and the probes' own alike.

A run whose HTTP probes all refused their permits printed "0 refused": only gate refusals were
counted, and the outcome leaf did not say why. Here the policy declares a path the http probe
refuses to send (the loader accepts any absolute path; the probe allows only plain URL
characters) and the scope names a host that does not resolve, which the gate refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.field.conftest import LabRio, People, announce_and_run
from tests.integration.field.lab import DOMAIN, Lab

pytestmark = pytest.mark.slow

_PROBE_REASON = "http probe: params.paths: '/caf\xe9' is not an absolute path"


def test_refusals_are_counted_by_reason_in_summary_status_record_and_ledger(
    field_lab: Lab, lab_rio: LabRio, lab_people: People, lab_home: Path
) -> None:
    launched = announce_and_run(
        lab_rio, lab_people, lab_home, name="refusals",
        scope=field_lab.scope_text(extra_targets=[f"- host: nowhere.{DOMAIN}"]),
        policy=field_lab.policy_text(http_paths=["/", "/caf\xe9"]),
    )  # fmt: skip
    li = lab_people.key("li")
    status = json.loads(lab_rio("run", "status", launched.run, "--json", key=li).stdout)
    reasons = status["refused_by_reason"]
    probe = {k: v for k, v in reasons.items() if k.startswith("http probe:")}
    gate = {k: v for k, v in reasons.items() if k.startswith("gate ")}
    # every http probe of the run refused its permit, each for the same stated reason
    assert probe == {_PROBE_REASON: status["outcomes"]["refused"]}
    assert status["outcomes"]["refused"] > 0
    assert gate and all("resolve" in k or "scope" in k for k in gate), gate
    assert status["refused"] == sum(reasons.values())
    # the run's own summary says the same
    assert f"{status['refused']} refused" in launched.summary
    assert "http probe: params.paths:" in launched.summary
    # the record counts them by reason
    record = json.loads(lab_rio("record", "show", launched.run, "--json", key=li).stdout)
    assert record["record"]["counts"]["refused_by_reason"] == reasons
    # and the reason is in the ledger leaf itself
    log = json.loads(lab_rio("audit", "log", launched.run, "--json", key=li).stdout)
    refused = [e["text"] for e in log["leaves"] if e["text"].startswith("refused for #")]
    assert refused and all("http probe: params.paths:" in t for t in refused), refused
