"""The composition root: settings in, a wired application out.

:func:`build_app` opens the home the settings name (database, the orchestrator's keys, the
evidence master key, all loaded lazily) with one clock. The gate and its parts are built here
and nowhere else, so the runner and ``rio gate explain`` judge a probe with the same limits,
thresholds and resolver:

- :func:`budget_for` - the notice policy's rate limits (network prefixes included) on the
  settings' budget store;
- :func:`breaker_for` - the policy's health thresholds;
- :func:`resolver_for` - the settings' name servers and port;
- :func:`gate_for` - the gate for one notice and (optionally) one run;
- :func:`calendar_for` - the working-day calendar Art. 19 deadlines are counted on.

Front ends (CLI, API, workers) call :func:`build_app` once and hand the result to the
services in :mod:`orchestrator.services`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.clock import Clock, SystemClock
from orchestrator.context import Rio
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.gate.budget import RateBudget
    from orchestrator.gate.decide import DecisionSink, Gate, RunView
    from orchestrator.gate.health import HealthBreaker
    from orchestrator.gate.resolve import Resolver
    from orchestrator.intake.notices import Notice
    from orchestrator.intake.registry import Person
    from orchestrator.record.workdays import WorkingCalendar

__all__ = ["breaker_for", "budget_for", "build_app", "calendar_for", "gate_for", "resolver_for"]


def build_app(settings: Settings, *, clock: Clock | None = None) -> Rio:
    """The application for ``settings``: database, keys (loaded when first used) and clock.

    Args:
        settings: From :func:`orchestrator.settings.load_settings`.
        clock: The clock every service reads (default: the system clock); tests pass a fake.
    """
    return Rio(settings, clock=clock or SystemClock())


def budget_for(app: Rio, notice: Notice, *, storage_url: str | None = None) -> RateBudget:
    """The rate budget of the notice's policy (per IP, per network with its prefixes, per notice,
    global) on the settings' budget store, or on ``storage_url`` when given."""
    from orchestrator.gate.budget import BudgetLimits

    r = notice.policy.rates
    limits = BudgetLimits(
        per_ip=r.per_ip,
        per_network=r.per_network,
        per_notice=r.per_notice,
        global_=r.global_,
        network_prefix_v4=r.network_prefix_v4,
        network_prefix_v6=r.network_prefix_v6,
    )
    from orchestrator.gate.metered import MeteredBudget

    # Metered: /metrics shows the probes waiting for budget and how long they waited.
    # Probes sent by workers are on the wire at a moment only the worker knows: their units
    # count in the shared budgets from the grant until the answer is in (at most the probe
    # timeout), so another process's grant never lands in the same second at the target.
    hold = notice.policy.probe_timeout.total_seconds() if app.settings.executor == "celery" else 0.0
    return MeteredBudget(
        limits,
        waits=app.telemetry.budget_waits,
        storage_url=storage_url or app.settings.budget_url,
        hold_seconds=hold,
    )


def breaker_for(notice: Notice) -> HealthBreaker:
    """The health breaker with the notice policy's thresholds."""
    from orchestrator.gate.health import HealthBreaker, HealthThresholds

    h = notice.policy.health
    return HealthBreaker(
        HealthThresholds(
            consecutive_failures=h.consecutive_failures,
            latency_factor=h.latency_factor,
            baseline_samples=h.baseline_samples,
            cooldown=h.cooldown.total_seconds(),
            backoff=h.backoff,
        )
    )


def resolver_for(app: Rio) -> Resolver:
    """The resolver the gate pins host targets with (the settings' name servers and port)."""
    from orchestrator.gate.resolve import Resolver

    settings = app.settings
    return Resolver(
        list(settings.dns_nameservers) or None, port=settings.dns_port, clock=app.clock.now
    )


def gate_for(
    app: Rio,
    notice: Notice,
    run: RunView | None,
    *,
    launcher: Callable[[], Person | None],
    sink: DecisionSink | None = None,
    budget: RateBudget | None = None,
    health: HealthBreaker | None = None,
    resolver: Resolver | None = None,
    clock: Clock | None = None,
) -> Gate:
    """The gate for one notice: the runner's (with its run, log and parts) or, with
    ``run=None`` and no sink, the one ``rio gate explain`` asks.

    Without a run the budget lives in this process only (``memory://``): explaining never
    spends or even reads the shared budget store.

    Args:
        app: From :func:`build_app`; gives the clock and the settings.
        notice: The announced notice whose scope, policy and windows the gate enforces.
        run: The run being decided for, or ``None`` to explain.
        launcher: Who launched the run (the entrustment check asks it at every probe).
        sink: Where decisions are logged (the run's probe log); ``None`` logs nothing.
        budget, health, resolver: Parts the caller already holds (the runner shares them
            with its lanes); built from the notice and settings when not given.
        clock: A clock other than the app's (a runner driven by a fake clock).
    """
    from orchestrator.gate.decide import Gate

    return Gate(
        notice=notice,
        run=run,
        launcher=launcher,
        budget=budget or budget_for(app, notice, storage_url="memory://" if run is None else None),
        health=health or breaker_for(notice),
        resolver=resolver or resolver_for(app),
        sink=sink,
        clock=clock or app.clock,
    )


def calendar_for(settings: Settings) -> WorkingCalendar:
    """The working-day calendar: the ``holidays`` package's years, the years added to the home
    with ``rio calendar add`` and the operator's ``RIO_CALENDAR_FILE``. Built when asked (an
    added year counts from the next call on), never at import."""
    from orchestrator.record.workdays import WorkingCalendar, calendar_files

    return WorkingCalendar(
        extra_file=settings.calendar_file, extra_files=calendar_files(settings.home)
    )
