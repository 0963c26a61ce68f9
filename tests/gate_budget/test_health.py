"""The health breaker: throttle, pause and recover a target that shows distress (Art. 16)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import orchestrator.gate.health as health_module
from orchestrator.errors import InputError
from orchestrator.gate.health import HealthBreaker, HealthChange, HealthThresholds

IP = "127.0.1.1"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> HealthBreaker:
    return HealthBreaker(HealthThresholds(), clock=clock)


def timeout(b: HealthBreaker, ip: str = IP) -> HealthChange | None:
    return b.observe(ip, outcome="timeout", latency=None, http_status=None, retry_after=None)


def ok(b: HealthBreaker, latency: float | None = 0.1, ip: str = IP) -> HealthChange | None:
    return b.observe(ip, outcome="ok", latency=latency, http_status=None, retry_after=None)


def status(b: HealthBreaker, code: int, retry_after: float | None = None) -> HealthChange | None:
    return b.observe(IP, outcome="ok", latency=0.1, http_status=code, retry_after=retry_after)


# -- consecutive failures ---------------------------------------------------------------------


def test_target_throttled_after_three_consecutive_timeouts(breaker: HealthBreaker) -> None:
    assert timeout(breaker) is None
    assert timeout(breaker) is None
    change = timeout(breaker)
    assert change == HealthChange(
        ip=IP, state="throttled", factor=0.5, until=None, reason="timeouts"
    )
    assert breaker.factor(IP) == 0.5
    assert breaker.verdict(IP) == (True, "throttled:timeouts")


def test_a_success_between_timeouts_resets_the_failure_count(breaker: HealthBreaker) -> None:
    changes = [timeout(breaker), timeout(breaker), ok(breaker), timeout(breaker), timeout(breaker)]
    assert changes == [None] * 5
    assert breaker.factor(IP) == 1.0


def test_unreachable_counts_as_a_failure_and_is_named(breaker: HealthBreaker) -> None:
    changes = [
        breaker.observe(IP, outcome="unreachable", latency=None, http_status=None, retry_after=None)
        for _ in range(3)
    ]
    assert changes[:2] == [None, None]
    assert changes[2] is not None and changes[2].reason == "unreachable"


def test_failures_are_counted_per_target(breaker: HealthBreaker) -> None:
    timeout(breaker, "127.0.1.1")
    timeout(breaker, "127.0.1.1")
    assert timeout(breaker, "127.0.1.2") is None
    assert breaker.factor("127.0.1.2") == 1.0


def test_failures_at_min_factor_pause_the_target_for_the_cooldown(clock: FakeClock) -> None:
    breaker = HealthBreaker(HealthThresholds(min_factor=0.25), clock=clock)
    factors = []
    for _ in range(2):
        for _ in range(3):
            change = timeout(breaker)
        assert change is not None
        factors.append(change.factor)
    assert factors == [0.5, 0.25]
    for _ in range(3):
        change = timeout(breaker)
    assert change == HealthChange(
        ip=IP, state="paused", factor=0.25, until=clock.now + 60.0, reason="timeouts"
    )
    clock.advance(59.9)
    assert breaker.verdict(IP) == (False, "paused:timeouts")
    clock.advance(0.1)
    assert breaker.verdict(IP)[0] is True


def test_other_outcomes_say_nothing_about_health(breaker: HealthBreaker) -> None:
    for outcome in ("error", "refused", "killed") * 3:
        assert (
            breaker.observe(IP, outcome=outcome, latency=None, http_status=None, retry_after=None)
            is None
        )
    assert breaker.verdict(IP) == (True, "healthy")


# -- HTTP distress ----------------------------------------------------------------------------


def test_http_429_halves_and_pauses_until_a_longer_retry_after(
    breaker: HealthBreaker, clock: FakeClock
) -> None:
    change = status(breaker, 429, retry_after=120.0)
    assert change == HealthChange(
        ip=IP, state="paused", factor=0.5, until=clock.now + 120.0, reason="http-429"
    )
    clock.advance(119.9)
    assert breaker.verdict(IP) == (False, "paused:http-429")
    clock.advance(0.1)
    assert breaker.verdict(IP) == (True, "throttled:http-429")


def test_http_503_pause_lasts_at_least_the_cooldown(
    breaker: HealthBreaker, clock: FakeClock
) -> None:
    change = status(breaker, 503, retry_after=5.0)
    assert change is not None and change.until == clock.now + 60.0 and change.reason == "http-503"
    assert status(breaker, 503) is not None  # no Retry-After: the cool-down alone
    assert breaker.factor(IP) == 0.25


def test_a_shorter_pause_never_cuts_a_longer_one(breaker: HealthBreaker, clock: FakeClock) -> None:
    first = status(breaker, 429, retry_after=300.0)
    second = status(breaker, 429, retry_after=None)
    assert first is not None and second is not None
    assert second.until == first.until == clock.now + 300.0


def test_other_http_errors_are_not_distress(breaker: HealthBreaker) -> None:
    assert status(breaker, 500) is None
    assert status(breaker, 404) is None
    assert breaker.factor(IP) == 1.0


# -- latency ----------------------------------------------------------------------------------


def test_latency_above_five_times_the_median_baseline_throttles(breaker: HealthBreaker) -> None:
    for latency in (0.1, 0.3, 0.1, 0.2, 0.1):  # baseline: median 0.1
        assert ok(breaker, latency) is None
    assert ok(breaker, 0.5) is None  # exactly 5x is not above
    change = ok(breaker, 0.51)
    assert change == HealthChange(
        ip=IP, state="throttled", factor=0.5, until=None, reason="latency"
    )


def test_baseline_is_fixed_by_the_first_samples_only(breaker: HealthBreaker) -> None:
    for _ in range(5):
        ok(breaker, 0.1)
    # A slowly degrading target must not drag its own baseline up with it.
    changes = [ok(breaker, 0.4), ok(breaker, 0.45), ok(breaker, 0.6)]
    assert changes[:2] == [None, None]
    assert changes[2] is not None and changes[2].reason == "latency"


def test_no_latency_verdict_before_the_baseline_exists(breaker: HealthBreaker) -> None:
    assert [ok(breaker, 0.01), ok(breaker, 10.0), ok(breaker, None)] == [None, None, None]
    assert breaker.factor(IP) == 1.0


def test_latency_distress_at_min_factor_pauses(clock: FakeClock) -> None:
    breaker = HealthBreaker(HealthThresholds(min_factor=0.5, baseline_samples=1), clock=clock)
    ok(breaker, 0.1)
    first = ok(breaker, 1.0)
    second = ok(breaker, 1.0)
    assert first is not None and first.state == "throttled"
    assert second == HealthChange(
        ip=IP, state="paused", factor=0.5, until=clock.now + 60.0, reason="latency"
    )


# -- recovery ---------------------------------------------------------------------------------


def _throttle_to_quarter(breaker: HealthBreaker) -> None:
    for _ in range(6):
        timeout(breaker)
    assert breaker.factor(IP) == 0.25


def test_successes_restore_the_factor_only_after_the_cooldown(
    breaker: HealthBreaker, clock: FakeClock
) -> None:
    _throttle_to_quarter(breaker)
    assert [ok(breaker, None) for _ in range(6)] == [None] * 6  # still cooling down
    clock.advance(60.0)
    changes = [ok(breaker, None) for _ in range(6)]
    assert changes[:2] == [None, None] and changes[3:5] == [None, None]
    assert changes[2] == HealthChange(
        ip=IP, state="recovered", factor=0.5, until=None, reason="successes"
    )
    assert changes[5] is not None and changes[5].factor == 1.0
    assert [ok(breaker, None) for _ in range(3)] == [None] * 3  # full rate: nothing to restore
    assert breaker.verdict(IP) == (True, "healthy")


def test_a_failure_breaks_the_recovery_streak(breaker: HealthBreaker, clock: FakeClock) -> None:
    _throttle_to_quarter(breaker)
    clock.advance(60.0)
    assert [ok(breaker, None), ok(breaker, None), timeout(breaker)] == [None, None, None]
    assert [ok(breaker, None), ok(breaker, None)] == [None, None]
    change = ok(breaker, None)
    assert change is not None and change.state == "recovered"


def test_recovery_after_a_pause_waits_for_the_pause_to_end(
    breaker: HealthBreaker, clock: FakeClock
) -> None:
    status(breaker, 429, retry_after=120.0)
    clock.advance(60.0)
    assert [ok(breaker, None) for _ in range(3)] == [None] * 3
    clock.advance(60.0)
    changes = [ok(breaker, None) for _ in range(3)]
    assert changes[2] is not None and changes[2].factor == 1.0


def test_change_serialises_to_json() -> None:
    change = HealthChange(ip=IP, state="paused", factor=0.5, until=12.5, reason="http-429")
    assert change.to_json() == {
        "ip": IP,
        "state": "paused",
        "factor": 0.5,
        "until": 12.5,
        "reason": "http-429",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consecutive_failures", 0),
        ("baseline_samples", 0),
        ("latency_factor", 1.0),
        ("cooldown", -1.0),
        ("backoff", 1.0),
        ("min_factor", 0.0),
    ],
)
def test_thresholds_refuse_values_that_would_never_act(field: str, value: float) -> None:
    with pytest.raises(InputError, match=field):
        HealthThresholds(**{field: value})  # type: ignore[arg-type]


def test_module_exports_only_the_breaker_api() -> None:
    assert sorted(health_module.__all__) == ["HealthBreaker", "HealthChange", "HealthThresholds"]


# -- integration: a real loopback server that starts answering 429 ----------------------------


@dataclass(kw_only=True, slots=True)
class _Throttler:
    """State shared with the handler thread: answers 200 for ``allow`` requests, then 429."""

    allow: int
    retry_after: int
    seen: int = 0
    lock: threading.Lock


@pytest.fixture
def throttling_server() -> Iterator[tuple[str, _Throttler]]:
    state = _Throttler(allow=3, retry_after=120, lock=threading.Lock())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.seen += 1
                throttled = state.seen > state.allow
            body = b"slow down" if throttled else b"ok"
            self.send_response(429 if throttled else 200)
            if throttled:
                self.send_header("Retry-After", str(state.retry_after))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_breaker_pauses_a_real_server_for_its_retry_after(
    throttling_server: tuple[str, _Throttler], clock: FakeClock
) -> None:
    url, state = throttling_server
    breaker = HealthBreaker(HealthThresholds(), clock=clock)
    changes: list[HealthChange] = []
    # trust_env=False: no proxy from the environment may carry this request off loopback.
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        for _ in range(10):  # bounded: the breaker must stop us well before this
            healthy, _why = breaker.verdict("127.0.0.1")
            if not healthy:
                break
            response = client.get(url)
            header = response.headers.get("Retry-After")
            change = breaker.observe(
                "127.0.0.1",
                outcome="ok",
                latency=response.elapsed.total_seconds(),
                http_status=response.status_code,
                retry_after=float(header) if header is not None else None,
            )
            if change is not None:
                changes.append(change)
            clock.advance(0.05)
    paused_at = clock.now - 0.05
    assert state.seen == state.allow + 1, "no request may follow the first 429"
    assert changes == [
        HealthChange(
            ip="127.0.0.1", state="paused", factor=0.5, until=paused_at + 120.0, reason="http-429"
        )
    ]
    clock.now = paused_at + 119.0
    assert breaker.verdict("127.0.0.1") == (False, "paused:http-429")
    clock.now = paused_at + 120.0
    assert breaker.verdict("127.0.0.1")[0] is True
