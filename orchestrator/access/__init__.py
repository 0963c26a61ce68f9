"""Least privilege and confidentiality (MPS Order 151, Art. 5 and 17).

- :mod:`~orchestrator.access.identity`: who is asking, proven by a signed challenge;
- :mod:`~orchestrator.access.roles`: the one place that says who may do what;
- :mod:`~orchestrator.access.evidence`: reading evidence, grants, the access log;
- :mod:`~orchestrator.access.purge`: crypto-shredding evidence of closed, archived runs.

Names resolve on first use (:mod:`orchestrator._facade`): importing the package loads nothing,
so ``from orchestrator.access.identity import ...`` does not load evidence, purge and archives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator._facade import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "AccessRecord": "orchestrator.access.evidence",
    "GrantInfo": "orchestrator.access.evidence",
    "access_log": "orchestrator.access.evidence",
    "grant_evidence": "orchestrator.access.evidence",
    "read_evidence": "orchestrator.access.evidence",
    "authenticate": "orchestrator.access.identity",
    "purge": "orchestrator.access.purge",
    "Action": "orchestrator.access.roles",
    "authorize": "orchestrator.access.roles",
    "decide": "orchestrator.access.roles",
    "visible_notices": "orchestrator.access.roles",
    "visible_runs": "orchestrator.access.roles",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
