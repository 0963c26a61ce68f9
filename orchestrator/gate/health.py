"""The per-target health breaker: slow down or pause when a target shows distress (Art. 16).

Pure logic with an injectable clock; the caller feeds every probe result to
:meth:`HealthBreaker.observe`, logs each returned :class:`HealthChange` as a decision, passes
``change.factor`` to :meth:`orchestrator.gate.budget.RateBudget.set_factor`, and asks
:meth:`HealthBreaker.verdict` before every probe.

Rules, per target address:

* ``timeout`` / ``unreachable`` outcomes count as consecutive failures. At
  ``consecutive_failures`` the rate factor is halved (*throttled*); if it is already at
  ``min_factor`` the target is *paused* for ``cooldown``.
* HTTP 429 or 503: halve the factor **and** pause for ``max(cooldown, Retry-After)``.
* A successful latency above ``latency_factor`` times the baseline (the median of the first
  ``baseline_samples`` successful latencies) halves the factor, or pauses at ``min_factor``
  (a target still in distress at the lowest rate must be left alone, not probed on).
* After a change, successes count only once the cool-down has passed (``cooldown`` after a
  throttle, the pause's end after a pause). Every ``consecutive_failures`` successes in a row
  then double the factor up to 1.0 (*recovered*). Any failure or distress resets the streak.
* Other outcomes (``error``, ``refused``, ``killed``) say nothing about the target's health.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import InputError
from orchestrator.ledger.bodies import HealthBody, Outcome

__all__ = ["HealthBreaker", "HealthChange", "HealthThresholds"]

_FAILURE_OUTCOMES = frozenset({Outcome.TIMEOUT.value, Outcome.UNREACHABLE.value})
_DISTRESS_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthThresholds:
    """When the breaker throttles, pauses and restores a target.

    Attributes:
        consecutive_failures: timeouts/unreachables in a row that throttle; also the length of
            the success streak that doubles the factor back.
        latency_factor: a latency above this multiple of the baseline is distress.
        baseline_samples: successful latencies whose median is the baseline.
        cooldown: seconds a pause lasts at least, and the quiet time before recovery counts.
        backoff: multiplier applied to the factor on distress (0.5 halves it).
        min_factor: the lowest factor; distress at this factor pauses the target.
    """

    consecutive_failures: int = 3
    latency_factor: float = 5.0
    baseline_samples: int = 5
    cooldown: float = 60.0
    backoff: float = 0.5
    min_factor: float = 0.125

    def __post_init__(self) -> None:
        for name in ("consecutive_failures", "baseline_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"health thresholds: {name}: {value!r} is not a positive integer")
        if not self.latency_factor > 1.0:
            raise InputError(
                f"health thresholds: latency_factor: {self.latency_factor!r} must be above 1"
            )
        if not self.cooldown >= 0.0:
            raise InputError(f"health thresholds: cooldown: {self.cooldown!r} is negative")
        if not 0.0 < self.backoff < 1.0:
            raise InputError(f"health thresholds: backoff: {self.backoff!r} is not in (0, 1)")
        if not 0.0 < self.min_factor <= 1.0:
            raise InputError(f"health thresholds: min_factor: {self.min_factor!r} is not in (0, 1]")


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthChange:
    """One change of a target's health state, to be logged as a gate decision.

    Attributes:
        ip: the target address.
        state: ``"throttled"``, ``"paused"`` or ``"recovered"``.
        factor: the per-IP rate factor from now on (pass it to ``RateBudget.set_factor``).
        until: clock time the pause ends (``None`` unless paused).
        reason: what triggered it: ``http-429``, ``http-503``, ``timeouts``, ``unreachable``,
            ``latency`` or ``successes``.
    """

    ip: str
    state: str
    factor: float
    until: float | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON-able mapping for the probe log."""
        return HealthBody(
            ip=self.ip, state=self.state, factor=self.factor, until=self.until, reason=self.reason
        ).to_json()


@dataclass(kw_only=True, slots=True)
class _Target:
    factor: float = 1.0
    failures: int = 0
    successes: int = 0
    samples: list[float] = field(default_factory=list)
    baseline: float | None = None
    paused_until: float | None = None
    quiet_until: float | None = None
    """successes before this time do not count toward recovery"""
    reason: str = ""


