"""Findings: rules that turn observations into findings, and the catalogue that words them."""

from __future__ import annotations

from probes.findings.catalogue import (
    Catalogue,
    CatalogueError,
    Reference,
    Rule,
    load_catalogue,
)
from probes.findings.rules import RULE_IDS, Finding, derive_findings

__all__ = [
    "RULE_IDS",
    "Catalogue",
    "CatalogueError",
    "Finding",
    "Reference",
    "Rule",
    "derive_findings",
    "load_catalogue",
]
