"""Execute a run: plan -> gate -> log intent -> probe -> log outcome -> findings.

The runner owns the run's probe log while it runs (one writer per run). It:

- holds the run's lease (``lease.py``) while it runs, so no other process runs it at once; a
  ``running`` state it finds is a crash: intents without an outcome get an ``unknown`` outcome
  leaf and are not sent again (a lost probe is not silently repeated beyond the budget);
- skips plan items its log already decided, so a paused or crashed run resumes where it stopped;
- sends a probe only after its intent leaf is durable (``ProbeLog.durable``), and only when the
  gate admits it (``Gate.admit``: the budget slot is taken immediately before the connection is
  made; the send instant goes into the outcome leaf as ``sent_at``);
- keeps one lane per target: a lane decides its next request while the previous one is being
  sent, so each target has a request queued at the budget's pacer ahead of every release;
- never drops a probe for budget: a permit that could not get budget in time is logged as
  ``unsent`` and decided again; a probe not done when the window closes is carried to the next
  opening; a run is sealed only when every planned probe has a real outcome (otherwise it is
  paused, and its state leaf says what was not done and why);
- pauses (state leaf, checkpoint) when the gate refuses for the window or the lead time, so
  nothing is in flight after a window closes;
- hears a kill request as its commit rings the run's bell (``bell.py``; the database is polled
  too, every ``poll_seconds``); on a kill it logs a ``kill`` leaf, cancels in-flight
  probes (their outcome is ``killed``) and never sends a probe whose intent was logged before the
  kill but not yet sent;
- on completion writes the ``completed`` and ``sealed`` state leaves and the final checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.app import breaker_for, budget_for, gate_for, resolver_for
from orchestrator.clock import Clock
from orchestrator.context import Rio
from orchestrator.errors import BudgetStoreError, FailureError, InputError
from orchestrator.gate.budget import RateBudget
from orchestrator.gate.decide import Admission, Gate, ProbeRequest, Refusal
from orchestrator.gate.health import HealthBreaker
from orchestrator.gate.resolve import Resolver
from orchestrator.intake.notices import Notice, get_notice
from orchestrator.intake.registry import Person
from orchestrator.ledger.bodies import (
    KillBody,
    Outcome,
)
from orchestrator.ledger.log import ProbeLog
from orchestrator.run._egress import Egress
from orchestrator.run._findings import FindingsBook, Keyed
from orchestrator.run._identity import user_agent
from orchestrator.run._lanes import Lanes, lane_key
from orchestrator.run._outcomes import outcome_body
from orchestrator.run._resume import STOPPING, logged_items
from orchestrator.run.batches import PortBatcher
from orchestrator.run.bell import KillBell
from orchestrator.run.executors import Executor, executor_for
from orchestrator.run.lease import RunLease, settle_crash
from orchestrator.run.lifecycle import RunLifecycle
from orchestrator.run.plan import Plan
from orchestrator.run.progress import Progress
from orchestrator.run.runs import get_run, run_launcher
from orchestrator.run.state import PauseReason, RunState
from orchestrator.run.wire import WireMark
from orchestrator.store.evidence import cipher_for
from probes.base import Permit, ProbeContext, ProbeResult
from probes.errors import ProbeError
from probes.findings import (
    Catalogue,
    CatalogueError,
    Finding,
    VersionTable,
    derive_findings,
    load_catalogue,
    load_versions,
    transport_of,
)
from probes.http import HttpClients

__all__ = ["Progress", "Runner"]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Parts:
    """What every lane of one run works with."""

    gate: Gate
    log: ProbeLog
    health: HealthBreaker
    budget: RateBudget
    deferred: list[ProbeRequest]
    """requests of targets the breaker paused, retried after the cool-down"""


class _RunView:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.killed = False

    def active(self) -> tuple[bool, str]:
        return (False, "killed") if self.killed else (True, "active")


def _versions(path: Path | None) -> VersionTable:
    """The versions file (``RIO_VERSIONS_FILE``, else the packaged one), refused loudly if bad."""
    try:
        return load_versions(path)
    except CatalogueError as exc:
        raise InputError(f"RIO_VERSIONS_FILE: {exc}") from exc


class Runner:
    """Runs one run to completion, pause or abort."""

    def __init__(
        self,
        rio: Rio,
        run_id: str,
        *,
        clock: Clock | None = None,
        resolver: Resolver | None = None,
        dns_port: int | None = None,
        catalogue: Catalogue | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        poll_seconds: float = 0.25,
        executor: Executor | None = None,
    ) -> None:
        self.rio = rio
        self.run_id = run_id
        self.clock = clock or rio.clock
        settings = rio.settings
        self.resolver = resolver or resolver_for(rio)
        self.dns_port = dns_port if dns_port is not None else settings.dns_port
        self.catalogue = catalogue or load_catalogue()
        self.versions = _versions(settings.versions_file)
        self.on_progress = on_progress
        self.poll_seconds = poll_seconds
        self.progress = Progress()
        #: where permitted probes are sent from (``RIO_EXECUTOR``); port batches stay here
        self.executor: Executor = executor or executor_for(settings)
        self._view = _RunView(run_id)
        self._inflight: set[asyncio.Task[None]] = set()
        self._sem = asyncio.Semaphore(1)
        self._not_done: dict[str, int] = {}
        self._stop: str | None = None
        self._fault: Exception | None = None
        """the first unexpected error of a lane: it stops the run (see :meth:`_lane`)"""
        #: why the run stopped early because something outside rio failed (the budget store)
        self.failure: BudgetStoreError | None = None
        self._kill_leaf_written = False
        self._person: Person | None = None
        with rio.db.session() as s:
            row = get_run(s, run_id)
            self.notice: Notice = get_notice(s, row.notice_id)
            self._person = run_launcher(s, row)
            # Who scans under which notice, for the defender's logs (never the object's contact).
            self._user_agent = user_agent(
                s, self.notice, verify_url=rio.settings.verify_url(self.notice.id)
            )
        self._from = rio.settings.contact
        self.policy = self.notice.policy
        self._egress = Egress(settings.egress, self.notice.sources)
        self.cipher = cipher_for(rio)
        self._salt: bytes | None = None
        self._book: FindingsBook | None = None
        self._http: HttpClients | None = None
        self._ports: PortBatcher | None = None

    # -- setup -------------------------------------------------------------------------------

    def _budget(self) -> RateBudget:
        return budget_for(self.rio, self.notice)

    def _breaker(self) -> HealthBreaker:
        return breaker_for(self.notice)

    # -- the run -----------------------------------------------------------------------------

    async def execute(self) -> RunState:
        """Run until completed, paused (window/health) or aborted; returns the final state.

        Raises:
            StateError: another process is running this run (its lease is held).
        """
        with RunLease(self.rio, self.run_id):
            return await self._execute_leased()

    async def _execute_leased(self) -> RunState:
        log = ProbeLog(
            self.rio.db,
            self.run_id,
            self.rio.signing_key,
            clock=self.clock,
            checkpoint_every=self.rio.settings.checkpoint_every,
            checkpoint_seconds=self.rio.settings.checkpoint_seconds,
        )
        budget = self._budget()
        health = self._breaker()
        gate = gate_for(
            self.rio,
            self.notice,
            self._view,
            launcher=lambda: self._person,
            sink=log,
            budget=budget,
            health=health,
            resolver=self.resolver,
            clock=self.clock,
        )
        plan = Plan(self.notice.scope, self.policy)
        self.progress.planned = plan.count()
        self.progress.budget_per_s = self.policy.rates.per_notice
        # One http client per target class for the whole run (not one client and TLS context
        # per probe); closed with the run.
        self._http = HttpClients(
            self._user_agent, from_address=self._from, max_connections=self.policy.concurrency
        )
        # Port permits leave in batches, one nmap per batch, at the run's tightest shared rate;
        # half the concurrency lets the next batch be decided while one is on the wire.
        rates = self.policy.rates
        self._ports = PortBatcher(
            self._context(),
            max_rate=min(rates.per_network, rates.per_notice, rates.global_),
            max_batch=max(1, self.policy.concurrency // 2),
            killed=lambda: self._view.killed,
        )
        watcher = asyncio.create_task(self._watch(log))
        try:
            return await self._execute(log, gate, plan, health, budget)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self._ports.close()
            await self._http.aclose()
            await self.executor.aclose()
            await budget.close()
            await log.close()

    async def _execute(
        self, log: ProbeLog, gate: Gate, plan: Plan, health: HealthBreaker, budget: RateBudget
    ) -> RunState:
        decided, orphans = logged_items(self.rio.db, self.run_id)
        self._book = await asyncio.to_thread(FindingsBook, self.rio.db, self.run_id, self.cipher)
        # We hold the lease: a `running` state left behind is a crash (lease.py); its intents
        # without an outcome become `unknown` and are never sent again.
        await settle_crash(self.rio, self.run_id, log, orphans, self.clock.now())
        crashed = await asyncio.to_thread(self._paused_by_crash)
        reason = "resumed after crash" if crashed else "resumed" if decided else "started"
        planned = self.progress.planned

        def count_planned(row: Any) -> None:
            row.planned = planned

        now = self.clock.now()
        await RunLifecycle(self.rio.db, log).start(reason=reason, at=now, also=count_planned)
        self.progress.decided = len(decided)
        await self._check_kill(log)

        self._sem = asyncio.Semaphore(self.policy.concurrency)
        deferred: list[ProbeRequest] = []
        parts = _Parts(gate=gate, log=log, health=health, budget=budget, deferred=deferred)
        await self._run_lanes(plan, decided, parts)
        # Targets the breaker paused: retry their items after the cool-down, a few times.
        for _ in range(3):
            if self._stop is not None or not deferred:
                break
            await asyncio.sleep(min(self.policy.health.cooldown.total_seconds(), 30.0))
            retry, deferred[:] = list(deferred), []
            await self._run_lanes(retry, set(), parts)
        if self._fault is not None:
            await self._settle_fault(log, self._fault)
        if deferred:
            self._not_done["target paused by the health breaker"] = len(deferred)
        return await self._finish(log)

    def _lane_limits(self) -> Lanes:
        """As many lanes as it takes to keep the shared budgets full, within the concurrency."""
        r = self.policy.rates
        needed = 2 * math.ceil(min(r.per_notice, r.global_, r.per_network * 256) / r.per_ip) + 1
        lanes = max(1, min(self.policy.concurrency, needed))
        return Lanes(limit=lanes, queued_limit=4 * lanes + 64)

    async def _run_lanes(
        self,
        requests: Iterable[ProbeRequest],
        skip: set[int],
        parts: _Parts,
    ) -> None:
        """Feed the requests into per-target lanes (bounded) and wait until all are done."""
        lanes = self._lane_limits()
        for req in requests:
            if self._stop is not None:
                break
            if req.item in skip:
                continue
            while lanes.queued >= lanes.queued_limit and self._stop is None:
                lanes.room.clear()
                await lanes.room.wait()
            key = lane_key(req)
            queue = lanes.queues.get(key)
            if queue is None:
                while len(lanes.queues) >= lanes.limit and self._stop is None:
                    lanes.room.clear()
                    await lanes.room.wait()
                if self._stop is not None:
                    break
                queue = lanes.queues[key] = deque()
                queue.append(req)
                lanes.queued += 1
                self._track(self._lane(key, queue, lanes, parts))
            else:
                queue.append(req)
                lanes.queued += 1
        await self._drain()

    def _track(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _lane(
        self,
        key: str,
        queue: deque[ProbeRequest],
        lanes: Lanes,
        parts: _Parts,
    ) -> None:
        """One target's requests in order; hands the lane on the moment a probe is admitted.

        An exception that is no probe's answer (a bug, the broker, the log's database) is a
        fault: nothing more is started, the lane lets go of its room, and the run ends as if
        its process had died (:meth:`_settle_fault`). Swallowed, it left the run hanging on a
        lane that never closed, or sealed with an intent that has no outcome.
        """
        try:
            await self._lane_steps(key, queue, lanes, parts)
        except Exception as exc:
            if self._fault is None:
                self._fault = exc
            if self._stop is None:
                self._stop = "fault"
            lanes.drop(key, queue)

    async def _lane_steps(
        self,
        key: str,
        queue: deque[ProbeRequest],
        lanes: Lanes,
        parts: _Parts,
    ) -> None:
        while True:
            if not queue or self._stop is not None:
                lanes.drop(key, queue)
                return
            req = queue.popleft()
            lanes.queued -= 1
            lanes.room.set()
            admitted = await self._prepare(req, parts.gate, parts.log, parts.deferred)
            if admitted is None:
                continue
            if isinstance(admitted, str):
                queue.appendleft(req)
                lanes.queued += 1
                continue
            permit, admission = admitted
            if permit.probe == "port" and self._ports is not None:
                # An nmap batch sends later than its grant: the target's next probe waits for
                # the batch, whose traced sends then count in the target's budget (below).
                await self._send_and_record(
                    permit, admission, parts.log, parts.health, parts.budget
                )
                continue
            # Hand the lane on before sending, so its next request waits for the next release.
            if queue and self._stop is None:
                self._track(self._lane(key, queue, lanes, parts))
            else:
                lanes.close(key)
            await self._send_and_record(permit, admission, parts.log, parts.health, parts.budget)
            return

    async def _settle_fault(self, log: ProbeLog, fault: Exception) -> None:
        """End a run that a fault stopped as a crash ends: logged intents without an outcome
        become ``unknown`` (never sent again), the run is ``paused (crash)``, resumable; then
        raise, so that whoever started the run hears why instead of a seal."""
        try:
            if log.next_seq:  # every queued leaf committed before orphans are counted
                await log.durable(log.next_seq - 1)
            _, orphans = logged_items(self.rio.db, self.run_id)
            await settle_crash(self.rio, self.run_id, log, orphans, self.clock.now())
        except Exception as again:  # the log's own store may be what failed: resume settles it
            raise FailureError(
                f"run {self.run_id} stopped by a fault ({type(fault).__name__}: {fault}); "
                f"settling it failed too ({type(again).__name__}: {again}): "
                f"rio run resume {self.run_id} settles it once the cause is mended"
            ) from fault
        raise FailureError(
            f"run {self.run_id} stopped by a fault ({type(fault).__name__}: {fault}): nothing "
            f"more was sent, every logged probe has an outcome, the run is paused (crash); "
            f"rio run resume {self.run_id} goes on once the cause is mended"
        ) from fault

    async def _drain(self) -> None:
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _finish(self, log: ProbeLog) -> RunState:
        now = self.clock.now()
        life = RunLifecycle(self.rio.db, log)
        if self._view.killed:
            await life.abort(at=now, also=self._save_counts)
        elif self._stop is None and self._not_done:
            # Not every planned probe has an outcome: the run is not sealed, and says why.
            why = "; ".join(f"{n} {reason}" for reason, n in sorted(self._not_done.items()))
            missing = self.progress.planned - self.progress.decided
            text = f"{missing} of {self.progress.planned} planned probes not done: {why}"
            await life.pause(PauseReason.HEALTH, why=text, at=now, also=self._save_counts)
            return RunState.PAUSED
        elif self._stop is not None:
            reason = {
                "window": PauseReason.WINDOW,
                "notice": PauseReason.WINDOW,
                "store": PauseReason.STORE,
            }.get(self._stop, PauseReason.OPERATOR)
            await life.pause(reason, why=self._stop, at=now, also=self._save_counts)
            return RunState.PAUSED
        else:
            await life.complete(at=now, also=self._save_counts)
        return RunState.SEALED

    def _paused_by_crash(self) -> bool:
        with self.rio.db.session() as s:
            return get_run(s, self.run_id).pause_reason == PauseReason.CRASH.value

    def _save_counts(self, row: Any) -> None:
        row.done = self.progress.decided
        row.refused = self.progress.refusals
        row.failed = sum(v for k, v in self.progress.outcomes.items() if k != "ok")

    # -- one probe ---------------------------------------------------------------------------

    async def _prepare(
        self, req: ProbeRequest, gate: Gate, log: ProbeLog, deferred: list[ProbeRequest]
    ) -> tuple[Permit, Admission] | str | None:
        """Decide, make the intent durable, wait for a concurrency slot and the budget.

        Returns:
            ``(permit, admission)`` when the probe is to be sent now; ``"again"`` when the
            permit went unused for budget (decide the request afresh); ``None`` otherwise
            (refused, stopped, deferred or killed: already accounted for).
        """
        decision = await gate.decide(req)
        if isinstance(decision, Refusal):
            self.progress.refusals += 1
            if decision.check in STOPPING:
                if self._stop is None and not self._view.killed:
                    self._stop = decision.check
                return None
            if decision.check == "health":
                self.progress.paused_targets.add(req.ip or req.host or req.target)
                deferred.append(req)
                return None
            self.progress.decided += 1
            self._report()
            return None
        permit = decision
        self.progress.permits += 1
        held = False
        admission: Admission | None = None
        try:
            await log.durable(permit.decision)
            if not self._view.killed:
                await self._sem.acquire()
                held = True
                admission = await gate.admit(permit, cost=req.cost)
        except asyncio.CancelledError:
            if not self._view.killed:
                if held:
                    self._sem.release()
                raise
        except BudgetStoreError as exc:
            # No budget can be granted, so no probe may leave: this one is logged unsent, no new
            # one starts, and the run pauses (resumable) instead of being sealed as decided.
            if held:
                self._sem.release()
            await self._outcome(log, permit, None, Outcome.UNSENT, [])
            self.progress.decided += 1
            if self.failure is None:
                self.failure = exc
            if self._stop is None and not self._view.killed:
                self._stop = "store"
            return None
        except Exception:
            if held:  # a fault (see _lane): the slot goes back, the run stops
                self._sem.release()
            raise
        if self._view.killed or admission is None:
            # Logged before the kill, not yet sent: it is never sent.
            if held:
                self._sem.release()
            await self._outcome(log, permit, None, "killed", [])
            self.progress.decided += 1
            return None
        if not admission:
            self._sem.release()
            await self._outcome(log, permit, None, Outcome.UNSENT, [], reason=admission)
            if admission.check == "rate":
                return "again"
            if admission.check == "health":
                self.progress.paused_targets.add(permit.ip)
                deferred.append(req)
            elif self._stop is None and admission.check in STOPPING:
                self._stop = admission.check
            return None
        self.progress.note_intent(req.cost)
        return permit, admission

    async def _send_and_record(
        self,
        permit: Permit,
        admission: Admission,
        log: ProbeLog,
        health: HealthBreaker,
        budget: RateBudget,
    ) -> None:
        """Send now (the gate just admitted it), then log the outcome and feed the breaker."""
        mark = None
        if admission.stamp is not None and admission.at is not None:
            mark = WireMark(
                budget,
                ip=permit.ip,
                notice_id=self.notice.id,
                cost=admission.cost,
                stamp=admission.stamp,
                at=admission.at,
            )
        try:
            result = await self._send(permit, admission, mark)
        finally:
            self._sem.release()
        if mark is not None:
            if result.connection_times:
                # Traced on the wire (an nmap batch): the units move to those instants.
                mark.traced(result.connection_times)
            else:
                # Over: the target received all of it before now (a no-op when the probe
                # already reported the answer to its last send).
                mark(end=True)
        findings = self._findings(permit, result) if result.outcome == "ok" else []
        sent_at = mark.sent_at if mark is not None else admission.at
        await self._outcome(log, permit, result, result.outcome, findings, sent_at=sent_at)
        change = health.observe(
            permit.ip,
            outcome=result.outcome,
            latency=result.latency,
            http_status=result.http_status,
            retry_after=result.retry_after,
        )
        if change is not None:
            budget.set_factor(permit.ip, change.factor)
            await log.append("health", change.to_json(), self.clock.now())
            if change.state == "paused":
                self.progress.paused_targets.add(permit.ip)
            elif change.state == "recovered":
                self.progress.paused_targets.discard(permit.ip)
        self.progress.decided += 1
        self._report()

    def _findings(self, permit: Permit, result: ProbeResult) -> list[Finding]:
        transport, scheme = transport_of(permit.probe, permit.params)
        return derive_findings(
            result,
            target=permit.target,
            catalogue=self.catalogue,
            object_id=self.notice.object_id,
            server_name=permit.server_name,
            port=permit.port,
            scheme=scheme,
            transport=transport,
            versions=self.versions,
        )

    def _context(self, on_wire: WireMark | None = None, source: str | None = None) -> ProbeContext:
        return ProbeContext(
            source_address=source,
            sources=self._egress.announced,
            on_wire=on_wire,
            user_agent=self._user_agent,
            from_address=self._from,
            nmap_path=self.rio.settings.nmap_path,
            dns_port=self.dns_port,
            cancelled=lambda: self._view.killed,
            http_clients=self._http,
        )

    async def _send(
        self, permit: Permit, admission: Admission, mark: WireMark | None = None
    ) -> ProbeResult:
        started = time.monotonic()
        in_runner = permit.probe == "port" and self._ports is not None
        source, not_sent = self._egress.pick(permit.probe, in_runner=in_runner)
        if not_sent is not None:
            # Never from an address the notice did not announce: logged, not sent.
            return ProbeResult(probe=permit.probe, ip=permit.ip, outcome="error", error=not_sent)
        ctx = self._context(mark, source)
        try:
            if in_runner and self._ports is not None:
                # The batch stops itself at its earliest deadline and on the kill switch.
                return await self._ports.scan(permit)
            # The probes honour their deadline themselves; this bound makes it certain: at the
            # deadline (never after the window closes) the probe is cancelled, sockets closed,
            # nmap killed. Nothing of this run is in flight after its window.
            # asyncio.timeout, not wait_for: no new task, the probe starts connecting at once.
            async with asyncio.timeout(max(0.0, permit.seconds_left())):
                granted = admission.at or self.clock.now()
                return await self.executor.execute(permit, ctx, granted_at=granted)
        except TimeoutError:
            outcome, error = "timeout", "stopped at the permit's deadline"
        except asyncio.CancelledError:
            if not self._view.killed:
                raise
            outcome, error = "killed", "kill switch"
        except ProbeError as exc:
            outcome, error = exc.outcome, str(exc)
            if outcome == "killed" and not self._view.killed:
                # Cancelled by the deadline bound above, not by the kill switch.
                outcome, error = "timeout", "stopped at the permit's deadline"
        return ProbeResult(
            probe=permit.probe,
            ip=permit.ip,
            outcome=outcome,
            error=error,
            started=started,
            elapsed=time.monotonic() - started,
        )

    async def _outcome(
        self,
        log: ProbeLog,
        permit: Permit,
        result: ProbeResult | None,
        outcome: str,
        findings: list[Finding],
        *,
        sent_at: datetime | None = None,
        reason: Admission | None = None,
    ) -> None:
        self.progress.outcomes[outcome] = self.progress.outcomes.get(outcome, 0) + 1
        keyed = [Keyed.of(f) for f in findings]
        if self._salt is None and result is not None and result.observations:
            self._salt = self.cipher.derive(self.run_id, "evidence-digest")
        body = outcome_body(
            permit.decision, result, outcome, keyed, salt=self._salt, sent_at=sent_at, reason=reason
        )
        if not keyed:
            await log.append("outcome", body.to_json(), self.clock.now())
            return
        # The findings are committed with their outcome leaf, in its group (no query here).
        book = self._book
        assert book is not None
        seq = log.next_seq
        write, added = book.change(seq, keyed)
        got = await log.append("outcome", body.to_json(), self.clock.now(), change=write)
        assert got == seq  # no await between: the sequence was this leaf's
        self.progress.findings += added

    # -- kill switch and progress ------------------------------------------------------------

    async def _watch(self, log: ProbeLog) -> None:
        # A committed kill rings the bell (run/bell.py): read at once. The poll stays for
        # runners the ring cannot reach (another host on a shared database).
        bell = KillBell(self.rio.db.engine, self.run_id)
        bell.open()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await bell.rung.wait()
                bell.rung.clear()
                await self._check_kill(log)
                self._report()
        finally:
            bell.close()

    async def _check_kill(self, log: ProbeLog) -> None:
        if self._view.killed:
            return
        row_kill = await asyncio.to_thread(self._read_kill)
        if row_kill is None:
            return
        by, reason = row_kill
        # Flag first, leaf next, with no await in between: no intent can follow the kill leaf.
        self._view.killed = True
        self._stop = "run"
        await log.append("kill", KillBody(by=by, reason=reason).to_json(), self.clock.now())
        for task in list(self._inflight):
            task.cancel()

    def _read_kill(self) -> tuple[str, str] | None:
        with self.rio.db.session() as s:
            row = get_run(s, self.run_id)
            self._person = run_launcher(s, row)
            if row.kill_requested_at is None:
                return None
            return row.killed_by or "unknown", row.kill_reason or ""

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)
