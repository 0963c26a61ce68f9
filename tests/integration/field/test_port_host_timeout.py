"""Defect 4 of #12: an nmap scan cut off by --host-timeout is outcome ``timeout``, never ``ok``.

The policy loader now refuses a host timeout too short for the scan, so no gate-issued permit
can reproduce the cut-off: the XML is taken from real nmap run (outside rio) against the lab's
nginx with version detection, the banner script and a 1 s host timeout, as the field saw it,
and judged by the port probe's own :func:`~probes.port.scan_outcome`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from probes.port import _parse, scan_outcome
from probes.port_batch import _outcome, _scan_xml
from tests.integration.field.conftest import require
from tests.integration.field.lab import Lab
from tests.probes.conftest import _seal

pytestmark = pytest.mark.slow


def _nmap_xml(ip: str, *extra: str) -> str:
    nmap = shutil.which("nmap")
    require(None if nmap else "nmap is not installed")
    assert nmap is not None
    argv = [nmap, "-sT", "-n", "-Pn", "-p", "80,443", "--max-retries", "0", *extra, "-oX", "-", ip]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout


def test_a_scan_cut_off_by_the_host_timeout_is_a_timeout_not_ok(field_lab: Lab) -> None:
    ip = field_lab.ip("nginx-weak")
    xml = _nmap_xml(ip, "--host-timeout", "1s", "-sV", "--version-light", "--script", "banner")
    assert 'timedout="true"' in xml  # what nmap really writes
    permit = _seal("port", ip, {"ports": (80, 443), "params": {"host_timeout": 1}})
    outcome, error, observations = scan_outcome(permit, _parse(xml, "nmap"), xml)
    assert outcome == "timeout"
    assert error is not None and "--host-timeout 1s" in error
    # Nothing is claimed about a port nmap never reported.
    assert all(o.value["state"] != "unknown" for o in observations)


def test_a_scan_that_finishes_is_ok_with_every_port(field_lab: Lab) -> None:
    ip = field_lab.ip("nginx-weak")
    xml = _nmap_xml(ip, "--host-timeout", "30s")
    permit = _seal("port", ip, {"ports": (80, 443), "params": {"host_timeout": 30}})
    outcome, error, observations = scan_outcome(permit, _parse(xml, "nmap"), xml)
    assert (outcome, error) == ("ok", None)
    assert {(o.port, o.key) for o in observations} == {(80, "port.open"), (443, "port.open")}


def test_a_batched_scan_cut_off_by_the_host_timeout_is_a_timeout_not_ok(
    field_lab: Lab, tmp_path: Path
) -> None:
    # The runner sends port permits in nmap batches (probes/port_batch.py): same rule there.
    ip = field_lab.ip("nginx-weak")
    report = tmp_path / "scan.xml"
    report.write_text(
        _nmap_xml(ip, "--host-timeout", "1s", "-sV", "--version-light", "--script", "banner")
    )
    hosts = _scan_xml(report)
    assert hosts is not None and hosts[ip][2] is True
    permit = _seal("port", ip, {"ports": (80, 443), "params": {"host_timeout": 1}})
    finished = subprocess.Popen(["true"])  # stands for the nmap that exited 0
    finished.wait(timeout=10)
    result = _outcome(permit, (), None, finished, hosts, "", 0.0, 1.0)
    assert result.outcome == "timeout"
    assert result.error is not None and "--host-timeout 1s" in result.error
    assert all(o.value["state"] != "unknown" for o in result.observations)
