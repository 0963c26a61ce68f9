"""The probe registry is an explicit list, and the probe modules export what we mean."""

from __future__ import annotations

import importlib

import pytest

from probes.base import Disruption, Probe
from probes.registry import PROBES, UnknownProbeError, probe_class, probe_names


def test_registry_lists_exactly_the_known_probes_with_their_disruption() -> None:
    assert {cls.name: cls.disruption for cls in PROBES} == {
        "port": Disruption.LIGHT,
        "http": Disruption.LIGHT,
        "tls": Disruption.LIGHT,
        "dns": Disruption.PASSIVE,
        "dns-axfr": Disruption.INTRUSIVE,
        "ssh": Disruption.LIGHT,
        "redis": Disruption.LIGHT,
        "memcached": Disruption.LIGHT,
        "ftp": Disruption.LIGHT,
        "http-content": Disruption.LIGHT,
        "smtp": Disruption.LIGHT,
    }
    assert len(set(probe_names())) == len(PROBES)


@pytest.mark.parametrize("cls", PROBES, ids=lambda c: c.name)
def test_every_registered_class_satisfies_the_probe_protocol(cls: type[Probe]) -> None:
    assert isinstance(cls(), Probe)
    assert probe_class(cls.name) is cls


def test_unknown_probe_is_a_key_error_that_lists_the_known_names() -> None:
    with pytest.raises(KeyError) as caught:
        probe_class("exploit")
    assert isinstance(caught.value, UnknownProbeError)
    assert str(caught.value) == (
        "unknown probe 'exploit' (known: port, http, tls, dns, dns-axfr, ssh, redis, memcached, ftp, http-content, smtp)"
    )


EXPORTS = {
    "probes.port": {
        "SAFE_SCRIPTS",
        "PortProbe",
        "build_nmap_args",
        "find_nmap",
        "minimum_host_timeout",
        "port_observations",
        "scan_args",
        "scan_outcome",
    },
    "probes.port_batch": {
        "MAX_BATCH",
        "PreparedScan",
        "batch_key",
        "build_batch_args",
        "check_batch",
        "prepare_scan",
        "scan_batch",
    },
    "probes.http": {"HttpClients", "HttpProbe", "base_url", "make_client"},
    "probes.tls": {
        "INSPECT_HANDSHAKES",
        "CertificateFacts",
        "TlsProbe",
        "certificate_facts",
        "hostname_matches",
    },
    "probes.dns": {"RECORD_TYPES", "RECURSION_CHECK_NAME", "DnsProbe", "DnsZoneTransferProbe"},
    "probes.ssh": {
        "LEGACY_ALGORITHMS",
        "KexInit",
        "SshProbe",
        "legacy_algorithms",
        "parse_kexinit",
    },
    "probes.services": {
        "FTP_ANONYMOUS_ADDRESS",
        "SMTP_EHLO_NAME",
        "FtpProbe",
        "MemcachedProbe",
        "RedisProbe",
        "SmtpProbe",
        "ehlo_extensions",
    },
    "probes.content": {"CONTENT_PATHS", "HttpContentProbe", "mask_secrets"},
    "probes.registry": {"PROBES", "UnknownProbeError", "probe_class", "probe_names"},
    "probes.findings": {
        "EVIDENCE_FORMAT",
        "RULE_IDS",
        "Catalogue",
        "CatalogueError",
        "Finding",
        "Location",
        "Reference",
        "Rule",
        "VersionTable",
        "derive_findings",
        "finding_key",
        "load_catalogue",
        "transport_of",
        "load_versions",
    },
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_public_surface_is_what_we_mean_to_export(module: str) -> None:
    loaded = importlib.import_module(module)
    assert set(loaded.__all__) == EXPORTS[module]
    for name in loaded.__all__:
        assert hasattr(loaded, name)
