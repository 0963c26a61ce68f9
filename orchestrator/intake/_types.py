"""Field types shared by the scope and policy formats: durations, addresses, names, timezones."""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, ConfigDict

__all__ = [
    "MAX_DURATION",
    "STRICT",
    "Duration",
    "IPLiteral",
    "NetworkLiteral",
    "Slug",
    "TimezoneName",
    "format_duration",
    "parse_duration",
    "strict_ip",
    "strict_network",
]

STRICT = ConfigDict(extra="forbid", frozen=True, strict=False, str_strip_whitespace=False)

MAX_DURATION = timedelta(days=3660)
"""Ten years: longer than any lead time, timeout or period, short of datetime overflow."""
_DURATION = re.compile(r"^(\d+)\s*(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """``"72h"``, ``"15m"``, ``"30s"``, ``"2d"``, ``"500ms"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration like '72h', '15m' or '30s' is expected")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("a duration like '72h', '15m' or '30s' is expected")
    if not math.isfinite(seconds):
        raise ValueError("a duration is a finite number")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration of at most {MAX_DURATION.days} days is expected")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The duration as a policy file writes it (``"3d"``, ``"90m"``, ``"500ms"``), never
    ``3 days, 0:00:00``: the largest unit that states it exactly, so it parses back the same.
    Sub-millisecond parts (which no file can write) are rounded to the millisecond."""
    millis = round(value.total_seconds() * 1000)
    for unit in ("d", "h", "m", "s"):
        size = round(_UNITS[unit] * 1000)
        if millis % size == 0 and millis:
            return f"{millis // size}{unit}"
    return f"{millis}ms" if millis else "0s"


def strict_ip(value: Any) -> str:
    """Accept only a canonical IP literal; return its canonical text.

    ``010.0.0.1``, ``167772161``, ``0x7f.0.0.1`` and zone ids are refused: an announced scope
    must mean exactly one thing to the object, the vendor and the auditor.
    """
    if not isinstance(value, str):
        raise ValueError("an IP address literal (text) is expected")
    if "%" in value:
        raise ValueError("zone ids are not allowed in an IP address")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IP address") from None
    if isinstance(ip, ipaddress.IPv4Address) and str(ip) != value:
        raise ValueError(f"is not in canonical form (write {ip})")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def strict_network(value: Any) -> str:
    """Accept only a network in CIDR form with no host bits set; return its canonical text."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError("a network in CIDR form (e.g. 192.0.2.0/24) is expected")
    address, _, prefix = value.partition("/")
    strict_ip(address)
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("is not a network") from None
    if not prefix.isdigit():
        raise ValueError("is not a network")
    if str(net.network_address) != str(ipaddress.ip_address(address)):
        raise ValueError(f"has host bits set (the network is {net})")
    return str(net)


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a timezone name such as 'Asia/Shanghai' is expected")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a known timezone") from None
    return value


_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise ValueError("an id of lowercase letters, digits, '.', '_' or '-' is expected")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
IPLiteral = Annotated[str, BeforeValidator(strict_ip)]
NetworkLiteral = Annotated[str, BeforeValidator(strict_network)]
TimezoneName = Annotated[str, BeforeValidator(_timezone)]
Slug = Annotated[str, BeforeValidator(_slug)]
