"""Log review and the transparency report, over a reference archive."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.audit.logview import LogFilter, LogReview, iter_archive_leaves
from orchestrator.audit.transparency import (
    build_transparency_report,
    render_html,
    verify_transparency_report,
    write_transparency_report,
)
from orchestrator.errors import InputError, NotFoundError, VerificationError
from orchestrator.ledger.leaves import format_instant
from tests.audit import archive_builder as ab


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    leaves = ab.default_leaves()
    at = leaves[-1][1] + timedelta(seconds=1)
    leaves.append(
        (
            "health",
            at,
            {
                "ip": "127.0.10.1",
                "state": "paused",
                "factor": 0.5,
                "until": None,
                "reason": "3 failures",
            },
        )
    )
    return ab.build_archive(tmp_path / "a.tar", leaves)


def test_log_review_lists_every_leaf_and_sums_up_per_target(archive: Path) -> None:
    review = LogReview()
    entries = list(review.entries(iter_archive_leaves(archive)))
    assert [e.seq for e in entries] == list(range(len(entries)))
    summary = {s.target: s for s in review.summaries()}
    assert summary["127.0.10.1"].probes == 2
    assert summary["127.0.10.1"].pauses == 1
    assert summary["127.0.10.13"].refusals == 1 and summary["127.0.10.13"].probes == 0
    assert summary["127.0.10.1"].peak_rate == 1  # its two probes are 3.6 s apart


def test_log_review_filters_by_target_and_refusal(archive: Path) -> None:
    review = LogReview(LogFilter(target="127.0.10.2"))
    entries = list(review.entries(iter_archive_leaves(archive)))
    assert {e.kind for e in entries} == {"intent", "outcome"}
    assert all(e.target == "127.0.10.2" for e in entries)
    refused = list(LogReview(LogFilter(refused=True)).entries(iter_archive_leaves(archive)))
    assert [e.kind for e in refused] == ["refusal"]
    assert "excluded" in refused[0].text


def test_log_review_since_skips_earlier_leaves(archive: Path) -> None:
    since = ab.WINDOW_START + timedelta(hours=1, seconds=6)
    entries = list(LogReview(LogFilter(since=since)).entries(iter_archive_leaves(archive)))
    assert entries and all(e.at >= "2026-03-02T01:00:06" for e in entries)


def test_log_review_peak_rate_counts_units_in_one_second(tmp_path: Path) -> None:
    t = ab.WINDOW_START + timedelta(hours=1)
    leaves = [
        ("intent", t + timedelta(milliseconds=100 * i), ab.intent(i, t, "127.0.10.5", cost=2))
        for i in range(5)
    ]
    review = LogReview()
    list(review.entries(iter_archive_leaves(ab.build_archive(tmp_path / "b.tar", leaves))))
    assert review.summaries()[0].peak_rate == 10


def test_transparency_report_proves_every_probe_against_the_signed_checkpoint(
    archive: Path,
) -> None:
    report = build_transparency_report(archive, "demo-isp")
    assert len(report["probes"]) == 24
    assert all(p["outcome"] == "ok" for p in report["probes"])
    text = json.dumps(report)
    assert "evidence_digest" not in text and "contact" not in text
    assert report["sources"] == ["127.0.0.1"]
    verdict = verify_transparency_report(json.loads(text))
    assert verdict and verdict.probes == 24


def test_transparency_verification_fails_when_a_probe_is_altered(archive: Path) -> None:
    report = build_transparency_report(archive, "demo-isp")
    report["probes"][3]["leaf"] = report["probes"][3]["leaf"].replace("127.0.10", "127.0.11")
    report["probes"][3]["ip"] = report["probes"][3]["ip"].replace("127.0.10", "127.0.11")
    verdict = verify_transparency_report(report)
    assert not verdict
    assert verdict.problems == (
        f"probe {report['probes'][3]['seq']}: the inclusion proof does not verify",
    )


def test_transparency_verification_fails_under_another_trusted_key(archive: Path) -> None:
    report = build_transparency_report(archive, "demo-isp")
    other = ab._key("someone-else").public_key()
    assert not verify_transparency_report(report, public_key=other)
    assert verify_transparency_report(report, public_key=ab.Keys().orchestrator.public_key())


def test_transparency_report_refuses_another_object(archive: Path) -> None:
    with pytest.raises(NotFoundError):
        build_transparency_report(archive, "other-isp")


def test_transparency_report_refuses_a_forged_log(archive: Path, tmp_path: Path) -> None:
    lines = ab.read_members(archive)["ledger/leaves.jsonl"].splitlines()
    lines[1] = lines[1].replace(b"127.0.10.1", b"127.0.10.9")
    forged = ab.rewrite(
        archive, tmp_path / "f.tar", {"ledger/leaves.jsonl": b"\n".join(lines) + b"\n"}
    )
    with pytest.raises(VerificationError):
        build_transparency_report(forged, "demo-isp")


def test_transparency_html_escapes_values(archive: Path, tmp_path: Path) -> None:
    report = build_transparency_report(archive, "demo-isp")
    report["object"]["name"] = "<script>alert(1)</script>"
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    write_transparency_report(report, tmp_path / "r.html")
    write_transparency_report(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["format"] == "rio.transparency/v1"
    with pytest.raises(InputError):
        write_transparency_report(report, tmp_path / "r.txt")


def test_log_review_shows_each_outcome_duration_from_elapsed_us(archive: Path) -> None:
    outcomes = [e for e in LogReview().entries(iter_archive_leaves(archive)) if e.kind == "outcome"]
    assert outcomes and all("0.010 s" in str(e) and "None s" not in str(e) for e in outcomes)


def test_log_review_peak_rate_counts_probes_at_their_send_times(tmp_path: Path) -> None:
    # Two probes decided in the same instant, sent 1.5 s apart (the budget made the second
    # wait), and a batch probe whose two traced connections went 0.2 s apart: the peak is what
    # went out in one second, not what was decided in it.
    t = ab.WINDOW_START + timedelta(hours=1)
    ip = "127.0.10.5"
    late = dict(ab.outcome(1), sent_at=format_instant(t + timedelta(seconds=1.5)))
    traced = dict(
        ab.outcome(2), sent_at=format_instant(t + timedelta(seconds=4)), sends_us=[0, 200_000]
    )
    leaves = [
        ("intent", t, ab.intent(0, t, ip, probe="http")),
        ("intent", t, ab.intent(1, t, ip, probe="http")),
        ("intent", t, ab.intent(2, t, ip, cost=2)),
        ("outcome", t, dict(ab.outcome(0), sent_at=format_instant(t))),
        ("outcome", t + timedelta(seconds=2), late),
        ("outcome", t + timedelta(seconds=5), traced),
    ]
    review = LogReview()
    list(review.entries(iter_archive_leaves(ab.build_archive(tmp_path / "s.tar", leaves))))
    assert review.summaries()[0].peak_rate == 2  # the batch's two, not the three decided at t
