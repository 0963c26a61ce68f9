"""The in-process executor: the probe runs in the runner's event loop (the embedded default)."""

from __future__ import annotations

from datetime import datetime

from probes.base import Permit, ProbeContext, ProbeResult
from probes.registry import probe_class

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Runs the probe here, as rio always has."""

    async def execute(
        self, permit: Permit, ctx: ProbeContext, *, granted_at: datetime
    ) -> ProbeResult:
        return await probe_class(permit.probe)().run(permit, ctx)

    async def aclose(self) -> None:
        return None
