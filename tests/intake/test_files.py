"""Strict scope and policy loaders: every bad file names the file and the field, and nothing is written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import PolicyFileError, ScopeFileError
from orchestrator.intake._types import MAX_DURATION, format_duration, parse_duration
from orchestrator.intake.policy import load_policy, parse_policy
from orchestrator.intake.scope import load_scope, parse_scope

ROOT = Path(__file__).resolve().parents[2]

GOOD_SCOPE = (ROOT / "scopes" / "demo-loopback.yaml").read_text()
GOOD_POLICY = (ROOT / "policies" / "demo.yaml").read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "scopes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scopes_load(path: Path) -> None:
    scope, data = load_scope(path)
    assert scope.targets and data == path.read_bytes()


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_load(path: Path) -> None:
    policy, _ = load_policy(path)
    assert policy.signoff.officers >= 2 and policy.probes.allowed()


SCOPE_CASES = [
    (
        "cidr_33",
        GOOD_SCOPE.replace("cidr: 127.0.10.0/27", "cidr: 10.0.0.0/33"),
        "targets[0].cidr",
        "is not a network",
    ),
    (
        "host_bits",
        GOOD_SCOPE.replace("cidr: 127.0.10.0/27", "cidr: 127.0.10.1/27"),
        "targets[0].cidr",
        "host bits",
    ),
    (
        "octal_ip",
        GOOD_SCOPE.replace("ip: 127.0.10.13", "ip: 0127.0.10.13"),
        "excludes[0].ip",
        "not an IP address",
    ),
    (
        "unknown_key",
        GOOD_SCOPE.replace("contact:\n", "colour: blue\ncontact:\n"),
        "colour",
        "unknown key",
    ),
    (
        "duplicate_key",
        GOOD_SCOPE.replace("contact:\n", "targets: []\ncontact:\n"),
        "line",
        "duplicate key 'targets'",
    ),
    (
        "empty_targets",
        GOOD_SCOPE.split("targets:")[0]
        + "targets: []\n"
        + "excludes:"
        + GOOD_SCOPE.split("excludes:")[1],
        "targets",
        "at least 1",
    ),
    (
        "window_backwards",
        GOOD_SCOPE.replace("end: 2030-12-31T23:59:59", "end: 2025-12-31T23:59:59"),
        "windows[0]",
        "ends before it starts",
    ),
    (
        "bad_timezone",
        GOOD_SCOPE.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus"),
        "windows[0].timezone",
        "not a known timezone",
    ),
    (
        "wrong_type",
        GOOD_SCOPE.replace("key_supervision: false", "key_supervision: [1]"),
        "object.key_supervision",
        "boolean",
    ),
    (
        "two_kinds",
        GOOD_SCOPE.replace(
            "  - host: www.demo.test", "  - host: www.demo.test\n    ip: 127.0.10.2"
        ),
        "targets[1]",
        "exactly one of",
    ),
    (
        "bad_format",
        GOOD_SCOPE.replace("format: rio.scope/v1", "format: rio.scope/v9"),
        "format",
        "expected 'rio.scope/v1'",
    ),
    (
        "ftp_url",
        GOOD_SCOPE.replace("url: https://portal.demo.test:8443/", "url: ftp://portal.demo.test/"),
        "targets[2].url",
        "only http",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "field", "problem"), SCOPE_CASES, ids=[c[0] for c in SCOPE_CASES]
)
def test_bad_scope_is_refused_naming_file_and_field(
    tmp_path: Path, name: str, text: str, field: str, problem: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(ScopeFileError) as info:
        load_scope(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert field in message and problem in message, message


POLICY_CASES = [
    (
        "rate_zero",
        GOOD_POLICY.replace("per_ip: 20", "per_ip: 0"),
        "rates.per_ip",
        "greater than or equal to 1",
    ),
    (
        "one_officer",
        GOOD_POLICY.replace("officers: 2", "officers: 1"),
        "signoff.officers",
        "two or more officers",
    ),
    (
        "disruptive",
        GOOD_POLICY.replace("max_disruption: light", "max_disruption: disruptive"),
        "max_disruption",
        "Art. 16",
    ),
    (
        "window_backwards",
        GOOD_POLICY.replace('end: "24:00"', 'end: "00:00"'),
        "windows[0]",
        "ends before it starts",
    ),
    (
        "bad_timezone",
        GOOD_POLICY.replace("timezone: Asia/Shanghai", "timezone: Nowhere/City"),
        "timezone",
        "not a known timezone",
    ),
    (
        "unknown_probe",
        GOOD_POLICY.replace("  tls:\n", "  exploit: {}\n  tls:\n"),
        "probes.exploit",
        "unknown key",
    ),
    (
        "bad_port",
        GOOD_POLICY.replace("ports: [21, 22", "ports: [70000, 22"),
        "probes.port.ports",
        "outside 1..65535",
    ),
    (
        "bad_duration",
        GOOD_POLICY.replace("min_notice_lead: 2s", "min_notice_lead: soon"),
        "min_notice_lead",
        "duration",
    ),
    (
        "duplicate_key",
        GOOD_POLICY.replace("concurrency: 32", "concurrency: 32\nconcurrency: 8"),
        "line",
        "duplicate key 'concurrency'",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "field", "problem"), POLICY_CASES, ids=[c[0] for c in POLICY_CASES]
)
def test_bad_policy_is_refused_naming_file_and_field(
    tmp_path: Path, name: str, text: str, field: str, problem: str
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert field in message and problem in message, message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScopeFileError, match="nope.yaml: cannot read"):
        load_scope(tmp_path / "nope.yaml")


def test_not_utf8_is_refused() -> None:
    with pytest.raises(PolicyFileError, match="x.yaml: not UTF-8"):
        parse_policy(b"\xff\xfe", "x.yaml")


def test_idn_host_becomes_punycode_and_trailing_dot_goes() -> None:
    text = GOOD_SCOPE.replace("host: www.demo.test", "host: Bücher.demo.test.")
    scope = parse_scope(text.encode(), "s.yaml")
    assert scope.targets[1].value == "xn--bcher-kva.demo.test"


def test_ipv4_mapped_source_is_unwrapped() -> None:
    scope = parse_scope(
        GOOD_SCOPE.replace("sources: [127.0.0.1]", "sources: ['::ffff:127.0.0.1']").encode(),
        "s.yaml",
    )
    assert scope.sources == ("127.0.0.1",)


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_probe_a_shipped_policy_allows_can_be_sent(path: Path) -> None:
    # The gate refuses at once a probe that costs more than one second of the tightest budget;
    # the plan's cost of every probe the policy allows must fit it, or the check is never made.
    from orchestrator.intake.scope import load_scope
    from orchestrator.run.plan import plan_for

    policy = load_policy(path)[0]
    scope = load_scope(ROOT / "scopes" / "example.yaml")[0]
    r = policy.rates
    tightest = min(r.per_ip, r.per_network, r.per_notice, r.global_)
    worst: dict[str, int] = {}
    for req in plan_for(scope, policy):
        worst[req.probe] = max(worst.get(req.probe, 0), req.cost)
    assert set(worst) >= set(policy.probes.allowed()) - {"dns-axfr"}
    assert {p: c for p, c in worst.items() if c > tightest} == {}


def test_policy_whose_dns_probe_never_fits_one_second_is_refused_naming_the_probe() -> None:
    text = GOOD_POLICY.replace("per_ip: 20", "per_ip: 4")
    with pytest.raises(
        PolicyFileError, match=r"x\.yaml: probes\.dns: one dns probe costs 12 .*rates\.per_ip 4"
    ):
        parse_policy(text.encode(), "x.yaml")


@given(millis=st.integers(min_value=0, max_value=int(MAX_DURATION.total_seconds()) * 1000))
def test_a_formatted_duration_parses_back_to_itself(millis: int) -> None:
    value = timedelta(milliseconds=millis)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert "," not in text and ":" not in text


def test_durations_format_in_the_largest_exact_unit() -> None:
    assert format_duration(timedelta(days=3)) == "3d"
    assert format_duration(timedelta(hours=36)) == "36h"
    assert format_duration(timedelta(seconds=90)) == "90s"
    assert format_duration(timedelta(milliseconds=1500)) == "1500ms"
    assert format_duration(timedelta(0)) == "0s"
