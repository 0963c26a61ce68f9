"""The gate: the single place in rio that says yes to a probe.

:meth:`Gate.decide` returns a :class:`~probes.base.Permit` or a :class:`Refusal`; deny is the
default and every check must pass, in this fixed order:

0. ``request``    the request itself is well formed: a canonical address, DNS names (normalised
                  here, once: IDNA, case, trailing dot), ports, cost (a malformed request is a
                  logged refusal too: every answer of the gate is in the log);
1. ``run``        the run is active and not killed;
2. ``notice``     the notice's lead time is met (``now - announced_at >= min_notice_lead``);
3. ``entrusted``  the launcher is an active technician of the vendor entrusted by the notice
                  (or an active officer, where no vendor was entrusted);
4. ``window``     now lies inside an announced window *and* a policy window, outside blackout
                  dates, and the permit's deadline ends before both windows close;
5. ``probe``      the policy allows the probe, its disruption class is within the maximum, and
                  its parameters are within the policy's (ports, paths, timeouts, scripts);
6. ``scope``      every address of the target (all A/AAAA answers of a name, resolved once and
                  pinned) is inside the scope and outside its excludes (exclude wins); an
                  excluded name also excludes every name whose CNAME chain passes through it
                  (the chain is in the logged resolution);
7. ``health``     the target is not paused by the health breaker (checked before the budget so a
                  paused target spends no budget);
8. ``rate``       the probe's cost fits every one-second budget (per IP, per network, per
                  notice, global); a cost that never fits is refused.

The budget itself is taken later, by :meth:`Gate.admit`, immediately before the probe connects
(after its intent is durable): the grant's moment is the send time, which the runner records in
the outcome leaf (``sent_at``) and the audit replays. ``admit`` waits for budget (a budget
refusal means *wait*, never *drop*) and, once it has the units, checks run, entrustment, window
and health again with no await before the send: a kill, a revocation, a closing window or a
breaker pause that happened meanwhile still wins, and the permit then goes unused.

Every decision is handed to the :class:`DecisionSink` (the probe log) *before* the permit is
returned: a permit's ``decision`` is the sequence number of its logged intent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import InputError, ResolutionError
from orchestrator.gate.addresses import AddressScope, parse_ip, parse_network
from orchestrator.gate.budget import RateBudget
from orchestrator.gate.health import HealthBreaker
from orchestrator.gate.params import params_problem
from orchestrator.gate.resolve import Resolution, Resolver
from orchestrator.intake.hostnames import normalise_host
from orchestrator.intake.notices import Notice
from orchestrator.intake.registry import Person, Role
from orchestrator.intake.scope import Scope
from orchestrator.ledger.bodies import Check, IntentBody, RefusalBody
from probes.base import Disruption, Permit, _seal_permit
from probes.registry import probe_class

__all__ = [
    "CHECKS",
    "Admission",
    "CheckVerdict",
    "DecisionSink",
    "Gate",
    "ProbeRequest",
    "Refusal",
    "RunView",
    "address_scope",
    "excluded_name",
]

CHECKS = tuple(c.value for c in Check)
"""the check names in the order they run (:class:`~orchestrator.ledger.bodies.Check` values)"""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeRequest:
    """What a run asks the gate for: one probe against one target.

    Attributes:
        item: position in the run's plan (ties the decision to the plan).
        probe: probe name (``port``, ``http``, ``tls``, ``dns``).
        target: the announced target's label (``cidr:127.0.10.0/27``).
        ip: the address to probe, for ip/cidr targets (and a domain's name server).
        host: a DNS name to resolve and pin (host/url targets), used as Host/SNI.
        server_name: Host/SNI or DNS domain when it is not resolved here (dns probe).
        port: the port for single-port probes.
        ports: the ports of a port sweep.
        params: the policy's parameters for the probe.
        cost: budget units (connections) the probe will use.
    """

    item: int
    probe: str
    target: str
    ip: str | None = None
    host: str | None = None
    server_name: str | None = None
    port: int | None = None
    ports: tuple[int, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    cost: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "probe": self.probe,
            "target": self.target,
            "ip": self.ip,
            "host": self.host,
            "server_name": self.server_name,
            "port": self.port,
            "ports": list(self.ports),
            "cost": self.cost,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckVerdict:
    """One check's answer; true when it passed."""

    check: Check
    ok: bool
    reason: str
    detail: str

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """The gate's no: which check failed, a machine reason and a sentence for people."""

    request: ProbeRequest
    check: Check
    reason: str
    sentence: str
    at: datetime
    resolution: Resolution | None = None
    decision: int | None = None

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"refused ({self.check}: {self.reason}): {self.sentence}"

    def to_json(self) -> dict[str, Any]:
        """The refusal leaf's ``data``."""
        return RefusalBody(
            request=self.request.to_json(),
            check=self.check,
            reason=self.reason,
            sentence=self.sentence,
            at=self.at.isoformat(),
            resolution=self.resolution.to_json() if self.resolution else None,
        ).to_json()


@dataclass(frozen=True, kw_only=True, slots=True)
class Admission:
    """The gate's go at the moment of sending (true), or why a permit went unused.

    Attributes:
        at: the send instant (the grant's moment on the gate's clock) when admitted.
        check: the check that stopped it (``rate``, ``run``, ``entrusted``, ``window``,
            ``health``), ``None`` when admitted.
        reason: machine reason (``rate:per_ip``, ``window-closing``, ...).
        sentence: for people.
    """

    at: datetime | None
    check: Check | None = None
    reason: str | None = None
    sentence: str = ""
    stamp: float | None = None
    """the same instant as the budget stamped it (the event loop's clock), when admitted"""
    cost: int = 0
    """the budget units granted"""

    def __bool__(self) -> bool:
        return self.check is None


class DecisionSink(Protocol):
    """Where decisions go before the gate answers (the probe log)."""

    async def log_decision(self, kind: str, body: dict[str, Any], at: datetime) -> int:
        """Append a decision leaf (``intent`` or ``refusal``); return its sequence number."""
        ...


class RunView(Protocol):
    """The run as the gate sees it."""

    run_id: str

    def active(self) -> tuple[bool, str]:
        """(may probes be sent now?, why not)."""
        ...


def address_scope(scope: Scope) -> AddressScope:
    """The address part of a scope: ip/cidr targets and domain name servers minus excludes."""
    includes, excludes = [], []
    for t in scope.targets:
        if t.kind in ("ip", "cidr"):
            includes.append(parse_network(t.value if t.kind == "cidr" else _host_net(t.value)))
        for ns in t.nameservers:
            includes.append(parse_network(_host_net(ns)))
    for t in scope.excludes:
        if t.kind in ("ip", "cidr"):
            excludes.append(parse_network(t.value if t.kind == "cidr" else _host_net(t.value)))
    return AddressScope.of(includes, excludes)


def _host_net(ip: str) -> str:
    return f"{ip}/{128 if ':' in ip else 32}"


def _port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _dns_name(what: str, value: Any) -> str:
    try:
        return normalise_host(value)
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} {exc}") from None


