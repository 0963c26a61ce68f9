"""Offline audit of a run: verify an archive, review its log, report to the inspected object.

* :func:`verify_archive` checks an archive (docs/archive-format.md) with no database and no
  network and returns an :class:`AuditReport` of named checks (:data:`CHECK_NAMES`), against a
  trust anchor: a pinned orchestrator key id or a trusted-keys file (:func:`load_trusted_keys`);
* :mod:`orchestrator.audit.logview` lists leaves readably with a per-target summary;
* :mod:`orchestrator.audit.transparency` builds the report an inspected object receives.
"""

from __future__ import annotations

from orchestrator.audit._report import CHECK_NAMES, AuditReport, CheckResult, Offence
from orchestrator.audit.verify import load_trusted_keys, verify_archive

__all__ = [
    "CHECK_NAMES",
    "AuditReport",
    "CheckResult",
    "Offence",
    "load_trusted_keys",
    "verify_archive",
]
