"""Replaying the rate budgets from the logged intents, in memory bounded by the window.

The gate promises never more than N budget units (connections) in any one-second sliding window,
per target IP, per network (the IP's /24 or /64, as the policy says), per notice and globally.
The auditor replays that promise from each intent's ``at`` and ``cost``.

A window is the half-open interval ``(s - 1 s, s]``; a budget is exceeded when the units of the
intents inside some window add up to more than its limit. Only windows *ending at an intent*
need checking (moving a window's end forward to the next intent only adds units), and when the
intents arrive in time order only the window ending at the newest one can have changed. Each key
keeps the intents of the last two seconds only, so memory is O(window), not O(log).

Intents may be logged slightly out of time order (two probes granted concurrently). An intent up
to one window older than the newest one seen is inserted in place and every window containing it
is rechecked; an intent older than that cannot be placed any more and is reported as such.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from dataclasses import dataclass

__all__ = ["WINDOW_NS", "RateExcess", "RateReplay", "SlidingWindow"]

WINDOW_NS = 1_000_000_000
"""The sliding window, in nanoseconds."""

_SWEEP_EVERY = 4096


@dataclass(frozen=True, kw_only=True, slots=True)
class RateExcess:
    """A budget found exceeded (or an intent the replay could not place in time).

    Attributes:
        budget: ``per_ip``, ``per_network``, ``per_notice``, ``global`` or ``order``.
        key: The IP, network, notice id or ``*`` the budget is counted for.
        limit: The budget's limit in units per window.
        units: Units inside the fullest window containing the offending intent.
        seq: The intent whose arrival made the excess visible.
    """

    budget: str
    key: str
    limit: int
    units: int
    seq: int

    def sentence(self) -> str:
        """Say what was exceeded, for people."""
        if self.budget == "order":
            return (
                f"intent logged more than one window ({WINDOW_NS / 1e9:g} s) earlier than an "
                "intent logged before it; the replay cannot place it"
            )
        return (
            f"{self.units} units in one second against the {self.budget} budget of "
            f"{self.limit} for {self.key}"
        )


@functools.lru_cache(maxsize=65_536)
def _network_key(ip: str, prefix_v4: int, prefix_v6: int) -> str:
    # Cached: a run probes few addresses many times, and ipaddress parsing dominated replay time.
    address = ipaddress.ip_address(ip)
    prefix = prefix_v4 if address.version == 4 else prefix_v6
    return str(ipaddress.ip_network((address, prefix), strict=False))


class SlidingWindow:
    """The recent events of one budget key, checked as they arrive.

    Events are ``(time in ns, units)``. :meth:`add` returns the units of the fullest window
    containing the new event when that exceeds the limit, else ``None``.
    """

    __slots__ = ("_costs", "_head", "_latest", "_times", "_win_head", "_win_sum", "limit", "window")

    def __init__(self, limit: int, window: int = WINDOW_NS) -> None:
        """Create an empty window.

        Args:
            limit: Most units allowed in any window.
            window: Window length in the events' time unit (nanoseconds by default).
        """
        self.limit = limit
        self.window = window
        self._times: list[int] = []
        self._costs: list[int] = []
        self._head = 0  # first retained event
        self._win_head = 0  # first event inside the window ending at the latest event
        self._win_sum = 0
        self._latest: int | None = None

    @property
    def latest(self) -> int | None:
        """Time of the newest event seen, or ``None``."""
        return self._latest

    def __len__(self) -> int:
        return len(self._times) - self._head

    def too_late(self, at: int) -> bool:
        """Tell whether an event at ``at`` is too old to be placed any more."""
        return self._latest is not None and at < self._latest - self.window

    def add(self, at: int, units: int) -> int | None:
        """Record one event and check every window that contains it.

        Args:
            at: The event's time; must not be :meth:`too_late`.
            units: Budget units it used.

        Returns:
            The units in the fullest window containing it, when over the limit; else ``None``.

        Raises:
            ValueError: The event is too late to be placed.
        """
        if self.too_late(at):
            raise ValueError(f"event at {at} is more than one window before {self._latest}")
        w = self.window
        if self._latest is None or at >= self._latest:
            self._times.append(at)
            self._costs.append(units)
            self._latest = at
            self._win_sum += units
            times, costs = self._times, self._costs
            edge = at - w
            i = self._win_head
            while times[i] <= edge:
                self._win_sum -= costs[i]
                i += 1
            self._win_head = i
            self._evict(at - 2 * w)
            return self._win_sum if self._win_sum > self.limit else None
        return self._insert(at, units)

    def _insert(self, at: int, units: int) -> int | None:
        """Place an event older than the newest one and rescan the windows around it."""
        assert self._latest is not None
        w = self.window
        times, costs = self._times, self._costs
        pos = bisect.bisect_right(times, at, lo=self._head)
        times.insert(pos, at)
        costs.insert(pos, units)
        if at > self._latest - w:
            self._win_sum += units
        else:
            self._win_head += 1
        worst = 0
        j = pos
        end = len(times)
        # Candidate windows end at each event time in [at, at + w).
        while j < end and times[j] < at + w:
            s = times[j]
            hi = bisect.bisect_right(times, s, lo=j)
            lo = bisect.bisect_right(times, s - w, lo=self._head, hi=pos + 1)
            worst = max(worst, sum(costs[lo:hi]))
            j = hi
        return worst if worst > self.limit else None

    def _evict(self, horizon: int) -> None:
        """Forget events at or before ``horizon``; compact the lists now and then."""
        times = self._times
        head = self._head
        limit = self._win_head
        while head < limit and times[head] <= horizon:
            head += 1
        self._head = head
        if head > 1024 and head * 2 > len(times):
            del self._times[:head]
            del self._costs[:head]
            self._win_head -= head
            self._head = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class _Limits:
    per_ip: int
    per_network: int
    per_notice: int
    global_: int
    prefix_v4: int
    prefix_v6: int


class RateReplay:
    """Replays the four budgets over a stream of intents."""

    def __init__(
        self,
        *,
        per_ip: int,
        per_network: int,
        per_notice: int,
        global_: int,
        prefix_v4: int = 24,
        prefix_v6: int = 64,
        notice: str = "notice",
        window: int = WINDOW_NS,
    ) -> None:
        """Set the budgets.

        Args:
            per_ip: Units per window per target IP.
            per_network: Units per window per network.
            per_notice: Units per window for the notice.
            global_: Units per window in all.
            prefix_v4: Prefix length of an IPv4 address's network.
            prefix_v6: Prefix length of an IPv6 address's network.
            notice: The notice id (names the per-notice key).
            window: Window length in nanoseconds.
        """
        self._limits = _Limits(
            per_ip=per_ip,
            per_network=per_network,
            per_notice=per_notice,
            global_=global_,
            prefix_v4=prefix_v4,
            prefix_v6=prefix_v6,
        )
        self._notice = notice
        self.window = window
        self._ips: dict[str, SlidingWindow] = {}
        self._networks: dict[str, SlidingWindow] = {}
        self._notice_window = SlidingWindow(per_notice, window)
        self._global_window = SlidingWindow(global_, window)
        self._adds = 0
        self._latest: int | None = None

    def network_of(self, ip: str) -> str:
        """Return the network key of an address (``a.b.c.0/24``, ``x:y:z:w::/64``)."""
        return _network_key(ip, self._limits.prefix_v4, self._limits.prefix_v6)

    @property
    def tracked_keys(self) -> int:
        """How many IP and network windows are held (bounded by the window's traffic)."""
        return len(self._ips) + len(self._networks)

    def add(self, *, seq: int, at: int, ip: str, units: int) -> RateExcess | None:
        """Replay one intent.

        Args:
            seq: The intent's sequence number.
            at: Its time in nanoseconds since the epoch.
            ip: The pinned address.
            units: Its cost in budget units.

        Returns:
            The first budget it shows exceeded (per IP, per network, per notice, global, in that
            order), an ``order`` excess when it cannot be placed in time, or ``None``.

        Raises:
            ValueError: ``ip`` is not an IP address.
        """
        network = self.network_of(ip)
        limits = self._limits
        ip_window = self._ips.get(ip)
        if ip_window is None:
            ip_window = self._ips[ip] = SlidingWindow(limits.per_ip, self.window)
        net_window = self._networks.get(network)
        if net_window is None:
            net_window = self._networks[network] = SlidingWindow(limits.per_network, self.window)
        if self._global_window.too_late(at):
            return RateExcess(budget="order", key="*", limit=0, units=0, seq=seq)
        excess: RateExcess | None = None
        for budget, key, window in (
            ("per_ip", ip, ip_window),
            ("per_network", network, net_window),
            ("per_notice", self._notice, self._notice_window),
            ("global", "*", self._global_window),
        ):
            over = window.add(at, units)
            if over is not None and excess is None:
                excess = RateExcess(budget=budget, key=key, limit=window.limit, units=over, seq=seq)
        if self._latest is None or at > self._latest:
            self._latest = at
        self._adds += 1
        if self._adds % _SWEEP_EVERY == 0:
            self._sweep()
        return excess

    def _sweep(self) -> None:
        """Drop keys with no event in the last two windows (they cannot matter any more)."""
        assert self._latest is not None
        horizon = self._latest - 2 * self.window
        for table in (self._ips, self._networks):
            stale = [k for k, w in table.items() if w.latest is not None and w.latest <= horizon]
            for k in stale:
                del table[k]
