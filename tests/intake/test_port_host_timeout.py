"""Defect 4 of #12: a host timeout too short for the scan it bounds is refused at load time.

nmap cut off by ``--host-timeout`` reports the host with no ports; rio then recorded ``ok`` with
every port unknown. The policy loader now refuses such a policy, naming the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import PolicyFileError
from orchestrator.intake.policy import load_policy, parse_policy
from probes.port import minimum_host_timeout

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "policies" / "demo.yaml").read_text()


def _demo_with(port_lines: str, probe_timeout: str = "10s") -> bytes:
    text = DEMO.replace("    host_timeout: 20s\n", port_lines)
    return text.replace("probe_timeout: 10s", f"probe_timeout: {probe_timeout}").encode()


def test_version_detection_and_banner_under_the_demo_host_timeout_are_refused() -> None:
    lines = "    host_timeout: 20s\n    version_detection: true\n    scripts: [banner]\n"
    with pytest.raises(PolicyFileError) as info:
        parse_policy(_demo_with(lines), "demo-sv.yaml")
    message = str(info.value)
    assert message.startswith("demo-sv.yaml: probes.port.host_timeout: 20s is too short"), message
    assert "version_detection" in message and "banner" in message and "at least 48s" in message


def test_a_host_timeout_long_enough_for_the_scan_is_accepted() -> None:
    lines = "    host_timeout: 60s\n    version_detection: true\n    scripts: [banner]\n"
    policy = parse_policy(_demo_with(lines, probe_timeout="60s"), "demo-sv.yaml")
    assert policy.probes.port is not None and policy.probes.port.version_detection


@pytest.mark.parametrize("name", ["default", "demo", "key-supervision", "major-event"])
def test_every_shipped_policy_gives_its_scans_time_to_finish(name: str) -> None:
    load_policy(ROOT / "policies" / f"{name}.yaml")


@given(
    ports=st.integers(1, 1024),
    rate=st.integers(1, 100_000),
    retries=st.integers(0, 5),
    version=st.booleans(),
    scripts=st.lists(st.sampled_from(["banner", "ssl-cert", "http-title"]), max_size=3),
)
def test_the_minimum_covers_the_paced_connect_scan_and_grows_with_what_is_asked(
    ports: int, rate: int, retries: int, version: bool, scripts: list[str]
) -> None:
    need = minimum_host_timeout(
        ports=ports, rate=rate, retries=retries, version_detection=version, scripts=scripts
    )
    assert need >= ports * (1 + retries) / rate
    more = minimum_host_timeout(
        ports=ports, rate=rate, retries=retries + 1, version_detection=True, scripts=["banner"]
    )
    assert more >= need
