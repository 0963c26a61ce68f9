"""Least privilege and confidentiality (MPS Order 151, Art. 5 and 17).

- :mod:`~orchestrator.access.identity`: who is asking, proven by a signed challenge;
- :mod:`~orchestrator.access.roles`: the one place that says who may do what;
- :mod:`~orchestrator.access.evidence`: reading evidence, grants, the access log;
- :mod:`~orchestrator.access.purge`: crypto-shredding evidence of closed, archived runs.
"""

from __future__ import annotations

from orchestrator.access.evidence import (
    AccessRecord,
    GrantInfo,
    access_log,
    grant_evidence,
    read_evidence,
)
from orchestrator.access.identity import authenticate
from orchestrator.access.purge import purge
from orchestrator.access.roles import Action, authorize, decide, visible_notices, visible_runs

__all__ = [
    "AccessRecord",
    "Action",
    "GrantInfo",
    "access_log",
    "authenticate",
    "authorize",
    "decide",
    "grant_evidence",
    "purge",
    "read_evidence",
    "visible_notices",
    "visible_runs",
]
