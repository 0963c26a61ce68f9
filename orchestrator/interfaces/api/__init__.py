"""rio's HTTP API and pages (FastAPI), served by ``rio serve --api``.

Routes parse, call :mod:`orchestrator.services` and shape the answer; they decide nothing.
Identity comes from a signed challenge (:mod:`orchestrator.access.sessions`), rights from the
one role matrix (:mod:`orchestrator.access.roles`) that the services ask.
"""

from __future__ import annotations

from orchestrator.interfaces.api._app import create_app
from orchestrator.interfaces.api._context import ApiConfig

__all__ = ["ApiConfig", "create_app"]