def normalise_request(req: ProbeRequest) -> ProbeRequest:
    """The request with its address and names in canonical form: the one place the gate does it.

    Host names are normalised by :func:`~orchestrator.intake.hostnames.normalise_host` (IDNA,
    case, trailing dot), as the scope loader normalised the announced names and excludes, so an
    exclude of ``admin.lab.test`` also stops ``ADMIN.lab.test.``. ``decide`` and ``explain``
    (hence ``rio gate explain``) both go through here.

    Raises:
        ValueError: a field is malformed; the message names it.
    """
    if not isinstance(req.item, int) or isinstance(req.item, bool):
        raise ValueError(f"item {req.item!r} is not a plan position")
    for name in ("probe", "target"):
        if not isinstance(getattr(req, name), str):
            raise ValueError(f"{name} {getattr(req, name)!r} is not text")
    ip = None
    if req.ip is not None:
        try:
            ip = str(parse_ip(req.ip))
        except ValueError as exc:
            raise ValueError(f"ip: {exc}") from None
    host = None if req.host is None else _dns_name("host", req.host)
    server_name = None if req.server_name is None else _dns_name("server name", req.server_name)
    if req.port is not None and not _port(req.port):
        raise ValueError(f"port {req.port!r} is not in 1..65535")
    if not isinstance(req.ports, tuple | list) or not all(_port(p) for p in req.ports):
        raise ValueError(f"ports {req.ports!r}: each must be in 1..65535")
    if not isinstance(req.cost, int) or isinstance(req.cost, bool) or req.cost < 1:
        raise ValueError(f"cost {req.cost!r} is not a positive number of connections")
    if not isinstance(req.params, Mapping):
        raise ValueError(f"params {req.params!r} is not a mapping")
    return replace(req, ip=ip, host=host, server_name=server_name, ports=tuple(req.ports))


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A value as it can be logged: JSON types kept, anything else as a short repr."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, str) and len(value) <= 256:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple) and depth < 2 and len(value) <= 64:
        return [_json_safe(v, depth + 1) for v in value]
    return repr(value)[:256]


