"""The ssh probe against Debian's real OpenSSH sshd on a loopback address, port 22.

Two configurations: one with legacy algorithms appended to OpenSSH's defaults and password
authentication on (the planted flaws), one sound (defaults, keys only, no Debian banner suffix).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.base import Observation, ProbeContext
from probes.findings import Catalogue, derive_findings
from probes.ssh import SshProbe, legacy_algorithms, parse_kexinit
from tests.probes.conftest import IssuePermit
from tests.support.daemons import Daemon, require_binary, session_address

pytestmark = pytest.mark.slow

SSH_RULES = {
    "RIO-SSH-LEGACY-KEX",
    "RIO-SSH-LEGACY-HOSTKEY",
    "RIO-SSH-LEGACY-CIPHER",
    "RIO-SSH-LEGACY-MAC",
    "RIO-SSH-PASSWORD-AUTH",
    "RIO-SSH-BANNER-OS",
}

WEAK = """
KexAlgorithms +diffie-hellman-group1-sha1,diffie-hellman-group14-sha1
HostKeyAlgorithms +ssh-rsa
Ciphers +aes128-cbc,3des-cbc
MACs +hmac-md5,hmac-sha1-96
PasswordAuthentication yes
"""
SOUND = """
PasswordAuthentication no
KbdInteractiveAuthentication no
DebianBanner no
"""


def _sshd(tmp: Path, address: str, extra: str) -> Daemon:
    sshd = require_binary("/usr/sbin/sshd", "openssh-server")
    keygen = require_binary("ssh-keygen", "openssh-client")
    for kind in ("rsa", "ed25519"):
        key = tmp / f"host_{kind}"
        if not key.exists():
            subprocess.run(
                [keygen, "-q", "-t", kind, "-N", "", "-f", str(key)], check=True, timeout=30
            )
    # sshd refuses to start without its privilege separation directory (the package makes it).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    config = tmp / "sshd_config"
    config.write_text(
        f"ListenAddress {address}:22\n"
        f"HostKey {tmp / 'host_rsa'}\nHostKey {tmp / 'host_ed25519'}\n"
        f"PidFile {tmp / 'sshd.pid'}\nUsePAM no\nMaxStartups 20\n" + extra
    )
    subprocess.run([sshd, "-t", "-f", str(config)], check=True, timeout=30)
    return Daemon(
        [sshd, "-D", "-e", "-f", str(config)], address=address, port=22, log=tmp / "sshd.log"
    )


@pytest.fixture(scope="module")
def weak_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with _sshd(tmp_path_factory.mktemp("sshd-weak"), session_address(), WEAK) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def sound_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with _sshd(tmp_path_factory.mktemp("sshd-sound"), session_address(), SOUND) as daemon:
        yield daemon


def _observed(observations: tuple[Observation, ...], key: str) -> Observation:
    return next(o for o in observations if o.key == key)


def test_planted_legacy_algorithms_and_password_auth_are_found(
    weak_sshd: Daemon, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit(
        "ssh", weak_sshd.address, port=22, params={"timeout": 10, "auth_methods": True}
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
    assert all(f.port == 22 and f.ip == weak_sshd.address for f in findings)


def test_sound_sshd_has_no_ssh_finding(
    sound_sshd: Daemon, issue_permit: IssuePermit, ctx: ProbeContext, catalogue: Catalogue
) -> None:
    permit = issue_permit(
        "ssh", sound_sshd.address, port=22, params={"timeout": 10, "auth_methods": True}
    )
    result = asyncio.run(SshProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    auth = _observed(result.observations, "ssh.auth").value
    assert auth["known"] is True and auth["methods"] == ["publickey"]
    assert derive_findings(result, target=permit.target, catalogue=catalogue) == []


def test_without_auth_methods_the_probe_opens_one_connection_and_never_authenticates(
    weak_sshd: Daemon, issue_permit: IssuePermit, ctx: ProbeContext
) -> None:
    permit = issue_permit("ssh", weak_sshd.address, port=22, params={"timeout": 10})
    result = asyncio.run(SshProbe().run(permit, ctx))
    assert result.outcome == "ok", result.error
    assert result.connections == 1
    assert not any(o.key == "ssh.auth" for o in result.observations)


def test_closed_port_is_unreachable(issue_permit: IssuePermit, ctx: ProbeContext) -> None:
    permit = issue_permit("ssh", session_address(), port=22, params={"timeout": 2})
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
