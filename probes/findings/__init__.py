"""Findings: rules that turn observations into findings, and the catalogue that words them."""

from __future__ import annotations

from probes.findings.catalogue import (
    Catalogue,
    CatalogueError,
    Reference,
    Rule,
    load_catalogue,
)
from probes.findings.rules import (
    EVIDENCE_FORMAT,
    RULE_IDS,
    Finding,
    Location,
    derive_findings,
    finding_key,
    transport_of,
)
from probes.findings.versions import VersionTable, load_versions

__all__ = [
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
    "load_versions",
    "transport_of",
]
