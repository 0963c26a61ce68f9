"""Smoke tests for the benchmark harness: tiny variants of its code paths, shape not speed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import verify_ab
from bench._common import Figure, rows, write_results
from bench._home import BenchHome
from bench.ledger import ledger_sample, verify_sample
from bench.plan import plan_child
from bench.runs import Event, fidelity_run, max_window, mean_fill
from bench.whole import http_runs, port_run


def test_max_window_counts_costs_inside_half_open_one_second_windows() -> None:
    events = [
        Event(at=0.0, ip="127.0.0.2", cost=2),
        Event(at=0.5, ip="127.0.0.2", cost=1),
        Event(at=1.0, ip="127.0.0.2", cost=3),  # outside [0, 1), inside [0.5, 1.5)
    ]
    assert max_window(events) == 4
    assert max_window([]) == 0


def test_mean_fill_of_an_evenly_spread_run_is_its_rate() -> None:
    events = [Event(at=i * 0.25, ip="127.0.0.2", cost=1) for i in range(40)]
    assert abs(mean_fill(events) - 4.0) < 0.2


def test_figure_fails_when_its_median_misses_the_goal() -> None:
    low = Figure(key="x", name="n", unit="ratio", samples=(0.5, 0.9, 0.7), op=">=", goal=0.98)
    high = Figure(key="y", name="n", unit="ratio", samples=(1.0, 1.01), op="<=", goal=1.0)
    skipped = Figure(key="z", name="n", unit="ratio", samples=(), op=">=", goal=1, skipped="no")
    assert low.passed is False
    assert high.passed is False
    assert skipped.passed is None
    assert [r[6] for r in rows([low, high, skipped])] == ["FAIL", "FAIL", "SKIP"]


def test_results_are_written_as_json_and_markdown(tmp_path: Path) -> None:
    figure = Figure(
        key="1a", name="n", unit="ratio", samples=(0.99, 1.0, 0.98), op=">=", goal=0.98, detail="d"
    )
    from bench._common import now_utc

    latest, md = write_results([figure], tmp_path, quick=True, started=now_utc(), seconds=1.0)
    doc = json.loads(latest.read_text())
    assert doc["figures"][0]["median"] == 0.99
    assert doc["figures"][0]["pass"] is True
    assert "| 1a | n |" in md.read_text()
    assert len(list(tmp_path.glob("*-quick.json"))) == 1


def test_tiny_budget_bound_run_reports_every_ratio() -> None:
    sample = fidelity_run(targets=3, per_ip=2, urls=1)
    assert sample.intents == 6  # 3 targets x (1 ip probe + 1 url)
    assert sample.outcomes == {"ok": 6}
    for value in (
        sample.per_ip_fill,
        sample.global_fill,
        sample.max_window_ratio,
        sample.completion_ratio,
    ):
        assert value > 0


def test_tiny_ledger_append_and_verify_report_rates() -> None:
    with BenchHome() as home:
        sample = ledger_sample(home, 256)
        verify = verify_sample(home, sample.run_id)
    assert sample.rio_rate > 0 and sample.raw_rate > 0
    assert verify.leaves == 256
    assert verify.rate > 0 and verify.cpu_rate > 0 and verify.raw_root_rate > 0
    assert verify.fast_parse_rate > 0 and verify.exact_parse_rate > 0


def test_tiny_plan_streams_three_requests_per_host() -> None:
    result = plan_child("127.64.0.0/28")
    assert result["requests"] == 14 * 3
    assert result["peak_mib"] > 0


@pytest.mark.nmap
@pytest.mark.skipif(not shutil.which("nmap"), reason="nmap not installed")
def test_tiny_whole_port_run_and_plain_nmap_report_wall_cpu_and_ledger_bytes() -> None:
    sample = port_run("127.0.64.248/29")
    assert sample.probes == 6 and sample.outcomes == {"ok": 6}
    assert sample.batches >= 1
    assert min(sample.rio_seconds, sample.rio_cpu, sample.nmap_seconds, sample.nmap_cpu) > 0
    assert sample.ledger_bytes > 6 * 2 * 100  # an intent and an outcome per probe at least


def test_tiny_whole_http_run_and_plain_script_do_the_same_gets() -> None:
    (sample,) = http_runs(6, "127.0.96.248/29")
    assert sample.probes == 6 and sample.outcomes == {"ok": 6}
    assert min(sample.rio_seconds, sample.plain_seconds) > 0


def test_verify_ab_runs_the_baseline_and_the_working_tree_on_one_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if shutil.which("git") is None or not (Path(__file__).parents[2] / ".git").exists():
        pytest.skip("bench.verify_ab reads the baseline with git: no git checkout here")
    assert verify_ab.main(["--baseline", "HEAD", "--rounds", "1", "--leaves", "64"]) == 0
    out = capsys.readouterr().out
    assert "64 leaves, 1 checkpoints" in out and "B/A" in out
