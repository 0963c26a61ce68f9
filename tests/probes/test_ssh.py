"""The ssh probe against Debian's real OpenSSH sshd on a loopback address, port 22.

Two field-lab servers: ``ssh`` with legacy algorithms appended to OpenSSH's defaults and password
authentication on (the planted flaws), ``ssh-sound`` (defaults, keys only, no Debian banner
suffix).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probes.base import Observation, ProbeContext
from probes.findings import Catalogue, derive_findings
from probes.ssh import SshProbe, legacy_algorithms, parse_kexinit
from tests.integration.field.lab import Lab
from tests.probes.conftest import IssuePermit, lab_servers

pytestmark = pytest.mark.slow

SSH_RULES = {
    "RIO-SSH-LEGACY-KEX",
    "RIO-SSH-LEGACY-HOSTKEY",
    "RIO-SSH-LEGACY-CIPHER",
    "RIO-SSH-LEGACY-MAC",
    "RIO-SSH-PASSWORD-AUTH",
    "RIO-SSH-BANNER-OS",
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_servers(tmp_path_factory.mktemp("ssh-lab"), "ssh", "ssh-sound") as running:
        yield running


def _observed(observations: tuple[Observation, ...], key: str) -> Observation:
    return next(o for o in observations if o.key == key)


def test_planted_legacy_algorithms_and_password_auth_are_found(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit(
        "ssh", lab.ip("ssh"), port=22, params={"timeout": 10, "auth_methods": True}
    )
    result = asyncio.run(SshProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == 2
    banner = _observed(result.observations, "ssh.banner")
    assert banner.evidence is not None and banner.evidence.startswith("SSH-2.0-OpenSSH_")
    legacy = {o.key: o.value for o in result.observations if o.key.startswith("ssh.legacy.")}
    assert "diffie-hellman-group1-sha1" in legacy["ssh.legacy.kex"]["algorithms"]
    assert legacy["ssh.legacy.host_key"]["algorithms"] == ["ssh-rsa"]
    assert {"aes128-cbc", "3des-cbc"} <= set(legacy["ssh.legacy.cipher"]["algorithms"])
    assert {"hmac-md5", "hmac-sha1-96"} <= set(legacy["ssh.legacy.mac"]["algorithms"])
    auth = _observed(result.observations, "ssh.auth").value
    assert auth["password"] is True and "publickey" in auth["methods"]
    findings = derive_findings(result, target=permit.target, catalogue=catalogue)
    assert {f.rule for f in findings} == SSH_RULES
    assert all(f.port == 22 and f.ip == lab.ip("ssh") for f in findings)


def test_sound_sshd_has_no_ssh_finding(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit(
        "ssh", lab.ip("ssh-sound"), port=22, params={"timeout": 10, "auth_methods": True}
    )
    result = asyncio.run(SshProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    auth = _observed(result.observations, "ssh.auth").value
    assert auth["known"] is True and auth["methods"] == ["publickey"]
    assert derive_findings(result, target=permit.target, catalogue=catalogue) == []


def test_without_auth_methods_the_probe_opens_one_connection_and_never_authenticates(
    lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    permit = issue_permit("ssh", lab.ip("ssh"), port=22, params={"timeout": 10})
    result = asyncio.run(SshProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == 1
    assert not any(o.key == "ssh.auth" for o in result.observations)


def test_closed_port_is_unreachable(lab: Lab, issue_permit: IssuePermit, ctx: ProbeContext) -> None:
    # An address of the lab's block where nothing listens.
    free = lab.block.ip(250)
    permit = issue_permit("ssh", free, port=22, params={"timeout": 2})
    result = asyncio.run(SshProbe().run(permit, ctx))
    assert result.outcome == "unreachable"
    assert result.observations == ()


def test_kexinit_parser_reads_the_name_lists_and_refuses_a_truncated_packet() -> None:
    def name_list(names: str) -> bytes:
        return len(names).to_bytes(4, "big") + names.encode()

    lists = ["curve25519-sha256,diffie-hellman-group1-sha1", "ssh-ed25519"]
    lists += ["aes128-ctr", "aes128-cbc", "hmac-sha2-256", "hmac-md5", "none", "none", "", ""]
    payload = bytes([20]) + bytes(16) + b"".join(name_list(n) for n in lists) + bytes(5)
    kexinit = parse_kexinit(payload)
    assert kexinit.cipher == ("aes128-ctr", "aes128-cbc")
    assert legacy_algorithms(kexinit) == {
        "kex": ["diffie-hellman-group1-sha1"],
        "host_key": [],
        "cipher": ["aes128-cbc"],
        "mac": ["hmac-md5"],
    }
    with pytest.raises(ValueError, match="runs past"):
        parse_kexinit(payload[:30])
    with pytest.raises(ValueError, match="not KEXINIT"):
        parse_kexinit(bytes([21]) + payload[1:])
