"""Property: a Permit implies every pinned address is inside scope minus excludes and the time
is inside every window (announced and policy), with the deadline before both close."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from orchestrator.clock import FakeClock
from orchestrator.gate.decide import ProbeRequest, Refusal
from probes.base import Permit
from tests.conftest import IN_CI
from tests.gate.conftest import T0, announced, make_gate, make_notice, policy_yaml, scope_yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network:
    prefix = draw(st.integers(min_value=20, max_value=30))
    base = draw(st.integers(min_value=0, max_value=(1 << 24) - 1))
    addr = ipaddress.IPv4Address((127 << 24) | base)
    return ipaddress.ip_network(f"{addr}/{prefix}", strict=False)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    includes = draw(st.lists(networks(), min_size=1, max_size=3))
    excludes = draw(st.lists(networks(), max_size=2))
    pick = draw(st.integers(min_value=0, max_value=3))
    near = (
        draw(st.sampled_from(includes))
        if pick >= 2
        else (draw(st.sampled_from(includes + excludes)) if pick == 1 else None)
    )
    if near is not None:
        offset = draw(st.integers(min_value=0, max_value=near.num_addresses - 1))
        ip = ipaddress.IPv4Address(int(near.network_address) + offset)
    else:
        ip = ipaddress.IPv4Address(
            (127 << 24) | draw(st.integers(min_value=0, max_value=(1 << 24) - 1))
        )
    start_h = draw(st.integers(min_value=-30, max_value=10))
    length_h = draw(st.integers(min_value=1, max_value=40))
    wide = draw(st.booleans())
    days = (
        DAYS if wide else draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True))
    )
    p_start = 0 if wide else draw(st.integers(min_value=0, max_value=22))
    p_end = 24 if wide else draw(st.integers(min_value=p_start + 1, max_value=24))
    if draw(st.integers(min_value=0, max_value=3)):
        # Mostly inside the announced window, so that permits are common and the property bites.
        now_offset = start_h * 3600 + draw(st.integers(min_value=0, max_value=length_h * 3600 - 1))
    else:
        now_offset = draw(st.integers(min_value=-3 * 86400, max_value=3 * 86400))
    return {
        "includes": includes,
        "excludes": excludes,
        "ip": ip,
        "start_h": start_h,
        "length_h": length_h,
        "days": days,
        "p_start": p_start,
        "p_end": p_end,
        "now_offset": now_offset,
    }


def _naive_in_scope(
    ip: ipaddress.IPv4Address, inc: list[ipaddress.IPv4Network], exc: list[ipaddress.IPv4Network]
) -> bool:
    return any(ip in n for n in inc) and not any(ip in n for n in exc)


@settings(max_examples=10_000 if IN_CI else 300, deadline=None)
@given(cases())
def test_permit_implies_address_in_scope_and_time_in_every_window(case: dict[str, object]) -> None:
    includes = case["includes"]
    excludes = case["excludes"]
    assert isinstance(includes, list) and isinstance(excludes, list)
    local_t0 = T0.astimezone(SHANGHAI).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    w_start = local_t0 + timedelta(hours=int(case["start_h"]))  # type: ignore[call-overload]
    w_end = w_start + timedelta(hours=int(case["length_h"]))  # type: ignore[call-overload]
    targets = "[" + ", ".join(f"{{cidr: {n}}}" for n in includes) + "]"
    excl = "[" + ", ".join(f"{{cidr: {n}}}" for n in excludes) + "]"
    end = "24:00" if case["p_end"] == 24 else f"{case['p_end']:02d}:00"
    windows = (
        f'[{{days: [{", ".join(case["days"])}], start: "{case["p_start"]:02d}:00", end: "{end}"}}]'  # type: ignore[arg-type]
    )
    scope = scope_yaml(targets, excludes=excl, start=w_start.isoformat(), end=w_end.isoformat())
    notice = make_notice(scope, policy_yaml(lead="1h", windows=windows), announced_at=announced(48))
    now = local_t0.replace(tzinfo=SHANGHAI) + timedelta(seconds=int(case["now_offset"]))  # type: ignore[call-overload]
    gate = make_gate(notice, clock=FakeClock(now))
    ip = case["ip"]
    assert isinstance(ip, ipaddress.IPv4Address)
    request = ProbeRequest(item=0, probe="port", target="t", ip=str(ip), ports=(80,))
    decision = asyncio.run(gate.decide(request))
    if isinstance(decision, Refusal):
        event(f"refused: {decision.check}")
        return
    event("permit")
    assert isinstance(decision, Permit)
    assert _naive_in_scope(ipaddress.IPv4Address(decision.ip), includes, excludes)
    local = now.astimezone(SHANGHAI)
    ann_start = w_start.replace(tzinfo=SHANGHAI)
    ann_end = w_end.replace(tzinfo=SHANGHAI)
    assert ann_start <= now < ann_end
    assert decision.deadline <= ann_end
    assert DAYS[local.weekday()] in case["days"]  # type: ignore[operator]
    assert case["p_start"] <= local.hour < case["p_end"]  # type: ignore[operator]
    policy_end = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        hours=int(case["p_end"])
    )  # type: ignore[call-overload]
    assert decision.deadline <= policy_end
    assert now - notice.announced_at >= timedelta(hours=1)
