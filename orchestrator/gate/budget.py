"""Rate budgets: never more than N probes in any one-second sliding window (Art. 16).

Four budgets hold at once for every probe: per target IP, per network (the IP's /24 or /64),
per notice and global. :meth:`RateBudget.acquire` takes one unit (or ``cost`` units) from all
four or from none.

How "never over" is kept:

* The shared, authoritative count is a moving-window log in :mod:`limits` (memory, or Redis so
  that several notices and processes share one budget). A moving window is exact: a hit is
  refused while the ``limit``-th most recent entry is ``>= now - 1 s`` old, so the boundary is
  inclusive on the safe side and no N+1-th grant can fall inside a closed one-second window of
  the storage's own timestamps.
* ``limits`` stamps entries with ``time.time()`` *before* its awaits finish (a Redis round
  trip), while callers reason in ``time.monotonic()`` taken after :meth:`RateBudget.acquire`
  returns. Differences between those two instants vary per grant, so storage-exact is not
  caller-exact. Each :class:`RateBudget` therefore also keeps a local monotonic log of its own
  grants with a window of ``1 s + _GUARD_MARGIN``, stamped synchronously just before
  ``acquire`` returns (no await between stamp and return). Within one process that makes the
  caller's monotonic stamps exact too, and it protects against a forward step of the wall
  clock.
* Acquisition is serialised per :class:`RateBudget` by an :class:`asyncio.Lock`, so
  check-all-then-hit-all cannot let two coroutines pass the same check. The lock is released
  while a coroutine sleeps, so a wait on one IP does not block another IP.
* Across processes (Redis) the check and the four hits are not one transaction: another
  process may take the last unit between them, and a hit on one budget may then succeed while
  a later one fails. The successful hits are then *wasted* (they count although no probe was
  sent): that lowers throughput but never lets a budget go over, because every unit that is
  granted was accepted by every budget's atomic ``acquire_entry`` script. Across processes the
  guarantee holds in the storage's wall-clock time (hosts must keep NTP-synchronised clocks);
  the local monotonic guard covers only the grants of its own process.
* A per-IP factor (from the health breaker) lowers the per-IP limit. The reduced limit is
  checked before the hit; the hit itself is made against the configured limit so that the
  Redis list keeps enough entries when the factor is restored. A cross-process race can
  therefore exceed the *reduced* per-IP limit, never the configured one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from orchestrator.errors import InputError, StoreError

__all__ = ["BudgetLimits", "Grant", "RateBudget"]

_WINDOW = 1.0
"""seconds: the sliding window every budget is counted over"""

_GUARD_MARGIN = 0.005
"""seconds added to the local window so that a caller's stamp, taken just after ``acquire``
returns, can lag ours by up to this much without two stamps landing inside one second; it costs
0.5 % of throughput."""

_WAKE_SLACK = 0.001
"""seconds slept past a computed reset: the moving window refuses at exactly ``reset``."""

_MIN_SLEEP = 0.001

_SWEEP_AT = 4096
"""local logs kept before empty ones are swept (bounds memory on long runs over many IPs)"""

_BUDGET_NAMES = ("per_ip", "per_network", "per_notice", "global")


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetLimits:
    """The four budgets, each in probes (connections) per one-second sliding window.

    Attributes:
        per_ip: probes per second to one target address.
        per_network: probes per second into one network (``network_prefix_v4`` /
            ``network_prefix_v6``).
        per_notice: probes per second under one notice.
        global_: probes per second in total (all notices sharing the storage).
        network_prefix_v4: prefix length that groups IPv4 targets into a network.
        network_prefix_v6: prefix length that groups IPv6 targets into a network.
    """

    per_ip: int
    per_network: int
    per_notice: int
    global_: int
    network_prefix_v4: int = 24
    network_prefix_v6: int = 64

    def __post_init__(self) -> None:
        for name in ("per_ip", "per_network", "per_notice", "global_"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"budget limits: {name}: {value!r} is not a positive integer")
        for name, top in (("network_prefix_v4", 32), ("network_prefix_v6", 128)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise InputError(f"budget limits: {name}: {value!r} is not in 0..{top}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Grant:
    """The answer of :meth:`RateBudget.acquire`; true when the units were taken.

    Attributes:
        granted: whether all four budgets gave the units.
        waited: seconds spent in ``acquire`` (lock, storage and sleeps).
        reason: ``None`` when granted, else ``"rate:<budget>"`` naming the budget that
            was exhausted (``per_ip``, ``per_network``, ``per_notice`` or ``global``).
    """

    granted: bool
    waited: float
    reason: str | None

    def __bool__(self) -> bool:
        return self.granted


class _Item(RateLimitItemPerSecond):
    """A one-second moving-window item whose storage key is ours alone.

    ``limits`` puts the amount into its keys; a key that changed with the amount would start an
    empty history whenever the health factor or the configuration changed, and processes
    configured differently would not share a budget. The key is only the namespaced identifier.
    """

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join(str(part) for part in identifiers)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Slot:
    name: str
    key: str
    limit: int
    """effective limit now (per-IP factor applied)"""
    check: _Item
    hit: _Item


def _storage_uri(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InputError(f"rate budget: storage_url: {url!r} is not a URL")
    scheme = scheme.lower().removeprefix("async+")
    if scheme == "memory":
        return "async+memory://"
    if scheme in {"redis", "rediss"}:
        return f"async+{scheme}://{rest}"
    raise InputError(
        f"rate budget: storage_url: scheme {scheme!r} is not supported (memory://, redis://)"
    )


def _longest(waits: dict[str, float]) -> tuple[str, float]:
    """The exhausted budget that frees last: nothing can be granted before it has room."""
    name = max((n for n, w in waits.items() if w > 0), key=lambda n: waits[n])
    return name, waits[name]


def _canonical_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise InputError(f"rate budget: ip: {ip!r} is not an IP address") from None
    # One host, one budget: ::ffff:a.b.c.d is the IPv4 host a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class RateBudget:
    """Per-IP, per-network, per-notice and global one-second moving-window budgets.

    Args:
        limits: the four budgets.
        storage_url: ``memory://`` (this process only) or ``redis://host:port/db`` (shared).
        namespace: prefix of every key, so that deployments and test runs sharing a Redis
            database stay apart.

    One instance serves one event loop (its lock and Redis pool are bound to it); processes
    share budgets through Redis, not by sharing an instance. Call :meth:`close` when done.

    Raises:
        InputError: the storage URL has an unsupported scheme.
    """

    def __init__(
        self, limits: BudgetLimits, *, storage_url: str = "memory://", namespace: str = "rio"
    ) -> None:
        if not namespace or any(c in namespace for c in " \t\r\n*?[]"):
            raise InputError(f"rate budget: namespace: {namespace!r} is not a plain name")
        self._limits = limits
        self._namespace = namespace
        self._storage_url = storage_url
        uri = _storage_uri(storage_url)
        self._pool: Any = None
        try:
            if uri.startswith("async+memory"):
                self._storage = storage_from_string(uri, wrap_exceptions=True)
            else:
                # Our own pool (redis-py): limits defaults to coredis, which we do not ship,
                # and owning the pool lets close() disconnect it.
                import redis.asyncio as aioredis

                self._pool = aioredis.ConnectionPool.from_url(uri.removeprefix("async+"))
                self._storage = storage_from_string(
                    uri,
                    wrap_exceptions=True,
                    implementation="redispy",
                    connection_pool=self._pool,
                )
        except (ConfigurationError, ValueError) as exc:
            raise InputError(f"rate budget: storage_url: {storage_url!r}: {exc}") from exc
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._lock = asyncio.Lock()
        self._factors: dict[str, float] = {}
        self._local: dict[str, deque[float]] = {}
        self._items: dict[int, _Item] = {}

    # -- public -------------------------------------------------------------------------------

    def set_factor(self, ip: str, factor: float) -> None:
        """Scale one target's per-IP budget (the health breaker's back-off).

        The effective per-IP limit becomes ``max(1, floor(per_ip * factor))``; ``1.0``
        restores the configured limit.

        Args:
            ip: the target address.
            factor: a number in ``(0, 1]``.

        Raises:
            InputError: ``ip`` is not an address or ``factor`` is out of range.
        """
        key = str(_canonical_ip(ip))
        if not isinstance(factor, int | float) or not 0.0 < factor <= 1.0:
            raise InputError(f"rate budget: factor for {key}: {factor!r} is not in (0, 1]")
        if factor == 1.0:
            self._factors.pop(key, None)
        else:
            self._factors[key] = float(factor)

    def per_ip_limit(self, ip: str) -> int:
        """The per-IP limit in force for ``ip`` now (the factor applied)."""
        key = str(_canonical_ip(ip))
        factor = self._factors.get(key, 1.0)
        return max(1, math.floor(self._limits.per_ip * factor))

    async def acquire(self, ip: str, notice_id: str, *, cost: int = 1, wait_until: float) -> Grant:
        """Take ``cost`` units from all four budgets, waiting for room until ``wait_until``.

        Args:
            ip: the pinned target address.
            notice_id: the notice the probe runs under.
            cost: connections the probe will open (units to take from every budget).
            wait_until: ``time.monotonic()`` deadline for waiting. One attempt is always made.

        Returns:
            A granted :class:`Grant`, or a refused one naming the budget that stayed
            exhausted (refused at once when ``cost`` exceeds a limit, or when the earliest
            moment with room lies after ``wait_until``).

        Raises:
            InputError: bad ``ip``, ``notice_id`` or ``cost``.
            StoreError: the shared storage (Redis) failed.
        """
        started = time.monotonic()
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise InputError(f"rate budget: cost: {cost!r} is not a positive integer")
        if not notice_id:
            raise InputError("rate budget: notice_id: empty")
        address = _canonical_ip(ip)
        while True:
            # Rebuilt each round: the health breaker may change the factor while we wait.
            slots = self._slots(address, notice_id)
            for slot in slots:
                if cost > slot.limit:
                    # Can never fit in a one-second window: waiting would be pointless.
                    return Grant(
                        granted=False,
                        waited=time.monotonic() - started,
                        reason=f"rate:{slot.name}",
                    )
            async with self._lock:
                blocked, delay = await self._try_take(slots, cost)
                if blocked is None:
                    # Stamped and returned without an await in between: see module docstring.
                    return Grant(granted=True, waited=time.monotonic() - started, reason=None)
            now = time.monotonic()
            delay = max(delay + _WAKE_SLACK, _MIN_SLEEP)
            if now + delay > wait_until:
                return Grant(granted=False, waited=now - started, reason=f"rate:{blocked}")
            await asyncio.sleep(delay)

    async def close(self) -> None:
        """Release the storage (Redis connections, memory storage's expiry task)."""
        timer = getattr(self._storage, "timer", None)
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.disconnect()

    # -- internals ----------------------------------------------------------------------------

    def _item(self, amount: int) -> _Item:
        item = self._items.get(amount)
        if item is None:
            item = self._items[amount] = _Item(amount)
        return item

    def _slots(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, notice_id: str
    ) -> tuple[_Slot, ...]:
        lim = self._limits
        prefix = lim.network_prefix_v4 if address.version == 4 else lim.network_prefix_v6
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        ns = self._namespace
        per_ip = self.per_ip_limit(str(address))
        return (
            _Slot(
                name="per_ip",
                key=f"{ns}:ip:{address}",
                limit=per_ip,
                check=self._item(per_ip),
                hit=self._item(lim.per_ip),
            ),
            self._plain_slot("per_network", f"{ns}:net:{network}", lim.per_network),
            self._plain_slot("per_notice", f"{ns}:notice:{notice_id}", lim.per_notice),
            self._plain_slot("global", f"{ns}:global", lim.global_),
        )

    def _plain_slot(self, name: str, key: str, limit: int) -> _Slot:
        item = self._item(limit)
        return _Slot(name=name, key=key, limit=limit, check=item, hit=item)

    async def _try_take(self, slots: tuple[_Slot, ...], cost: int) -> tuple[str | None, float]:
        """One attempt under the lock: ``(None, 0)`` when taken, else ``(budget, seconds)``.

        ``seconds`` is how long until every exhausted budget has freed at least one unit.
        """
        now = time.monotonic()
        # 1. This process's own monotonic log (cheap, no I/O).
        waits = {slot.name: self._local_wait(slot, cost, now) for slot in slots}
        if any(wait > 0 for wait in waits.values()):
            return _longest(waits)
        try:
            # 2. The shared log: test all before hitting any.
            for slot in slots:
                stats = await self._limiter.get_window_stats(slot.check, slot.key)
                waits[slot.name] = (
                    0.0
                    if stats.remaining >= cost
                    else max(_MIN_SLEEP, stats.reset_time - time.time())
                )
            if any(wait > 0 for wait in waits.values()):
                return _longest(waits)
            # 3. Hit all. Only another process can make one of these fail now.
            for slot in slots:
                if not await self._limiter.hit(slot.hit, slot.key, cost=cost):
                    stats = await self._limiter.get_window_stats(slot.check, slot.key)
                    return slot.name, stats.reset_time - time.time()
        except StorageError as exc:
            raise StoreError(
                f"rate budget {self._namespace!r}: storage {self._storage_url!r} failed: {exc}"
            ) from exc
        stamp = time.monotonic()
        for slot in slots:
            self._local.setdefault(slot.key, deque()).extend([stamp] * cost)
        if len(self._local) > _SWEEP_AT:
            self._sweep(stamp)
        return None, 0.0

    def _local_wait(self, slot: _Slot, cost: int, now: float) -> float:
        stamps = self._local.get(slot.key)
        if stamps is None:
            return 0.0
        horizon = now - (_WINDOW + _GUARD_MARGIN)
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        excess = len(stamps) + cost - slot.limit
        if excess <= 0:
            return 0.0
        # The excess-th oldest stamp must leave the (longer) local window first.
        return stamps[excess - 1] - horizon

    def _sweep(self, now: float) -> None:
        horizon = now - (_WINDOW + _GUARD_MARGIN)
        for key in [k for k, v in self._local.items() if not v or v[-1] <= horizon]:
            del self._local[key]
