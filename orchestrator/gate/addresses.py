"""Strict address handling for the gate: canonical literals, host names, special ranges, scopes.

The gate says yes only to an address it has understood exactly as the scope's author wrote it.
So parsing is strict: the many spellings that socket libraries accept for one IPv4 address
(``010.0.0.1`` octal, ``0x7f.0.0.1`` hex, ``167772161`` integer, ``127.1`` short) are refused
rather than guessed at, because two components guessing differently is how a probe reaches an
address nobody announced. IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are unwrapped to the
IPv4 address they carry, so the IPv4 rules apply to them.

Special-purpose addresses (loopback, link-local with the cloud metadata service, documentation,
multicast...) are refused even under a scope that covers them by accident (``0.0.0.0/0``); they
are allowed only when the scope names a network lying inside the special range itself.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from orchestrator.intake.hostnames import normalise_host

__all__ = [
    "SPECIAL_PURPOSE_RANGES",
    "AddressScope",
    "IPAddress",
    "IPNetwork",
    "ScopeReason",
    "ScopeVerdict",
    "SpecialRange",
    "canonical_ip",
    "normalise_host",
    "parse_ip",
    "parse_network",
    "special_purpose",
    "special_purpose_range",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
ScopeReason = Literal["in-scope", "excluded", "out-of-scope", "special-purpose"]

# One octet in canonical dotted-quad form: 0-255 in decimal, no leading zero, ASCII digits only.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_PREFIX_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}")
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address carries, else ``ip`` itself."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_ip(text: str) -> IPAddress:
    """Parse an IP address literal written in its canonical form.

    Args:
        text: a dotted-quad IPv4 literal (decimal, no leading zeros) or an IPv6 literal
            (compressed or expanded, any case), without brackets, zone id or spaces.

    Returns:
        The address; an IPv4-mapped IPv6 address is returned as the IPv4 address it carries.

    Raises:
        ValueError: the text is not a canonical IP literal; the message says why.
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IP address: a string is expected")
    if text != text.strip():
        raise ValueError(f"{text!r} is not an IP address: remove the surrounding spaces")
    if not text:
        raise ValueError("'' is not an IP address: it is empty")
    if text.startswith("[") or text.endswith("]"):
        raise ValueError(f"{text!r} is not an IP address: write it without brackets")
    if "%" in text:
        raise ValueError(
            f"{text!r} is not an IP address: zone ids (%...) are refused, they name an "
            "interface of this machine, not a target"
        )
    if ":" in text:
        if not _IPV6_CHARS.fullmatch(text):
            raise ValueError(f"{text!r} is not an IPv6 address: unexpected characters")
        try:
            ipv6 = IPv6Address(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IPv6 address: {exc}") from exc
        return _unwrap(ipv6)
    if not _CANONICAL_IPV4.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a canonical IPv4 address: write four decimal octets 0-255 "
            "without leading zeros (octal, hex, integer and short forms are refused)"
        )
    return IPv4Address(text)


def canonical_ip(text: str) -> str:
    """The canonical literal of an IP address (mapped IPv6 unwrapped to IPv4).

    Raises:
        ValueError: the text is not a canonical IP literal (see :func:`parse_ip`).
    """
    return str(parse_ip(text))