def _loggable(req: ProbeRequest) -> ProbeRequest:
    """A malformed request, with every field in a form the probe log can hold."""
    item = req.item if isinstance(req.item, int) and not isinstance(req.item, bool) else -1
    return replace(
        req,
        item=item if abs(item) < 2**53 else -1,
        probe=_json_safe(req.probe),
        target=_json_safe(req.target),
        ip=_json_safe(req.ip),
        host=_json_safe(req.host),
        server_name=_json_safe(req.server_name),
        port=_json_safe(req.port),
        ports=tuple(_json_safe(list(req.ports) if isinstance(req.ports, tuple | list) else [])),
        params={},
        cost=_json_safe(req.cost),
    )


def excluded_name(scope: Scope, name: str) -> bool:
    """Whether the scope excludes ``name`` (a normalised host name): an excluded host or
    domain covers its subdomains. The gate and the offline audit both ask this."""
    for t in scope.excludes:
        if t.kind in ("host", "domain") and (name == t.value or name.endswith("." + t.value)):
            return True
    return False


class Gate:
    """Decides probe by probe for one run (or, without a run, explains)."""

    def __init__(
        self,
        *,
        notice: Notice,
        run: RunView | None,
        launcher: Callable[[], Person | None],
        budget: RateBudget,
        health: HealthBreaker,
        resolver: Resolver,
        sink: DecisionSink | None,
        clock: Clock | None = None,
    ) -> None:
        self.notice = notice
        self.scope = notice.scope
        self.policy = notice.policy
        self.run = run
        self._launcher = launcher
        self.budget = budget
        self.health = health
        self.resolver = resolver
        self.sink = sink
        self.clock = clock or SystemClock()
        self.addresses = address_scope(self.scope)

    # ---- the checks, each returning a verdict --------------------------------------------

    def check_run(self) -> CheckVerdict:
        if self.run is None:
            return CheckVerdict(
                check=Check.RUN, ok=False, reason="no-run", detail="no run is active"
            )
        ok, why = self.run.active()
        if not ok:
            return CheckVerdict(
                check=Check.RUN, ok=False, reason=why, detail=f"run {self.run.run_id} is {why}"
            )
        return CheckVerdict(
            check=Check.RUN, ok=True, reason="active", detail=f"run {self.run.run_id} active"
        )

    def check_notice(self, now: datetime) -> CheckVerdict:
        ready = self.notice.lead_time_met_at()
        if now < ready:
            return CheckVerdict(
                check=Check.NOTICE,
                ok=False,
                reason="lead-time",
                detail=(
                    f"notice {self.notice.id} was announced "
                    f"{self.notice.announced_at.isoformat()}; "
                    f"the policy's lead time {self.policy.min_notice_lead} is met only at "
                    f"{ready.isoformat()}"
                ),
            )
        return CheckVerdict(
            check=Check.NOTICE,
            ok=True,
            reason="lead-time-met",
            detail=f"lead time met since {ready.isoformat()}",
        )

    def check_entrusted(self, now: datetime) -> CheckVerdict:
        person = self._launcher()
        if person is None:
            return CheckVerdict(
                check=Check.ENTRUSTED,
                ok=False,
                reason="no-technician",
                detail="no technician named",
            )
        if not person.active_at(now):
            return CheckVerdict(
                check=Check.ENTRUSTED,
                ok=False,
                reason="revoked",
                detail=f"{person.name} was revoked at {person.revoked_at}",
            )
        vendor = self.notice.vendor
        if vendor is None:
            if person.role is not Role.OFFICER:
                return CheckVerdict(
                    check=Check.ENTRUSTED,
                    ok=False,
                    reason="not-entrusted",
                    detail=f"notice {self.notice.id} entrusts no vendor; only officers may run it",
                )
            return CheckVerdict(
                check=Check.ENTRUSTED, ok=True, reason="officer", detail=f"officer {person.name}"
            )
        if person.role is not Role.TECHNICIAN or person.vendor != vendor:
            return CheckVerdict(
                check=Check.ENTRUSTED,
                ok=False,
                reason="not-entrusted",
                detail=(
                    f"{person.name} is not a technician of {vendor}, "
                    f"the vendor entrusted by notice {self.notice.id}"
                ),
            )
        return CheckVerdict(
            check=Check.ENTRUSTED, ok=True, reason="technician", detail=f"{person.name} of {vendor}"
        )

    def window_end(self, now: datetime) -> datetime | None:
        """When probing must have stopped, or ``None`` if ``now`` is outside the windows."""
        announced = self.scope.window_at(now)
        allowed = self.policy.window_at(now)
        if announced is None or allowed is None or self.policy.blackout_on(now) is not None:
            return None
        local = now.astimezone(self.policy.tz)
        return min(announced.end_utc, allowed.end_on(local))

    def check_window(self, now: datetime, deadline: datetime) -> CheckVerdict:
        # Each window is looked up once (this runs twice per probe: decide and admit); the end
        # is window_end's, from the same two windows.
        announced = self.scope.window_at(now)
        if announced is None:
            return CheckVerdict(
                check=Check.WINDOW,
                ok=False,
                reason="outside-announced-window",
                detail=f"{now.isoformat()} is outside every announced window",
            )
        allowed = self.policy.window_at(now)
        if allowed is None:
            return CheckVerdict(
                check=Check.WINDOW,
                ok=False,
                reason="outside-policy-window",
                detail=f"{now.astimezone(self.policy.tz).isoformat()} is outside policy windows",
            )
        blackout = self.policy.blackout_on(now)
        if blackout is not None:
            return CheckVerdict(
                check=Check.WINDOW,
                ok=False,
                reason="blackout",
                detail=f"{now.astimezone(self.policy.tz).date()} is a blackout date "
                f"{blackout.reason}".rstrip(),
            )
        end = min(announced.end_utc, allowed.end_on(now.astimezone(self.policy.tz)))
        if deadline > end:
            return CheckVerdict(
                check=Check.WINDOW,
                ok=False,
                reason="window-closing",
                detail=(
                    f"a probe allowed until {deadline.isoformat()} would outlive "
                    f"the window closing at {end.isoformat()}"
                ),
            )
        return CheckVerdict(
            check=Check.WINDOW,
            ok=True,
            reason="inside",
            detail=f"inside windows until {end.isoformat()}",
        )

    def check_probe(self, probe: str, req: ProbeRequest | None = None) -> CheckVerdict:
        if probe not in self.policy.probes.allowed():
            return CheckVerdict(
                check=Check.PROBE,
                ok=False,
                reason="probe-not-allowed",
                detail=f"policy {self.policy.name} does not allow the {probe} probe",
            )
        try:
            cls = probe_class(probe)
        except KeyError:
            return CheckVerdict(
                check=Check.PROBE,
                ok=False,
                reason="unknown-probe",
                detail=f"no probe named {probe!r}",
            )
        level: Disruption = cls.disruption
        if level > self.policy.max_disruption:
            return CheckVerdict(
                check=Check.PROBE,
                ok=False,
                reason="too-disruptive",
                detail=(
                    f"{probe} is {level.name.lower()}, above the policy's maximum "
                    f"{self.policy.max_disruption.name.lower()}"
                ),
            )
        if req is not None:
            problem = params_problem(
                probe, req.params, target=req.target, port=req.port, ports=req.ports,
                policy=self.policy,
            )  # fmt: skip
            if problem is not None:
                return CheckVerdict(
                    check=Check.PROBE,
                    ok=False,
                    reason="params-not-allowed",
                    detail=f"{probe}: {problem}",
                )
        return CheckVerdict(
            check=Check.PROBE,
            ok=True,
            reason="allowed",
            detail=f"{probe} ({level.name.lower()}) allowed",
        )

    async def check_scope(
        self, req: ProbeRequest
    ) -> tuple[CheckVerdict, str | None, Resolution | None]:
        """Resolve once, check every address, and pick the pinned one."""
        resolution: Resolution | None = None
        if req.host is not None:
            if excluded_name(self.scope, req.host):
                return (
                    CheckVerdict(
                        check=Check.SCOPE,
                        ok=False,
                        reason="excluded",
                        detail=f"{req.host} is excluded by the scope",
                    ),
                    None,
                    None,
                )
            try:
                resolution = await self.resolver.resolve(req.host)
            except ResolutionError as exc:
                return (
                    CheckVerdict(
                        check=Check.SCOPE, ok=False, reason="dns-failure", detail=str(exc)
                    ),
                    None,
                    None,
                )
            # An exclude of a name covers every name that resolves through it.
            via = next((a for a in resolution.cname_chain if excluded_name(self.scope, a)), None)
            if via is not None:
                chain = " -> ".join((req.host, *resolution.cname_chain))
                return (
                    CheckVerdict(
                        check=Check.SCOPE,
                        ok=False,
                        reason="excluded",
                        detail=f"{req.host} resolves through {via} ({chain}), which the scope "
                        "excludes",
                    ),
                    None,
                    resolution,
                )
            addresses: tuple[str, ...] = resolution.addresses
        elif req.ip is not None:
            addresses = (req.ip,)
        else:
            return (
                CheckVerdict(
                    check=Check.SCOPE,
                    ok=False,
                    reason="no-address",
                    detail="the request names no address",
                ),
                None,
                None,
            )
        for address in addresses:
            verdict = self.addresses.check(address)
            if not verdict:
                via = f" ({req.host} resolves to {', '.join(addresses)})" if req.host else ""
                return (
                    CheckVerdict(
                        check=Check.SCOPE,
                        ok=False,
                        reason=verdict.reason,
                        detail=f"{address}: {verdict.sentence}{via}",
                    ),
                    None,
                    resolution,
                )
        pinned = addresses[0]
        return (
            CheckVerdict(check=Check.SCOPE, ok=True, reason="in-scope", detail=f"pinned {pinned}"),
            pinned,
            resolution,
        )

    def check_health(self, ip: str) -> CheckVerdict:
        healthy, why = self.health.verdict(ip)
        if not healthy:
            return CheckVerdict(
                check=Check.HEALTH, ok=False, reason="target-paused", detail=f"{ip}: {why}"
            )
        return CheckVerdict(check=Check.HEALTH, ok=True, reason="healthy", detail=f"{ip}: {why}")

    # ---- the decision ----------------------------------------------------------------------

    async def decide(self, req: ProbeRequest) -> Permit | Refusal:
        """Decide one probe. The decision is logged before this returns, whatever it is.

        A malformed request (a non-canonical address, a name that is not a DNS name, a port
        out of range, ...) is a logged refusal of the ``request`` check, never an exception.

        Returns:
            A sealed Permit whose ``decision`` is the logged intent's sequence number, or a
            Refusal (also logged) naming the first check that failed.
        """
        now = self.clock.now()
        try:
            req = normalise_request(req)
            judged = await self._judge(req, now)
        except (ValueError, TypeError, InputError) as exc:
            verdict = CheckVerdict(
                check=Check.REQUEST, ok=False, reason="malformed", detail=str(exc)
            )
            return await self._refuse(_loggable(req), verdict, now, None)
        if isinstance(judged, Refusal):
            return judged
        return await self._permit(req, *judged)

    async def _judge(
        self, req: ProbeRequest, now: datetime
    ) -> Refusal | tuple[str, Resolution | None, datetime, datetime]:
        """Every check in order: a logged Refusal, or what the permit is made of."""
        deadline = now + self.policy.probe_timeout
        resolution: Resolution | None = None
        pinned: str | None = None
        for verdict in (
            self.check_run(),
            self.check_notice(now),
            self.check_entrusted(now),
            self.check_window(now, deadline),
            self.check_probe(req.probe, req),
        ):
            if not verdict:
                return await self._refuse(req, verdict, now, resolution)
        scope_verdict, pinned, resolution = await self.check_scope(req)
        if not scope_verdict or pinned is None:
            return await self._refuse(req, scope_verdict, now, resolution)
        health_verdict = self.check_health(pinned)
        if not health_verdict:
            return await self._refuse(req, health_verdict, now, resolution)
        rate_verdict = self.check_cost(pinned, req.cost)
        if not rate_verdict:
            return await self._refuse(req, rate_verdict, now, resolution)
        # Resolving took time: a kill meanwhile still wins (no intent may follow a kill leaf).
        run_verdict = self.check_run()
        if not run_verdict:
            return await self._refuse(req, run_verdict, now, resolution)
        return pinned, resolution, now, deadline

    def check_cost(self, ip: str, cost: int) -> CheckVerdict:
        """The probe's cost fits every one-second budget (else it could never be sent)."""
        rates = self.policy.rates
        for name, limit in (
            ("per_ip", rates.per_ip),
            ("per_network", rates.per_network),
            ("per_notice", rates.per_notice),
            ("global", rates.global_),
        ):
            if cost > limit:
                return CheckVerdict(
                    check=Check.RATE,
                    ok=False,
                    reason=f"rate:{name}",
                    detail=f"{ip}: cost {cost} exceeds the {name} budget of {limit}/s",
                )
        return CheckVerdict(
            check=Check.RATE,
            ok=True,
            reason="fits",
            detail=f"cost {cost} within per-IP {self.budget.per_ip_limit(ip)}/s",
        )

    async def admit(self, permit: Permit, *, cost: int) -> Admission:
        """Take the permit's budget now and say go, immediately before the probe connects.

        Waits for budget while at least half of the policy's probe timeout is left before the
        permit's deadline (the runner then decides the request afresh). After the grant, run,
        entrustment, window and health are checked again; nothing is awaited between those
        checks and the return, so the caller sends at ``Admission.at``.

        Args:
            permit: a permit this gate issued (its intent durable).
            cost: the budget units of its request.

        Returns:
            An admitted :class:`Admission` with the send instant, or an unused one naming the
            check that stopped it (budget units already taken then stay spent: never over).
        """
        loop = asyncio.get_running_loop()
        keep = self.policy.probe_timeout.total_seconds() / 2
        left = permit.seconds_left(self.clock.now())
        grant = await self.budget.acquire(
            permit.ip, self.notice.id, cost=cost, wait_until=loop.time() + max(0.0, left - keep)
        )
        now = self.clock.now()
        if not grant:
            return Admission(
                at=None,
                check=Check.RATE,
                reason=grant.reason or "rate",
                sentence=f"{permit.ip}: no budget ({grant.reason}) while the permit had time; "
                "the probe is decided again",
            )
        for verdict in (
            self.check_run(),
            self.check_entrusted(now),
            self.check_window(now, permit.deadline),
            self.check_health(permit.ip),
        ):
            if not verdict:
                return Admission(
                    at=None, check=verdict.check, reason=verdict.reason, sentence=verdict.detail
                )
        return Admission(at=now, stamp=grant.at, cost=cost)

    async def explain(self, req: ProbeRequest, *, at: datetime | None = None) -> list[CheckVerdict]:
        """Every check's verdict for a would-be probe, without spending budget or logging."""
        now = at or self.clock.now()
        try:
            req = normalise_request(req)
        except (ValueError, TypeError) as exc:
            return [
                CheckVerdict(check=Check.REQUEST, ok=False, reason="malformed", detail=str(exc))
            ]
        deadline = now + self.policy.probe_timeout
        verdicts = [
            self.check_run(),
            self.check_notice(now),
            self.check_entrusted(now),
            self.check_window(now, deadline),
            self.check_probe(req.probe, req),
        ]
        scope_verdict, pinned, _ = await self.check_scope(req)
        verdicts.append(scope_verdict)
        if pinned is not None:
            verdicts.append(self.check_health(pinned))
            verdicts.append(self.check_cost(pinned, req.cost))
        return verdicts

    async def _refuse(
        self, req: ProbeRequest, verdict: CheckVerdict, now: datetime, resolution: Resolution | None
    ) -> Refusal:
        refusal = Refusal(
            request=req,
            check=verdict.check,
            reason=verdict.reason,
            sentence=verdict.detail,
            at=now,
            resolution=resolution,
        )
        if self.sink is not None:
            seq = await self.sink.log_decision("refusal", refusal.to_json(), now)
            refusal = Refusal(
                request=req,
                check=verdict.check,
                reason=verdict.reason,
                sentence=verdict.detail,
                at=now,
                resolution=resolution,
                decision=seq,
            )
        return refusal

    async def _permit(
        self,
        req: ProbeRequest,
        pinned: str,
        resolution: Resolution | None,
        now: datetime,
        deadline: datetime,
    ) -> Permit:
        assert self.run is not None and self.sink is not None
        fields: dict[str, Any] = {
            "run_id": self.run.run_id,
            "notice_id": self.notice.id,
            "probe": req.probe,
            "target": req.target,
            "ip": pinned,
            "port": req.port,
            "ports": tuple(req.ports),
            "server_name": req.host or req.server_name,
            "params": dict(req.params),
            "deadline": deadline,
            "max_rate": float(self.budget.per_ip_limit(pinned)),
        }
        body = IntentBody(
            item=req.item,
            probe=req.probe,
            target=req.target,
            ip=pinned,
            port=req.port,
            ports=tuple(req.ports),
            server_name=fields["server_name"],
            cost=req.cost,
            deadline=deadline.isoformat(),
            max_rate=self.budget.per_ip_limit(pinned),
            resolution=resolution.to_json() if resolution else None,
        )
        seq = await self.sink.log_decision("intent", body.to_json(), now)
        return _seal_permit(decision=seq, **fields)
