"""The streaming sliding-window replay agrees with a naive O(n^2) reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.audit._rates import RateReplay, SlidingWindow

W = 1000  # window in the events' unit (milliseconds here)


def naive_first_offence(events: list[tuple[int, int]], limit: int) -> int | None:
    """The first arrival after which some window (s - W, s] holds more than ``limit`` units."""
    for k in range(len(events)):
        seen = events[: k + 1]
        for s, _ in seen:
            if sum(c for t, c in seen if s - W < t <= s) > limit:
                return k
    return None


def streaming_first_offence(events: list[tuple[int, int]], limit: int) -> int | None:
    window = SlidingWindow(limit, W)
    for k, (t, c) in enumerate(events):
        if window.add(t, c) is not None:
            return k
    return None


@st.composite
def event_streams(draw: st.DrawFn) -> list[tuple[int, int]]:
    steps = draw(
        st.lists(
            st.tuples(
                st.one_of(st.just(0), st.integers(-W, 3 * W), st.integers(0, 50)),
                st.integers(1, 5),
            ),
            max_size=60,
        )
    )
    events: list[tuple[int, int]] = []
    latest = 0
    for delta, cost in steps:
        # Arrivals may run late, but never by more than a window (the replay's contract).
        t = max(latest + delta, latest - W)
        latest = max(latest, t)
        events.append((t, cost))
    return events


@settings(max_examples=400, deadline=None)
@given(events=event_streams(), limit=st.integers(1, 12))
def test_streaming_replay_finds_the_same_first_offence_as_the_naive_one(
    events: list[tuple[int, int]], limit: int
) -> None:
    assert streaming_first_offence(events, limit) == naive_first_offence(events, limit)


def test_window_is_half_open_so_events_exactly_one_second_apart_do_not_share_it() -> None:
    window = SlidingWindow(1, W)
    assert window.add(0, 1) is None
    assert window.add(W, 1) is None
    assert window.add(W + W - 1, 1) == 2


def test_event_older_than_a_window_cannot_be_placed() -> None:
    window = SlidingWindow(5, W)
    window.add(5 * W, 1)
    assert window.too_late(3 * W)
    with pytest.raises(ValueError):
        window.add(3 * W, 1)


def test_replay_memory_stays_bounded_by_the_window() -> None:
    replay = RateReplay(per_ip=10, per_network=100, per_notice=1000, global_=1000)
    for i in range(20_000):
        # 10 ms apart over 2000 addresses: 100/s, each address once per 20 s.
        excess = replay.add(
            seq=i, at=i * 10_000_000, ip=f"10.{i % 2000 // 250}.{i % 250}.1", units=1
        )
        assert excess is None
    assert replay.tracked_keys < 2 * 4096 + 16


def test_replay_names_the_network_budget_when_addresses_share_a_slash_24() -> None:
    replay = RateReplay(per_ip=5, per_network=3, per_notice=100, global_=100)
    results = [replay.add(seq=i, at=i * 1_000_000, ip=f"192.0.2.{i}", units=1) for i in range(4)]
    assert results[:3] == [None, None, None]
    assert results[3] is not None and results[3].budget == "per_network"
    assert results[3].key == "192.0.2.0/24"


def test_replay_uses_slash_64_for_ipv6() -> None:
    replay = RateReplay(per_ip=5, per_network=1, per_notice=100, global_=100)
    assert replay.add(seq=0, at=0, ip="2001:db8::1", units=1) is None
    excess = replay.add(seq=1, at=1, ip="2001:db8::2", units=1)
    assert excess is not None and excess.key == "2001:db8::/64"
    assert replay.add(seq=2, at=2, ip="2001:db8:0:1::1", units=1) is None
