"""A real run against a loopback farm: it completes, its log verifies, it kept time and rates."""

from __future__ import annotations

import ipaddress
from collections import defaultdict, deque
from datetime import datetime, timedelta

from orchestrator.demo.farm import Farm
from orchestrator.intake.notices import Notice
from orchestrator.ledger.leaves import Leaf, format_instant, make_leaf, parse_instant, parse_leaf
from orchestrator.ledger.verify import verify_run
from orchestrator.run.runs import get_run
from orchestrator.run.state import RunState

from .conftest import (
    Home,
    announce_notice,
    around,
    leaves_of,
    make_runner,
    new_run,
    now_utc,
    policy_bytes,
    scope_bytes,
)

_SECOND_US = 1_000_000


def _micros(when: datetime) -> int:
    return int(when.timestamp()) * _SECOND_US + when.microsecond


def _sends(leaves: list[Leaf]) -> list[tuple[int, int, str, int]]:
    """Every send as (microseconds, seq, ip, units): outcome ``sent_at`` (+ traced ``sends_us``)."""
    intents = {leaf.seq: leaf for leaf in leaves if leaf.kind == "intent"}
    out = []
    for leaf in leaves:
        if leaf.kind != "outcome" or not leaf.data.get("sent_at"):
            continue
        intent = intents[int(leaf.data["intent"])]
        at = _micros(parse_instant(str(leaf.data["sent_at"])))
        ip = str(intent.data["ip"])
        traced = leaf.data.get("sends_us")
        if traced:
            out += [(at + int(us), intent.seq, ip, 1) for us in traced]
        else:
            out.append((at, intent.seq, ip, int(intent.data["cost"])))
    return out


def _rate_excesses(leaves: list[Leaf], notice: Notice) -> list[str]:
    """Replay every send's (time, ip, units) over one-second sliding windows (s - 1 s, s]."""
    rates = notice.policy.rates
    limits = {
        "per_ip": rates.per_ip,
        "per_network": rates.per_network,
        "per_notice": rates.per_notice,
        "global": rates.global_,
    }
    windows: dict[tuple[str, str], deque[tuple[int, int]]] = defaultdict(deque)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    found: list[str] = []
    for at, seq, ip, cost in sorted(_sends(leaves)):
        net = str(ipaddress.ip_network(f"{ip}/{rates.network_prefix_v4}", strict=False))
        for budget, key in (
            ("per_ip", ip),
            ("per_network", net),
            ("per_notice", notice.id),
            ("global", "*"),
        ):
            window = windows[(budget, key)]
            while window and window[0][0] <= at - _SECOND_US:
                totals[(budget, key)] -= window.popleft()[1]
            window.append((at, cost))
            totals[(budget, key)] += cost
            if totals[(budget, key)] > limits[budget]:
                found.append(f"leaf {seq}: {totals[(budget, key)]} units in 1 s on {budget} {key}")
    return found


async def test_run_against_thirty_loopback_targets_completes_inside_windows_and_rates(
    home: Home, farm: Farm
) -> None:
    now = now_utc()
    window = around(now)
    # Low rates so that the budgets, not the targets, set the pace: the replay below is tested.
    policy = policy_bytes(farm, rates=(4, 60, 60, 80), port_probe=True, https=True)
    notice = announce_notice(
        home, scope_bytes(farm.spec.network, [window]), policy, at=now - timedelta(minutes=1)
    )
    run_id = new_run(home, notice)

    state = await make_runner(home, run_id).execute()

    assert state is RunState.SEALED
    with home.rio.db.session() as s:
        assert get_run(s, run_id).state == RunState.SEALED.value
    verdict = verify_run(home.rio, run_id)
    assert verdict, verdict.problems
    leaves = leaves_of(home.rio, run_id)
    intents = [leaf for leaf in leaves if leaf.kind == "intent"]
    assert len(intents) == 30 * 4  # port sweep, http, https and tls on every target
    assert not [leaf for leaf in leaves if leaf.kind == "refusal"]
    for leaf in intents:
        at = leaf.instant
        assert notice.scope.window_at(at) is not None, f"leaf {leaf.seq} outside announced window"
        assert notice.policy.window_at(at) is not None, f"leaf {leaf.seq} outside policy window"
        assert datetime.fromisoformat(leaf.data["deadline"]) <= window[1]
    assert _rate_excesses(leaves, notice) == []
    counters = farm.counters()
    assert all(counters[ip]["http_requests"] >= 1 for ip in farm.targets)
    assert all(counters[ip]["https_requests"] >= 1 for ip in farm.targets)


async def test_excluded_address_never_gets_an_intent_nor_a_packet(home: Home, farm: Farm) -> None:
    now = now_utc()
    excluded = farm.targets[6]
    scope = scope_bytes(farm.spec.network, [around(now)], excludes=[excluded])
    notice = announce_notice(home, scope, policy_bytes(farm), at=now - timedelta(minutes=1))
    run_id = new_run(home, notice)

    state = await make_runner(home, run_id).execute()

    assert state is RunState.SEALED
    leaves = leaves_of(home.rio, run_id)
    intents = [leaf for leaf in leaves if leaf.kind == "intent"]
    assert len(intents) == 29
    assert excluded not in {leaf.data["ip"] for leaf in intents}
    assert not [leaf for leaf in leaves if excluded in str(leaf.data)]
    counters = farm.counters()
    assert sum(counters[excluded].values()) == 0
    assert all(counters[ip]["http_requests"] == 1 for ip in farm.targets if ip != excluded)
    assert verify_run(home.rio, run_id)


def test_rate_replay_catches_an_excess() -> None:
    """The replay above can fail: two intents of cost 3 on one IP within a second exceed 4/s."""

    class _Rates:
        per_ip, per_network, per_notice, global_, network_prefix_v4 = 4, 60, 60, 80, 24

    class _Policy:
        rates = _Rates()

    class _Notice:
        id = "N-1"
        policy = _Policy()

    t = now_utc()

    def sent(gap: float) -> list[Leaf]:
        out = []
        for n in range(2):
            at = t + timedelta(seconds=gap * n)
            intent = {"ip": "127.9.9.9", "cost": 3}
            out.append(parse_leaf(make_leaf("R-1", 2 * n, "intent", t, intent)))
            outcome = {"intent": 2 * n, "outcome": "ok", "sent_at": format_instant(at)}
            out.append(parse_leaf(make_leaf("R-1", 2 * n + 1, "outcome", at, outcome)))
        return out

    assert _rate_excesses(sent(0.5), _Notice()) != []  # type: ignore[arg-type]
    spaced = sent(1.0)
    assert _rate_excesses(spaced, _Notice()) == []  # type: ignore[arg-type]
