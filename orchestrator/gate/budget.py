"""Rate budgets: never more than N probes in any one-second sliding window (Art. 16).

Four budgets hold at once for every probe: per target IP, per network (the IP's /24 or /64),
per notice and global. :meth:`RateBudget.acquire` takes one unit (or ``cost`` units) from all
four or from none, and is called immediately before the probe connects: the moment a grant is
stamped is the moment the probe is sent (the runner records it as the outcome's ``sent_at``).

How a grant is made (the pacer):

* Waiters queue per target IP, first come first served. Only the head of each IP's queue is
  eligible; the heads sit in one heap ordered by the moment their IP's (and network's) window
  next has room. One dispatcher task pops the earliest head, sleeps until that moment (and
  until the per-notice and global windows have room), and gives that waiter its turn (with a
  shared store the waiter then takes the units itself, see below). So a grant is released at the
  exact moment the window allows it, to a request that was already waiting for it, and
  waiters for one IP never wake together to race for one unit. A request that finds nobody
  ahead of it (no waiter of its IP, no head due, no turn being taken) and room in every
  window is granted in ``acquire`` itself, as the dispatcher would have granted it at once.
* Every budget keeps a local log of this process's grant stamps (``loop.time()``, the
  monotonic clock of the running event loop) with a window of ``1 s + _GUARD_MARGIN``. The
  margin keeps two sends to one target more than a second apart *as the target sees them*:
  what happens between the stamp and the first packet (building the request, the loopback or
  network path, the target's own scheduling) varies by a few milliseconds. It costs
  ``_GUARD_MARGIN`` / 1 s of throughput (0.3 %).
* A grant's units then follow the probe onto the wire: the runner calls :meth:`restamp` each
  time the probe sends something and once more when an answer to it is in (the first
  response head after the send, else the probe's end: the target received everything before
  that), so the next grant of each slot is a window after the last thing the target can have
  seen, and not after the probe's own tail (reading the body, closing). An answer is causal
  proof that the target had the request, so a slot's next grant comes a window after the
  answer itself, without the guard (which covers the unknown way from a send to the target).
  And a slot's grants are spread at least ``1 s / (limit * _SPREAD)`` apart, so that the sends
  of one window never leave in one burst that the event loop and the targets then serve late,
  one after another.
* With ``memory://`` the local logs are the whole budget (one process), and the dispatcher takes
  a head's units itself at the release moment: the waiter resumes granted, and every head due
  at one moment is released in one pass. With Redis, the shared
  authoritative count is one sorted set per budget (a member per unit, scored with the moment
  until which it counts) so that several processes share one budget: a waiter whose turn came
  runs one Lua script that checks all four shared windows and, only if every one has room,
  adds its units to all four. The script is atomic in Redis, so no process can take the last
  unit between another's check and its hit, and no unit is ever counted in one budget for a
  probe another budget refused. With ``hold_seconds`` (probes sent by workers, whose wire time
  only the worker knows) a grant's units are scored that far in the future, so they count for
  every process while the probe may be on the wire; :meth:`restamp` (its answer is in) moves
  them back to that moment, from which they count one more window. Across processes the
  guarantee holds in wall-clock time (scores are each process's ``time.time()``: hosts must
  keep NTP-synchronised clocks); the local guard covers only the grants of its own process.
* A per-IP factor (from the health breaker) lowers the per-IP limit. A probe whose cost is above
  the lowered limit (but within the configured one) waits until its IP's window is empty: it is
  never refused for a back-off that will pass. The hit on Redis is made against the configured
  limit so that the list keeps enough entries when the factor is restored; a cross-process race
  can therefore exceed the *reduced* per-IP limit, never the configured one.
* The only immediate refusal is a cost above a configured limit (it can never fit in one
  window). Otherwise a waiter is refused only when ``wait_until`` passes before its turn.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import heapq
import ipaddress
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItemPerSecond
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from orchestrator.errors import BudgetStoreError, InputError

__all__ = ["BudgetLimits", "Grant", "RateBudget", "check_budget_store"]

_WINDOW = 1.0
"""seconds: the sliding window every budget is counted over"""

_GUARD_MARGIN = 0.003
"""seconds added to the local window: the jitter between a grant's stamp and its first packet
arriving at the target must stay below this for the target never to see N+1 in one second"""

_MIN_SLEEP = 0.001

_SPREAD = 4
"""a slot's grants are at least ``1 s / (limit * _SPREAD)`` apart: a window's worth of units
goes out over a quarter of a second, never in one burst. A burst of N sends to N targets
reaches each one later than its grant by a varying part of the burst (the event loop, then the
target's own queue, serve them one after another), so their next sends, a window later, would
arrive closer together than a window; spread out, each send leaves and arrives at its grant"""

_MIN_GAP = 0.0005
"""seconds: spacing below this is not waited for (sleeping that short costs more than it
spreads; at over 2000 grants a second the window check alone paces)"""

_SWEEP_AT = 4096
"""local logs kept before empty ones are swept (bounds memory on long runs over many IPs)"""

_BUDGET_NAMES = ("per_ip", "per_network", "per_notice", "global")

_PREFIX = "RIO-BUDGET"
"""the prefix of the shared budgets' Redis keys (one sorted set per budget)"""

_IN_FLIGHT_POLL = 0.05
"""seconds: how soon to look again when the budget is full of units still on the wire"""

_TAKE_ALL = """
-- KEYS: the budgets' sorted sets (member: a grant's unit, score: until when it counts).
-- ARGV: now, window (s), cost, the new units' score, their grant's token, then per key its
-- limit now. A unit counts while its score is at most a window ago: units still on the wire
-- carry a score in the future (their hold) until their probe's answer moves it (release).
-- Returns {0, 0} when cost units were added to every set; else {i, s}: set i has no room for
-- cost units for about s more seconds, and nothing was added anywhere.
local now, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked, wait = 0, 0
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[5 + i])
    if limit < cost then return {i, tostring(window)} end
    redis.call('zremrangebyscore', key, '-inf', '(' .. tostring(now - window))
    local over = redis.call('zcard', key) + cost - limit
    if over > 0 then
        local e = redis.call('zrange', key, over - 1, over - 1, 'WITHSCORES')
        local at = tonumber(e[2])
        local free = at + window - now
        if at > now then free = tonumber(ARGV[6 + #KEYS]) end
        if free > wait then blocked, wait = i, free end
    end
end
if blocked > 0 then return {blocked, tostring(wait)} end
local keep = math.ceil((tonumber(ARGV[4]) - now + window) * 1000) + 1000
for i, key in ipairs(KEYS) do
    for j = 1, cost do redis.call('zadd', key, ARGV[4], ARGV[5] .. ':' .. j) end
    if redis.call('pttl', key) < keep then redis.call('pexpire', key, keep) end
end
return {0, '0'}
"""

_RELEASE = """
-- KEYS: the budgets' sorted sets; ARGV: the units' new score, their grant's token, cost.
-- Moves a grant's units to when its probe was last on the wire (never adds any).
for i, key in ipairs(KEYS) do
    for j = 1, tonumber(ARGV[3]) do redis.call('zadd', key, 'XX', ARGV[1], ARGV[2] .. ':' .. j) end
end
return 0
"""


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
        waited: seconds spent in ``acquire`` (queue, storage and sleeps).
        reason: ``None`` when granted, else ``"rate:<budget>"`` naming the budget that
            was exhausted (``per_ip``, ``per_network``, ``per_notice`` or ``global``).
    """

    granted: bool
    waited: float
    reason: str | None
    at: float | None = None
    """the grant's stamp on the event loop's (monotonic) clock; ``None`` when refused"""

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
    key_ip: str = ""
    """the canonical address text (per-IP slots), to look its factor up without parsing"""


@dataclass(eq=False, kw_only=True)
class _Waiter:
    """One ``acquire`` in the queue of its IP."""

    key: str
    """the canonical IP (the queue it waits in)"""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    notice_id: str
    cost: int
    wait_until: float
    seq: int
    turn: asyncio.Future[str | None]
    """set by the dispatcher: ``None`` = your turn, a reason = refused"""
    done: asyncio.Future[None] | None = None
    """set by the waiter after its turn (taken, or blocked by another process)"""
    version: int = 0
    not_before: float = 0.0
    """earliest retry after the shared storage (another process) said no"""
    slots: tuple[_Slot, ...] = field(default=())
    stamp: float = 0.0
    """the grant's stamp in the local logs, once taken"""
    taken: bool = False
    """the dispatcher took the units for it (no shared storage): its turn is its grant"""


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


@functools.lru_cache(maxsize=_SWEEP_AT)
def _canonical_ip(ip: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str]:
    """The address and its text, canonical (cached: every grant asks several times)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise InputError(f"rate budget: ip: {ip!r} is not an IP address") from None
    # One host, one budget: ::ffff:a.b.c.d is the IPv4 host a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, str(address)


class RateBudget:
    """Per-IP, per-network, per-notice and global one-second moving-window budgets.

    Args:
        limits: the four budgets.
        storage_url: ``memory://`` (this process only) or ``redis://host:port/db`` (shared).
        namespace: prefix of every key, so that deployments and test runs sharing a Redis
            database stay apart.

    One instance serves one event loop (its dispatcher and Redis pool are bound to it);
    processes share budgets through Redis, not by sharing an instance. Call :meth:`close` when
    done.

    Raises:
        InputError: the storage URL has an unsupported scheme.
    """

    def __init__(
        self,
        limits: BudgetLimits,
        *,
        storage_url: str = "memory://",
        namespace: str = "rio",
        hold_seconds: float = 0.0,
    ) -> None:
        if not namespace or any(c in namespace for c in " \t\r\n*?[]"):
            raise InputError(f"rate budget: namespace: {namespace!r} is not a plain name")
        self._limits = limits
        self._namespace = namespace
        self._storage_url = storage_url
        uri = _storage_uri(storage_url)
        self._pool: Any = None
        self._take_script: Any = None
        self._release_script: Any = None
        self._storage: Any = None
        if not uri.startswith("async+memory"):
            try:
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
            client = aioredis.Redis(connection_pool=self._pool)
            self._take_script = client.register_script(_TAKE_ALL)
            self._release_script = client.register_script(_RELEASE)
        self._hold = max(0.0, hold_seconds)
        self._held: dict[tuple[str, str, float], str] = {}
        """shared grants whose units may still move: (ip, notice, stamp) -> token"""
        self._releases: set[asyncio.Task[None]] = set()
        self._factors: dict[str, float] = {}
        self._local: dict[str, deque[float]] = {}
        self._granted: dict[str, float] = {}
        self._slot_cache: dict[
            tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str, int],
            tuple[float, tuple[_Slot, ...]],
        ] = {}
        """per slot key: the loop time of its last grant (for the spacing)"""
        self._items: dict[int, _Item] = {}
        self._networks: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
        self._queues: dict[str, deque[_Waiter]] = {}
        self._heap: list[tuple[float, int, int, str]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._granting = False
        """the dispatcher gave a head its turn and waits for its attempt"""

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
        _, key = _canonical_ip(ip)
        if not isinstance(factor, int | float) or not 0.0 < factor <= 1.0:
            raise InputError(f"rate budget: factor for {key}: {factor!r} is not in (0, 1]")
        if factor == 1.0:
            self._factors.pop(key, None)
        else:
            self._factors[key] = float(factor)
        # The head of that IP may be ready earlier (or later) now: place it again.
        queue = self._queues.get(key)
        if queue:
            self._push(queue[0], 0.0)

    def per_ip_limit(self, ip: str) -> int:
        """The per-IP limit in force for ``ip`` now (the factor applied)."""
        _, key = _canonical_ip(ip)
        factor = self._factors.get(key, 1.0)
        return max(1, math.floor(self._limits.per_ip * factor))

    async def acquire(self, ip: str, notice_id: str, *, cost: int = 1, wait_until: float) -> Grant:
        """Take ``cost`` units from all four budgets, waiting for room until ``wait_until``.

        Call it immediately before the probe connects: the grant's stamp (``Grant.at``) is the
        send time, and nothing is awaited between the stamp and the return.

        Args:
            ip: the pinned target address.
            notice_id: the notice the probe runs under.
            cost: connections the probe will open (units to take from every budget).
            wait_until: deadline for waiting, on the running loop's clock (``loop.time()``,
                which is ``time.monotonic()`` for asyncio's loops). One attempt is always made.

        Returns:
            A granted :class:`Grant`, or a refused one naming the budget that stayed
            exhausted (refused at once when ``cost`` exceeds a configured limit, or when
            ``wait_until`` passes before the window has room).

        Raises:
            InputError: bad ``ip``, ``notice_id`` or ``cost``.
            BudgetStoreError: the shared storage (Redis) failed.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise InputError(f"rate budget: cost: {cost!r} is not a positive integer")
        if not notice_id:
            raise InputError("rate budget: notice_id: empty")
        address, key = _canonical_ip(ip)
        lim = self._limits
        for name, limit in (
            ("per_ip", lim.per_ip),
            ("per_network", lim.per_network),
            ("per_notice", lim.per_notice),
            ("global", lim.global_),
        ):
            if cost > limit:
                # Can never fit in a one-second window: waiting would be pointless.
                return Grant(granted=False, waited=loop.time() - started, reason=f"rate:{name}")
        queue = self._queues.get(key)
        if self._take_script is None and not queue and not self._granting:
            # Nobody ahead: no request of this IP queued, no turn being taken, and no IP's
            # head due yet. If every window has room now, the dispatcher would grant this one
            # at once: take the units here, without the hops through it.
            now = loop.time()
            if not self._heap or self._heap[0][0] > now:
                slots = self._slots(address, notice_id, cost)
                if self._ready_at(slots, cost, now, now)[0] <= now:
                    stamp = self._stamp(slots, cost)
                    return Grant(granted=True, waited=stamp - started, reason=None, at=stamp)
        waiter = _Waiter(
            key=key,
            address=address,
            notice_id=notice_id,
            cost=cost,
            wait_until=wait_until,
            seq=next(self._seq),
            turn=loop.create_future(),
        )
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(waiter)
        if len(queue) == 1:
            self._push(waiter, 0.0)
        self._start(loop)
        timer = loop.call_at(max(wait_until, started), self._expire, waiter)
        try:
            while True:
                reason = await waiter.turn
                if reason is not None:
                    return Grant(granted=False, waited=loop.time() - started, reason=reason)
                if waiter.taken:
                    # The dispatcher took the units at the release (this process's budget):
                    # the waiter resumes at once and sends; its wire events move them on.
                    stamp = waiter.stamp
                    return Grant(granted=True, waited=stamp - started, reason=None, at=stamp)
                try:
                    blocked, delay = await self._take(waiter)
                finally:
                    if waiter.done is not None and not waiter.done.done():
                        waiter.done.set_result(None)
                if blocked is None:
                    # Stamped by _take with no await since: that instant is the send time.
                    stamp = waiter.stamp
                    return Grant(granted=True, waited=stamp - started, reason=None, at=stamp)
                # Another process took the unit (Redis): wait for the storage's own reset.
                now = loop.time()
                retry = now + max(delay, _MIN_SLEEP)
                if retry > wait_until:
                    return Grant(granted=False, waited=now - started, reason=f"rate:{blocked}")
                waiter.not_before = retry
                waiter.turn = loop.create_future()
                self._push(waiter, retry)
        finally:
            timer.cancel()
            if waiter.done is not None and not waiter.done.done():
                # Cancelled between its turn and its attempt: the dispatcher must go on.
                waiter.done.set_result(None)
            self._leave(waiter)

    def restamp(
        self,
        ip: str,
        notice_id: str,
        *,
        cost: int,
        old: float,
        new: float | Sequence[float],
        answered: bool = False,
    ) -> float:
        """Move a grant's units from their stamp ``old`` to when the probe really sent.

        A grant is stamped just before the probe starts, but its packets leave when the event
        loop (or a batch's nmap) gets to them: in a burst of grants that is milliseconds later,
        and the target then sees two sends closer than the stamps say. Each time the probe
        reports that something went out (a connection opened, a request written, its answer
        in), its units move to that moment, so the next grant of every slot is a window after
        the *last* thing this grant sent. Units only ever move later (never over). A grant
        whose wire time comes after the next grant was made (the probe took over a second to
        start) is the one case this cannot cover.

        Args:
            ip: the grant's target address.
            notice_id: its notice.
            cost: its units.
            old: the stamp the units carry now (``Grant.at``, or the last ``restamp``).
            new: the wire time on the loop's clock: one instant for all the units, or one per
                send as a tool traced them (an nmap batch; sends beyond ``cost`` count too,
                units beyond the sends go with the last of them).
            answered: ``new`` (one instant) is when an answer to everything the grant sent
                came in. The target had it all before then, so the next grant may come a
                window after ``new`` itself: the guard, which covers the unknown way from a
                send to the target, is not needed there. Locally the units then sit at
                ``new - _GUARD_MARGIN`` (never before ``old``); the shared store, which has no
                guard, gets ``new``.

        Returns:
            The latest stamp the units carry after the move (this process's log).
        """
        shared_at: float | None = None
        if isinstance(new, int | float):
            if answered:
                shared_at = float(new)
                new = max(old, shared_at - _GUARD_MARGIN)
            if new <= old:
                if shared_at is not None and shared_at > old:
                    self._release_held(ip, notice_id, cost, old, old, shared_at)
                return old
            times = [float(new)] * cost
        else:
            times = sorted(max(old, t) for t in new)
            if not times:
                return old
            times.extend([times[-1]] * (cost - len(times)))
        latest = times[-1]
        if latest <= old:
            return old
        address, _ = _canonical_ip(ip)
        for slot in self._slots(address, notice_id, cost):
            log = self._local.get(slot.key)
            if log is None:
                log = self._local[slot.key] = deque()
            # The log is sorted: the grant's units sit together at ``old`` (unless swept).
            at = bisect.bisect_left(log, old)
            for _ in range(cost):
                if at >= len(log) or log[at] != old:
                    break
                del log[at]
            if not log or log[-1] <= times[0]:
                log.extend(times)
            else:
                for t in times:
                    bisect.insort(log, t)
        # No wake: the dispatcher recomputes every budget's room before each grant.
        self._release_held(
            ip, notice_id, cost, old, latest, latest if shared_at is None else shared_at
        )
        return latest

    def _release_held(
        self, ip: str, notice_id: str, cost: int, old: float, latest: float, shared_at: float
    ) -> None:
        """A held shared grant (stamped ``old`` here, ``latest`` now) counts from ``shared_at``."""
        if not self._held:
            return
        address, text = _canonical_ip(ip)
        token = self._held.pop((text, notice_id, old), None)
        if token is not None:
            self._held[(text, notice_id, latest)] = token
            slots = self._slots(address, notice_id, cost)
            self._release(slots, cost, token, shared_at)

    def _release(self, slots: tuple[_Slot, ...], cost: int, token: str, stamp: float) -> None:
        """Move a shared grant's units from their hold to ``stamp`` (in the background).

        If this never happens (the store failed, the process died), the units count until
        their hold has passed: later, never too early.
        """
        loop = asyncio.get_running_loop()
        score = time.time() - (loop.time() - stamp)
        keys = [f"{_PREFIX}:{slot.key}" for slot in slots]

        async def release() -> None:
            with contextlib.suppress(RedisError, OSError):
                await self._release_script(keys=keys, args=[score, token, cost])

        task = loop.create_task(release())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def close(self) -> None:
        """Stop the dispatcher and release the storage (Redis connections)."""
        if self._releases:
            await asyncio.gather(*list(self._releases), return_exceptions=True)
        task, self._dispatcher = self._dispatcher, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for queue in self._queues.values():
            for waiter in queue:
                if not waiter.turn.done():
                    waiter.turn.set_result("rate:closed")
        timer = getattr(self._storage, "timer", None)
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.disconnect()

    # -- the queue and the dispatcher ---------------------------------------------------------

    def _push(self, waiter: _Waiter, ready: float) -> None:
        """(Re)place an IP's head in the heap; older entries of it become stale."""
        waiter.version += 1
        heapq.heappush(self._heap, (ready, waiter.seq, waiter.version, waiter.key))
        if self._wake is not None:
            self._wake.set()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch(), name="rio-rate-pacer")

    def _expire(self, waiter: _Waiter) -> None:
        """``wait_until`` passed while the waiter was still queued: refuse it."""
        if waiter.turn.done() or (waiter.done is not None and not waiter.done.done()):
            return
        now = asyncio.get_running_loop().time()
        ready, blocked = self._ready(waiter, now)
        if ready <= now:
            # Room is there; the dispatcher is busy with others. One attempt is always made.
            return
        waiter.turn.set_result(f"rate:{blocked}")

    def _leave(self, waiter: _Waiter) -> None:
        """Remove a waiter from its IP's queue; the next one there becomes the head."""
        queue = self._queues.get(waiter.key)
        if queue is None:
            return
        was_head = bool(queue) and queue[0] is waiter
        try:
            queue.remove(waiter)
        except ValueError:
            return
        if not queue:
            del self._queues[waiter.key]
        elif was_head:
            self._push(queue[0], 0.0)
        if self._wake is not None:
            self._wake.set()

    def _head(self, seq: int, version: int, key: str) -> _Waiter | None:
        queue = self._queues.get(key)
        if not queue:
            return None
        head = queue[0]
        if head.seq != seq or head.version != version or head.turn.done():
            return None
        return head

    async def _dispatch(self) -> None:
        """Give each IP's head its turn at the moment every budget has room for it."""
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        wake = self._wake
        while True:
            wake.clear()
            if not self._heap:
                await wake.wait()
                continue
            ready_key, seq, version, key = self._heap[0]
            head = self._head(seq, version, key)
            if head is None:
                heapq.heappop(self._heap)
                continue
            now = loop.time()
            ready, blocked = self._ready(head, now)
            if ready > now and ready > ready_key:
                # Its network (or a factor) moved it back: re-place it, try the next.
                heapq.heapreplace(self._heap, (ready, seq, version, key))
                continue
            if ready > head.wait_until and ready > now:
                heapq.heappop(self._heap)
                head.turn.set_result(f"rate:{blocked}")
                continue
            if ready > now:
                handle = loop.call_at(ready, wake.set)
                try:
                    await wake.wait()
                finally:
                    handle.cancel()
                continue
            heapq.heappop(self._heap)
            if self._take_script is None:
                # This process's budget alone: take the units now, at the release, and go on
                # to the next head due (a burst of releases is one pass, not two loop turns
                # each); the IP's next request becomes its head at once.
                head.stamp = self._stamp(head.slots, head.cost)
                head.taken = True
                head.turn.set_result(None)
                self._leave(head)
                continue
            head.done = loop.create_future()
            head.turn.set_result(None)
            # Wait for its attempt: the next decision needs the stamp it makes (and no
            # acquire takes the fast path past it meanwhile).
            self._granting = True
            try:
                await asyncio.shield(head.done)
            finally:
                self._granting = False

    def _ready(self, waiter: _Waiter, now: float) -> tuple[float, str]:
        """When every budget has room for the waiter, and the one that frees last."""
        waiter.slots = self._slots(waiter.address, waiter.notice_id, waiter.cost)
        return self._ready_at(waiter.slots, waiter.cost, max(waiter.not_before, now), now)

    def _ready_at(
        self, slots: tuple[_Slot, ...], cost: int, earliest: float, now: float
    ) -> tuple[float, str]:
        ready, blocked = earliest, "per_ip"
        for slot in slots:
            at = self._local_ready(slot, cost, now)
            if at > ready:
                ready, blocked = at, slot.name
        return ready, blocked

    # -- internals ----------------------------------------------------------------------------

    def _item(self, amount: int) -> _Item:
        item = self._items.get(amount)
        if item is None:
            item = self._items[amount] = _Item(amount)
        return item

    def _slots(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, notice_id: str, cost: int
    ) -> tuple[_Slot, ...]:
        lim = self._limits
        cached = self._slot_cache.get((address, notice_id, cost))
        text = str(address) if cached is None else cached[1][0].key_ip
        factor = self._factors.get(text, 1.0)
        if cached is not None and cached[0] == factor:
            return cached[1]
        network = self._networks.get(address)
        if network is None:
            prefix = lim.network_prefix_v4 if address.version == 4 else lim.network_prefix_v6
            network = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
            if len(self._networks) > _SWEEP_AT:
                self._networks.clear()
            self._networks[address] = network
        ns = self._namespace
        # A probe larger than the backed-off limit waits for an empty window (never refused).
        per_ip = max(max(1, math.floor(lim.per_ip * factor)), cost)
        slots = (
            _Slot(
                name="per_ip",
                key=f"{ns}:ip:{text}",
                limit=per_ip,
                check=self._item(per_ip),
                hit=self._item(lim.per_ip),
                key_ip=text,
            ),
            self._plain_slot("per_network", f"{ns}:net:{network}", lim.per_network),
            self._plain_slot("per_notice", f"{ns}:notice:{notice_id}", lim.per_notice),
            self._plain_slot("global", f"{ns}:global", lim.global_),
        )
        if len(self._slot_cache) > _SWEEP_AT:
            self._slot_cache.clear()
        self._slot_cache[(address, notice_id, cost)] = (factor, slots)
        return slots

    def _plain_slot(self, name: str, key: str, limit: int) -> _Slot:
        item = self._item(limit)
        return _Slot(name=name, key=key, limit=limit, check=item, hit=item)

    async def _take(self, waiter: _Waiter) -> tuple[str | None, float]:
        """The waiter's attempt: ``(None, 0)`` when taken (and stamped), else ``(budget, s)``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        ready, blocked = self._ready(waiter, now)
        if ready > now:
            return blocked, ready - now
        slots, cost = waiter.slots, waiter.cost
        token = None
        if self._take_script is not None:
            token = uuid.uuid4().hex
            blocked_shared, delay = await self._take_shared(slots, cost, token)
            if blocked_shared is not None:
                return blocked_shared, delay
        waiter.stamp = self._stamp(slots, cost)
        if token is not None and self._hold > 0:
            self._keep_held(slots[0].key_ip, waiter.notice_id, waiter.stamp, token)
        return None, 0.0

    def _keep_held(self, ip: str, notice_id: str, stamp: float, token: str) -> None:
        if len(self._held) > _SWEEP_AT:
            # Grants older than their hold count no more: forget them.
            horizon = stamp - (self._hold + _WINDOW)
            for k in [k for k in self._held if k[2] < horizon]:
                del self._held[k]
        self._held[(ip, notice_id, stamp)] = token

    def _stamp(self, slots: tuple[_Slot, ...], cost: int) -> float:
        """Take the units in the local logs, stamped now (nothing awaited since the check)."""
        stamp = asyncio.get_running_loop().time()
        granted = self._granted
        for slot in slots:
            self._local.setdefault(slot.key, deque()).extend([stamp] * cost)
            granted[slot.key] = stamp
        if len(self._local) > _SWEEP_AT:
            self._sweep(stamp)
        return stamp

    async def _take_shared(
        self, slots: tuple[_Slot, ...], cost: int, token: str
    ) -> tuple[str | None, float]:
        """Take ``cost`` units from all four shared windows or from none: one Redis script.

        One round trip per grant (checking and then hitting each window was eight, and the
        pacer makes one grant at a time), and atomic across processes: no unit is hit in one
        window while another refuses (nothing is wasted), and no process can take the last
        unit between another's check and its hit.
        """
        assert self._take_script is not None
        now = time.time()
        # With a hold, the units count as on the wire until the probe's answer moves them.
        args: list[float | int | str] = [now, int(_WINDOW), cost, now + self._hold, token]
        args += [slot.limit for slot in slots]
        args.append(_IN_FLIGHT_POLL)
        try:
            blocked, wait = await self._take_script(
                keys=[f"{_PREFIX}:{slot.key}" for slot in slots], args=args
            )
        except (RedisError, StorageError) as exc:
            raise BudgetStoreError(
                f"rate budget {self._namespace!r}: storage {self._storage_url!r} failed: {exc}"
            ) from exc
        if int(blocked) == 0:
            return None, 0.0
        return slots[int(blocked) - 1].name, max(_MIN_SLEEP, float(wait))

    def _local_ready(self, slot: _Slot, cost: int, now: float) -> float:
        """When this process's own grants leave room for ``cost`` more units in the slot."""
        stamps = self._local.get(slot.key)
        if stamps is None:
            return now
        horizon = now - (_WINDOW + _GUARD_MARGIN)
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        excess = len(stamps) + cost - slot.limit
        # A slot's grants are spread at least this far apart (see _SPREAD); from the last
        # grant, not from the last stamp (restamps follow the probes, grants must not).
        spaced = self._granted.get(slot.key, now) + _WINDOW / (slot.limit * _SPREAD)
        if spaced - now < _MIN_GAP:
            spaced = now
        if excess <= 0:
            return spaced
        # The excess-th oldest stamp must leave the (longer) local window first.
        return max(spaced, stamps[excess - 1] + _WINDOW + _GUARD_MARGIN)

    def _sweep(self, now: float) -> None:
        horizon = now - (_WINDOW + _GUARD_MARGIN)
        for key in [k for k, v in self._local.items() if not v or v[-1] <= horizon]:
            del self._local[key]
            self._granted.pop(key, None)


def check_budget_store(storage_url: str, *, timeout: float = 3.0) -> str:
    """Say whether the rate-budget store answers (``rio doctor``); returns what was found.

    Raises:
        BudgetStoreError: a Redis store does not answer a PING within ``timeout`` seconds.
    """
    uri = _storage_uri(storage_url)
    if not uri.startswith("async+redis"):
        return f"{storage_url} (this process only)"
    import redis

    client = redis.Redis.from_url(
        uri.removeprefix("async+"), socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BudgetStoreError(f"{storage_url} does not answer: {exc}") from exc
    finally:
        client.close()
    return f"{storage_url} (answers)"
