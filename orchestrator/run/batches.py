"""The run's port permits, scanned in batches: one nmap process for many targets.

Each port request is still decided by the gate on its own (one intent leaf per target and port
chunk, durable before anything is sent); :class:`PortBatcher` only changes how the permitted
scans go out. Permits gather while the previous batch is on the wire and leave together in one
nmap (:func:`probes.port_batch.scan_batch`):

* **one batch on the wire at a time**, at ``--max-rate`` = the run's tightest shared budget
  (per network, per notice, global), so the run's connection rate never exceeds it;
* **each address at most once per batch**, its permit's ports (never more than the per-IP
  budget, which the plan's port chunks respect), and an address scanned again only
  :data:`GAP` seconds after the batch that last scanned it ended: no one-second window at a
  target holds connections of two batches;
* **kill and deadlines**: the batch polls the kill switch and stops at its earliest permit
  deadline, terminating nmap; queued permits are answered ``killed`` without being sent, and
  every permit reports the connections nmap itself traced for its address.

The budgets' shared store counts a batch's units when its members are decided, which happens
at the budget's own pace while the previous batch scans: the store runs up to one batch ahead
of the wire, never behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from probes.base import Permit, ProbeContext, ProbeResult
from probes.errors import ProbeError
from probes.port_batch import MAX_BATCH, PreparedScan, batch_key, prepare_scan

__all__ = ["GAP", "PortBatcher"]

GAP = 1.05
"""seconds between the end of a batch and the next scan of any address it scanned (the 1-s
window plus a margin for the few milliseconds by which nmap's trace times can be early)"""

_LINGER = 0.05
"""seconds a batch that is not full waits for more permits"""

_STEP = 0.02
"""seconds between kill-switch checks while a batch waits"""


@dataclass(eq=False, slots=True)
class _Waiting:
    permit: Permit
    answer: asyncio.Future[ProbeResult]


class PortBatcher:
    """Groups port permits into nmap batches, one batch on the wire at a time.

    Args:
        ctx: the probe context (nmap path and kill switch).
        max_rate: connections per second for a batch.
        max_batch: most targets in one batch.
        killed: true once the run's kill switch fired.
    """

    def __init__(
        self,
        ctx: ProbeContext,
        *,
        max_rate: float,
        max_batch: int,
        killed: Callable[[], bool],
    ) -> None:
        self._ctx = ctx
        self._max_rate = max_rate
        self._max_batch = max(1, min(MAX_BATCH, max_batch))
        self._killed = killed
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._last_scan: dict[str, float] = {}  # address -> monotonic end of its last batch
        self._next: asyncio.Future[PreparedScan] | None = None
        self.batches = 0
        """batches started (one nmap process each)"""
        self.scanning = False
        """a batch is on the wire now"""

    async def scan(self, permit: Permit) -> ProbeResult:
        """Scan one permit in the next batch; returns its result when the batch ends.

        Raises:
            ProbeError: the batch could not run (nmap missing, a permit refused).
        """
        answer: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(permit, answer))
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        try:
            return await asyncio.shield(answer)
        except asyncio.CancelledError:
            if not self._killed():
                raise
            # The kill switch: the batch terminates nmap within a poll and reports what nmap
            # had sent for this address; a permit still queued is answered without a send.
            return await answer

    async def close(self) -> None:
        """Stop the worker; permits still waiting are answered ``killed`` without a send."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._drop_prepared()
        self._answer_unsent(self._queue, "killed", "run ended before the batch started")
        self._queue.clear()

    # -- the worker --------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._linger()
            batch = self._take()
            try:
                await self._run(batch)
            except asyncio.CancelledError:
                self._answer_unsent(batch, "killed", "run ended before the batch started")
                raise
            except Exception as exc:  # every waiting permit must get an answer
                failure = exc if isinstance(exc, ProbeError) else ProbeError(f"port batch: {exc}")
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(failure)

    async def _prepared_for(self, template: Permit) -> PreparedScan:
        """An nmap waiting for a batch of this shape: the one started ahead, or a new one."""
        if self._next is not None:
            upcoming, self._next = self._next, None
            try:
                prepared: PreparedScan | None = await upcoming
            except ProbeError:
                prepared = None
            if prepared is not None and prepared.key == batch_key(template):
                return prepared
            if prepared is not None:
                await prepared.discard()
        return await self._prepare(template)

    def _prepare(self, template: Permit) -> asyncio.Future[PreparedScan]:
        return asyncio.ensure_future(
            prepare_scan(template, self._ctx, max_rate=self._max_rate, hostgroup=self._max_batch)
        )

    async def _drop_prepared(self) -> None:
        upcoming, self._next = self._next, None
        if upcoming is None:
            return
        if not upcoming.done():
            upcoming.cancel()
        with contextlib.suppress(asyncio.CancelledError, ProbeError):
            prepared = await upcoming
            await prepared.discard()

    async def _linger(self) -> None:
        until = time.monotonic() + _LINGER
        while len(self._queue) < self._max_batch and not self._killed():
            left = until - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=left)

    def _take(self) -> list[_Waiting]:
        """The next batch: permits shaped like the first queued one, each address once."""
        key = batch_key(self._queue[0].permit)
        batch: list[_Waiting] = []
        rest: list[_Waiting] = []
        addresses: set[str] = set()
        for waiting in self._queue:
            permit = waiting.permit
            if (
                len(batch) < self._max_batch
                and permit.ip not in addresses
                and batch_key(permit) == key
            ):
                batch.append(waiting)
                addresses.add(permit.ip)
            else:
                rest.append(waiting)
        self._queue = rest
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        live = [w for w in batch if not w.answer.done()]
        if self._killed():
            self._answer_unsent(live, "killed", "kill switch before the batch started")
            return
        await self._respect_gap(live)
        if self._killed():
            self._answer_unsent(live, "killed", "kill switch before the batch started")
            return
        expired = [w for w in live if w.permit.seconds_left() <= 0]
        self._answer_unsent(expired, "timeout", "permit deadline passed before the batch")
        live = [w for w in live if w not in expired]
        if not live:
            return
        template = live[0].permit
        prepared = await self._prepared_for(template)
        # The next batch's nmap starts up while this one is on the wire; it gets no target
        # before this one has ended.
        self._next = self._prepare(template)
        self.batches += 1
        self.scanning = True
        try:
            results = await prepared.scan([w.permit for w in live], self._ctx)
        except ProbeError as exc:
            for waiting in live:
                waiting.answer.set_exception(exc)
            return
        finally:
            self.scanning = False
            ended = time.monotonic()
            for waiting in live:
                self._last_scan[waiting.permit.ip] = ended
        for waiting, result in zip(live, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(result)

    async def _respect_gap(self, batch: list[_Waiting]) -> None:
        now = time.monotonic()
        self._last_scan = {ip: t for ip, t in self._last_scan.items() if now - t < GAP}
        ready = max((self._last_scan.get(w.permit.ip, -GAP) + GAP for w in batch), default=now)
        while not self._killed():
            left = ready - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _STEP))

    @staticmethod
    def _answer_unsent(batch: list[_Waiting], outcome: str, why: str) -> None:
        for waiting in batch:
            if not waiting.answer.done():
                waiting.answer.set_result(
                    ProbeResult(
                        probe="port",
                        ip=waiting.permit.ip,
                        outcome=outcome,
                        error=why,
                        started=time.monotonic(),
                    )
                )