class HealthBreaker:
    """Per-target breaker that turns probe results into throttle, pause and recovery.

    Args:
        thresholds: when to act.
        clock: monotonic seconds; injectable so tests need no sleeps.
    """

    def __init__(
        self,
        thresholds: HealthThresholds | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._t = thresholds if thresholds is not None else HealthThresholds()
        self._clock = clock
        self._targets: dict[str, _Target] = {}

    def observe(
        self,
        ip: str,
        *,
        outcome: str,
        latency: float | None,
        http_status: int | None,
        retry_after: float | None,
    ) -> HealthChange | None:
        """Feed one probe result; return the change it caused, if any.

        Args:
            ip: the pinned target address the probe touched.
            outcome: the probe's outcome class (``ok``, ``timeout``, ``unreachable``, ...).
            latency: seconds to first answer, when the probe measured it.
            http_status: the HTTP status, for HTTP probes.
            retry_after: the server's Retry-After in seconds, if it sent one.

        Returns:
            The :class:`HealthChange` to log and apply, or ``None``.
        """
        target = self._targets.setdefault(ip, _Target())
        now = self._clock()
        if http_status in _DISTRESS_STATUSES:
            wait = max(self._t.cooldown, retry_after if retry_after is not None else 0.0)
            target.factor = max(self._t.min_factor, target.factor * self._t.backoff)
            return self._pause(ip, target, now, wait, f"http-{http_status}")
        if outcome in _FAILURE_OUTCOMES:
            target.successes = 0
            target.failures += 1
            if target.failures < self._t.consecutive_failures:
                return None
            target.failures = 0
            return self._degrade(ip, target, now, "timeouts" if outcome == "timeout" else outcome)
        if outcome != "ok":
            return None
        target.failures = 0
        if latency is not None:
            if target.baseline is None:
                target.samples.append(latency)
                if len(target.samples) == self._t.baseline_samples:
                    target.baseline = statistics.median(target.samples)
            elif latency > self._t.latency_factor * target.baseline:
                return self._degrade(ip, target, now, "latency")
        return self._recover(ip, target, now)

    def verdict(self, ip: str) -> tuple[bool, str]:
        """Whether the target may be probed now, and why.

        Returns:
            ``(False, "paused:<reason>")`` until a pause ends; otherwise ``(True, "healthy")``
            or ``(True, "throttled:<reason>")`` while the factor is below 1.
        """
        target = self._targets.get(ip)
        if target is None:
            return True, "healthy"
        if target.paused_until is not None and self._clock() < target.paused_until:
            return False, f"paused:{target.reason}"
        if target.factor < 1.0:
            return True, f"throttled:{target.reason}"
        return True, "healthy"

    def factor(self, ip: str) -> float:
        """The per-IP rate factor for ``ip`` (1.0 for a target never seen in distress)."""
        target = self._targets.get(ip)
        return target.factor if target is not None else 1.0

    # -- internals ----------------------------------------------------------------------------

    def _degrade(self, ip: str, target: _Target, now: float, reason: str) -> HealthChange:
        if target.factor <= self._t.min_factor:
            # Already at the lowest rate and still in distress: leave the target alone.
            return self._pause(ip, target, now, self._t.cooldown, reason)
        target.factor = max(self._t.min_factor, target.factor * self._t.backoff)
        target.successes = 0
        target.quiet_until = now + self._t.cooldown
        target.reason = reason
        return HealthChange(
            ip=ip, state="throttled", factor=target.factor, until=None, reason=reason
        )

    def _pause(
        self, ip: str, target: _Target, now: float, seconds: float, reason: str
    ) -> HealthChange:
        until = now + seconds
        # A later, shorter pause never shortens one already in force.
        if target.paused_until is not None and target.paused_until > until:
            until = target.paused_until
        target.paused_until = until
        target.quiet_until = until
        target.successes = 0
        target.failures = 0
        target.reason = reason
        return HealthChange(ip=ip, state="paused", factor=target.factor, until=until, reason=reason)

    def _recover(self, ip: str, target: _Target, now: float) -> HealthChange | None:
        if target.factor >= 1.0 or (target.quiet_until is not None and now < target.quiet_until):
            return None
        target.successes += 1
        if target.successes < self._t.consecutive_failures:
            return None
        target.successes = 0
        target.factor = min(1.0, target.factor * 2.0)
        target.reason = "successes"
        return HealthChange(
            ip=ip, state="recovered", factor=target.factor, until=None, reason="successes"
        )