def parse_network(text: str) -> IPNetwork:
    """Parse a network written ``address/prefix-length``; a bare address is a one-host network.

    Args:
        text: e.g. ``10.0.0.0/8``, ``2001:db8::/32``, ``127.0.0.5``. The address part follows
            :func:`parse_ip`; netmask forms (``/255.0.0.0``) are refused.

    Returns:
        The network; an IPv4-mapped IPv6 network (``::ffff:10.0.0.0/104``) as its IPv4 network.

    Raises:
        ValueError: ``'<text>' is not a network: <why>`` (bad address, prefix, host bits set).
    """
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a network: a string is expected")
    address_text, slash, prefix_text = text.partition("/")
    try:
        # Parse the address without unwrapping, so the prefix length applies to what was written.
        ip: IPAddress = parse_ip(address_text)
        if ":" in address_text:
            ip = IPv6Address(address_text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a network: {exc}") from exc
    prefix: int
    if not slash:
        prefix = ip.max_prefixlen
    elif not _PREFIX_LENGTH.fullmatch(prefix_text) or int(prefix_text) > ip.max_prefixlen:
        raise ValueError(
            f"{text!r} is not a network: the prefix length must be a decimal number "
            f"0-{ip.max_prefixlen}"
        )
    else:
        prefix = int(prefix_text)
    network_class = IPv4Network if isinstance(ip, IPv4Address) else IPv6Network
    try:
        network: IPNetwork = network_class((ip, prefix), strict=True)
    except ValueError as exc:
        loose = network_class((ip, prefix), strict=False)
        raise ValueError(
            f"{text!r} is not a network: host bits are set (did you mean {loose}?)"
        ) from exc
    return _unwrap_network(network)


def _unwrap_network(network: IPNetwork) -> IPNetwork:
    """An IPv6 network inside ::ffff:0:0/96 as the IPv4 network it maps, else unchanged."""
    if isinstance(network, IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        base = int(network.network_address) & 0xFFFF_FFFF
        return IPv4Network((base, network.prefixlen - 96))
    return network


@dataclass(frozen=True, kw_only=True, slots=True)
class SpecialRange:
    """One entry of the IANA special-purpose address registries."""

    network: IPNetwork
    name: str
    rfc: str


def _special(network: str, name: str, rfc: str) -> SpecialRange:
    return SpecialRange(network=ipaddress.ip_network(network), name=name, rfc=rfc)


# From the IANA IPv4 and IPv6 Special-Purpose Address Registries (plus multicast, reserved and
# deprecated space). Private ranges (10/8, 172.16/12, 192.168/16) are deliberately absent: ISPs
# are inspected on private ranges when their scope says so, like any other network.
SPECIAL_PURPOSE_RANGES: tuple[SpecialRange, ...] = (
    _special("0.0.0.0/8", "this-network", "RFC 791"),
    _special("0.0.0.0/32", "unspecified", "RFC 1122"),
    _special("100.64.0.0/10", "shared-address-space", "RFC 6598"),
    _special("127.0.0.0/8", "loopback", "RFC 1122"),
    _special("169.254.0.0/16", "link-local", "RFC 3927"),  # holds 169.254.169.254, metadata
    _special("192.0.0.0/24", "ietf-protocol-assignments", "RFC 6890"),
    _special("192.0.2.0/24", "documentation", "RFC 5737"),
    _special("192.88.99.0/24", "6to4-relay-anycast", "RFC 7526"),
    _special("198.18.0.0/15", "benchmarking", "RFC 2544"),
    _special("198.51.100.0/24", "documentation", "RFC 5737"),
    _special("203.0.113.0/24", "documentation", "RFC 5737"),
    _special("224.0.0.0/4", "multicast", "RFC 5771"),
    _special("240.0.0.0/4", "reserved", "RFC 1112"),
    _special("255.255.255.255/32", "limited-broadcast", "RFC 919"),
    _special("::/128", "unspecified", "RFC 4291"),
    _special("::1/128", "loopback", "RFC 4291"),
    _special("::/96", "ipv4-compatible", "RFC 4291"),
    _special("::ffff:0:0/96", "ipv4-mapped", "RFC 4291"),
    _special("64:ff9b::/96", "nat64", "RFC 6052"),
    _special("64:ff9b:1::/48", "nat64-local-use", "RFC 8215"),
    _special("100::/64", "discard-only", "RFC 6666"),
    _special("2001::/23", "ietf-protocol-assignments", "RFC 2928"),
    _special("2001::/32", "teredo", "RFC 4380"),
    _special("2001:2::/48", "benchmarking", "RFC 5180"),
    _special("2001:10::/28", "orchid", "RFC 4843"),
    _special("2001:20::/28", "orchid-v2", "RFC 7343"),
    _special("2001:db8::/32", "documentation", "RFC 3849"),
    _special("2002::/16", "6to4", "RFC 3056"),
    _special("3fff::/20", "documentation", "RFC 9637"),
    _special("5f00::/16", "srv6-sids", "RFC 9602"),
    _special("fc00::/7", "unique-local", "RFC 4193"),
    _special("fe80::/10", "link-local", "RFC 4291"),
    _special("fec0::/10", "site-local-deprecated", "RFC 3879"),
    _special("ff00::/8", "multicast", "RFC 4291"),
)

# Most specific first, so the first match is the innermost range (CIDR blocks nest or are
# disjoint, so every range containing an address lies on one chain).
_SPECIAL_BY_SPECIFICITY = tuple(
    sorted(SPECIAL_PURPOSE_RANGES, key=lambda r: r.network.prefixlen, reverse=True)
)


# Per IP version, (network as int, netmask as int, position, range) in specificity order:
# integer tests instead of ipaddress containment, which was most of a scope check's time.
_SPECIAL_INTS: dict[int, tuple[tuple[int, int, int, SpecialRange], ...]] = {
    version: tuple(
        (int(special.network.network_address), int(special.network.netmask), position, special)
        for position, special in enumerate(_SPECIAL_BY_SPECIFICITY)
        if special.network.version == version
    )
    for version in (4, 6)
}


def _innermost_special(ip: IPAddress) -> tuple[int, SpecialRange] | None:
    """Position in ``_SPECIAL_BY_SPECIFICITY`` and range of the innermost match, or None."""
    value = int(ip)
    for network, mask, position, special in _SPECIAL_INTS[ip.version]:
        if value & mask == network:
            return position, special
    return None


def special_purpose_range(ip: IPAddress) -> SpecialRange | None:
    """The innermost special-purpose range containing ``ip`` (mapped IPv6 unwrapped), or None."""
    found = _innermost_special(_unwrap(ip))
    return None if found is None else found[1]


def special_purpose(ip: IPAddress) -> str | None:
    """The name of the innermost special-purpose range containing ``ip``, or None.

    Args:
        ip: the address; an IPv4-mapped IPv6 address is judged as its IPv4 address.

    Returns:
        e.g. ``"loopback"``, ``"link-local"``, ``"documentation"``; None for ordinary
        addresses, private ranges included.
    """
    special = special_purpose_range(ip)
    return None if special is None else special.name


@dataclass(frozen=True, kw_only=True, slots=True)
class ScopeVerdict:
    """Whether an address lies inside a scope, and why; true when allowed."""

    allowed: bool
    reason: ScopeReason
    sentence: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, kw_only=True, slots=True)
class _Intervals:
    """Disjoint, sorted integer intervals of one IP version, searched by bisection."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def of(cls, networks: Iterable[IPNetwork]) -> _Intervals:
        spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in networks)
        starts: list[int] = []
        ends: list[int] = []
        for start, end in spans:
            if ends and start <= ends[-1] + 1:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        return cls(starts=tuple(starts), ends=tuple(ends))

    def __contains__(self, value: int) -> bool:
        index = bisect.bisect_right(self.starts, value) - 1
        return index >= 0 and value <= self.ends[index]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Index:
    """Everything :meth:`AddressScope.check` needs for one IP version."""

    includes: _Intervals
    excludes: _Intervals
    # For each special range (by position in _SPECIAL_BY_SPECIFICITY): the includes inside it.
    special_includes: tuple[_Intervals, ...]


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    if isinstance(inner, IPv4Network) and isinstance(outer, IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, IPv6Network) and isinstance(outer, IPv6Network):
        return inner.subnet_of(outer)
    return False


def _build_index(
    version: int, includes: tuple[IPNetwork, ...], excludes: tuple[IPNetwork, ...]
) -> _Index:
    mine = [n for n in includes if n.version == version]
    special_includes = tuple(
        _Intervals.of(n for n in mine if _inside(n, special.network))
        for special in _SPECIAL_BY_SPECIFICITY
    )
    return _Index(
        includes=_Intervals.of(mine),
        excludes=_Intervals.of(n for n in excludes if n.version == version),
        special_includes=special_includes,
    )


def _normalise_networks(networks: Iterable[IPNetwork], *, role: str) -> tuple[IPNetwork, ...]:
    result: list[IPNetwork] = []
    for network in networks:
        if not isinstance(network, IPv4Network | IPv6Network):
            raise TypeError(f"scope {role} {network!r} is not an IPv4Network or IPv6Network")
        result.append(_unwrap_network(network))
        # An IPv6 exclude covering all of ::ffff:0:0/96 also covers every IPv4 address that
        # could be written mapped; deny wins, so exclude IPv4 entirely.
        if (
            role == "exclude"
            and isinstance(network, IPv6Network)
            and _IPV4_MAPPED.subnet_of(network)
        ):
            result.append(IPv4Network("0.0.0.0/0"))
    return tuple(sorted(set(result), key=lambda n: (n.version, n.network_address, n.prefixlen)))


@dataclass(frozen=True, kw_only=True, slots=True)
class AddressScope:
    """The address part of an announced scope: include networks minus exclude networks.

    Build with :meth:`of`. :meth:`check` costs a bisection per lookup, whatever the number of
    networks. Rules, in order:

    1. an address inside any exclude is refused (``excluded``): deny wins;
    2. an address outside every include is refused (``out-of-scope``);
    3. an address in a special-purpose range is refused (``special-purpose``) unless an include
       containing it lies inside that (innermost) special range, so a scope naming
       ``127.0.0.0/8`` allows ``127.0.0.5`` but ``0.0.0.0/0`` allows neither ``127.0.0.1`` nor
       ``169.254.169.254``;
    4. otherwise it is allowed (``in-scope``).

    IPv4-mapped IPv6 addresses and networks are judged as their IPv4 counterparts.
    """

    includes: tuple[IPNetwork, ...]
    excludes: tuple[IPNetwork, ...]
    _v4: _Index = field(init=False, repr=False, compare=False)
    _v6: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        includes = _normalise_networks(self.includes, role="include")
        excludes = _normalise_networks(self.excludes, role="exclude")
        object.__setattr__(self, "includes", includes)
        object.__setattr__(self, "excludes", excludes)
        object.__setattr__(self, "_v4", _build_index(4, includes, excludes))
        object.__setattr__(self, "_v6", _build_index(6, includes, excludes))

    @classmethod
    def of(cls, includes: Iterable[IPNetwork], excludes: Iterable[IPNetwork] = ()) -> AddressScope:
        """Build a scope from include and exclude networks.

        Raises:
            TypeError: an element is not an ``IPv4Network``/``IPv6Network`` (parse text first
                with :func:`parse_network`).
        """
        return cls(includes=tuple(includes), excludes=tuple(excludes))

    def check(self, ip: IPAddress | str) -> ScopeVerdict:
        """Judge one address against the scope.

        Args:
            ip: an address object, or a canonical literal (parsed with :func:`parse_ip`).

        Returns:
            A verdict, true only when the address is allowed; ``reason`` is one of
            ``in-scope``, ``excluded``, ``out-of-scope``, ``special-purpose``.

        Raises:
            ValueError: ``ip`` is a string that is not a canonical IP literal.
        """
        address = _unwrap(parse_ip(ip) if isinstance(ip, str) else ip)
        index = self._v4 if address.version == 4 else self._v6
        value = int(address)
        if value in index.excludes:
            return ScopeVerdict(
                allowed=False, reason="excluded", sentence=f"{address} is excluded by the scope."
            )
        if value not in index.includes:
            return ScopeVerdict(
                allowed=False,
                reason="out-of-scope",
                sentence=f"{address} is outside every network of the scope.",
            )
        found = _innermost_special(address)
        if found is not None:
            position, special = found
            if value not in index.special_includes[position]:
                return ScopeVerdict(
                    allowed=False,
                    reason="special-purpose",
                    sentence=(
                        f"{address} is a special-purpose address ({special.name}, "
                        f"{special.network}, {special.rfc}); the scope must name a network "
                        f"inside {special.network} to allow it."
                    ),
                )
        return ScopeVerdict(
            allowed=True, reason="in-scope", sentence=f"{address} is inside the scope."
        )
