"""Rules for address handling at the gate: canonical literals only, special ranges, deny wins."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.gate import addresses
from orchestrator.gate.addresses import (
    SPECIAL_PURPOSE_RANGES,
    AddressScope,
    IPAddress,
    IPNetwork,
    ScopeVerdict,
    canonical_ip,
    normalise_host,
    parse_ip,
    parse_network,
    special_purpose,
)

# At least 1,000 examples per property; a CI profile asking for more is honoured.
PROPERTY = settings(max_examples=max(1000, settings().max_examples), deadline=None)


def net(text: str) -> IPNetwork:
    return parse_network(text)


def scope(includes: list[str], excludes: list[str] = []) -> AddressScope:  # noqa: B006
    return AddressScope.of([net(n) for n in includes], [net(n) for n in excludes])


# -- strategies ----------------------------------------------------------------------------------

octets = st.integers(min_value=0, max_value=255)
ipv4s = st.builds(IPv4Address, st.integers(min_value=0, max_value=2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(min_value=0, max_value=2**128 - 1))
# Addresses near the edges of special ranges, where mistakes live.
special_edges = st.sampled_from(SPECIAL_PURPOSE_RANGES).flatmap(
    lambda special: st.sampled_from(
        [special.network.network_address, special.network.broadcast_address]
    ).flatmap(
        lambda edge: st.integers(min_value=-2, max_value=2).map(
            lambda offset: ipaddress.ip_address(
                min(max(int(edge) + offset, 0), 2**edge.max_prefixlen - 1)
                if edge.version == 6
                else min(max(int(edge) + offset, 0), 2**32 - 1)
            )
        )
    )
)
any_ip: st.SearchStrategy[IPAddress] = st.one_of(ipv4s, ipv6s, special_edges)


def network_around(ip: IPAddress) -> st.SearchStrategy[IPNetwork]:
    """A network containing ``ip``, of any size."""
    return st.integers(min_value=0, max_value=ip.max_prefixlen).map(
        lambda prefix: ipaddress.ip_network((ip, prefix), strict=False)
    )


def random_network(ip_strategy: st.SearchStrategy[IPAddress]) -> st.SearchStrategy[IPNetwork]:
    return ip_strategy.flatmap(network_around)


@st.composite
def scope_and_address(draw: st.DrawFn) -> tuple[list[IPNetwork], list[IPNetwork], IPAddress]:
    ip = draw(any_ip)
    related = st.one_of(network_around(ip), random_network(any_ip))
    includes = draw(st.lists(related, max_size=6))
    excludes = draw(st.lists(related, max_size=3))
    return includes, excludes, ip


def reference_check(
    includes: list[IPNetwork], excludes: list[IPNetwork], ip: IPAddress
) -> tuple[bool, str]:
    """The rules, written the slow and obvious way."""
    mapped_space = IPv6Network("::ffff:0:0/96")
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # The mapped spelling of an IPv4 address; an IPv6 exclude covering it excludes the address.
    spellings: list[IPAddress] = [ip]
    if isinstance(ip, IPv4Address):
        spellings.append(IPv6Address(int(mapped_space.network_address) + int(ip)))
    if any(s.version == n.version and s in n for n in excludes for s in spellings):
        return False, "excluded"
    # An IPv6 include inside the mapped space names IPv4 addresses; a wider one does not.
    includes = [
        IPv4Network((int(n.network_address) - int(mapped_space.network_address), n.prefixlen - 96))
        if isinstance(n, IPv6Network) and n.subnet_of(mapped_space)
        else n
        for n in includes
    ]
    containing = [n for n in includes if n.version == ip.version and ip in n]
    if not containing:
        return False, "out-of-scope"
    specials = [
        s.network
        for s in SPECIAL_PURPOSE_RANGES
        if s.network.version == ip.version and ip in s.network
    ]
    if specials:
        innermost = max(specials, key=lambda n: n.prefixlen)
        if not any(n.subnet_of(innermost) for n in containing):  # type: ignore[arg-type]
            return False, "special-purpose"
    return True, "in-scope"


# -- parse_ip ------------------------------------------------------------------------------------


def test_canonical_ipv4_is_accepted() -> None:
    assert parse_ip("127.0.0.5") == IPv4Address("127.0.0.5")
    assert parse_ip("0.0.0.0") == IPv4Address("0.0.0.0")
    assert parse_ip("255.255.255.255") == IPv4Address("255.255.255.255")


def test_zone_id_is_refused() -> None:
    with pytest.raises(ValueError, match="zone id"):
        parse_ip("fe80::1%eth0")
    with pytest.raises(ValueError, match="zone id"):
        parse_ip("fe80::1%1")


def test_integer_ipv4_is_refused() -> None:
    with pytest.raises(ValueError, match="canonical IPv4"):
        parse_ip("167772161")
    with pytest.raises(ValueError, match="canonical IPv4"):
        parse_ip("2130706433")


def test_octal_ipv4_is_refused() -> None:
    with pytest.raises(ValueError, match="canonical IPv4"):
        parse_ip("010.0.0.1")
    with pytest.raises(ValueError, match="canonical IPv4"):
        parse_ip("0177.0.0.1")


def test_hex_ipv4_is_refused() -> None:
    with pytest.raises(ValueError, match="canonical IPv4"):
        parse_ip("0x7f.0.0.1")
    with pytest.raises(ValueError, match="canonical IPv4"):
        parse_ip("0x7f000001")


def test_short_ipv4_is_refused() -> None:
    for text in ("127.1", "127.0.1", "10.1"):
        with pytest.raises(ValueError, match="canonical IPv4"):
            parse_ip(text)


def test_non_ascii_digits_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_ip("١٢٧.0.0.1")  # Arabic-Indic digits, which int() would accept
    with pytest.raises(ValueError):
        parse_ip("\uff11\uff12\uff17.0.0.1")  # fullwidth digits


@pytest.mark.parametrize(
    "text", [" 127.0.0.1", "127.0.0.1 ", "127.0.0.1\n", "[::1]", "[127.0.0.1]", "::1]", ""]
)
def test_surrounding_spaces_and_brackets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ip(text)


@pytest.mark.parametrize("text", ["1.2.3.4.5", "256.0.0.1", "1.2.3.", ".1.2.3", "1..2.3", "::g"])
def test_malformed_literals_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ip(text)


def test_mapped_ipv6_is_unwrapped() -> None:
    assert parse_ip("::ffff:127.0.0.1") == IPv4Address("127.0.0.1")
    assert parse_ip("::FFFF:7f00:1") == IPv4Address("127.0.0.1")
    assert canonical_ip("0:0:0:0:0:ffff:a9fe:a9fe") == "169.254.169.254"


def test_mapped_ipv6_with_octal_ipv4_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_ip("::ffff:0177.0.0.1")


def test_ipv6_expanded_form_is_canonicalised() -> None:
    assert canonical_ip("2001:0DB8:0000:0000:0000:0000:0000:0001") == "2001:db8::1"
    assert canonical_ip("::1") == "::1"
    assert parse_ip("0:0:0:0:0:0:0:1") == IPv6Address("::1")


@PROPERTY
@given(st.tuples(octets, octets, octets, octets))
def test_canonical_ipv4_round_trips(quad: tuple[int, int, int, int]) -> None:
    text = ".".join(str(o) for o in quad)
    assert canonical_ip(text) == text


@st.composite
def non_canonical_ipv4(draw: st.DrawFn) -> str:
    """Spellings that inet_aton or a URL parser would read as an IPv4 address; none canonical."""
    quad = draw(st.tuples(octets, octets, octets, octets))
    value = int(IPv4Address(".".join(map(str, quad))))
    a, b, c, d = quad
    kind = draw(st.sampled_from(["octal", "hex", "integer", "short3", "short2", "hexint", "pad"]))
    if kind == "octal":
        position = draw(st.integers(min_value=0, max_value=3))
        parts = [str(o) for o in quad]
        parts[position] = "0" + format(quad[position], "o")
        return ".".join(parts)
    if kind == "hex":
        position = draw(st.integers(min_value=0, max_value=3))
        parts = [str(o) for o in quad]
        parts[position] = draw(st.sampled_from(["0x", "0X"])) + format(quad[position], "x")
        return ".".join(parts)
    if kind == "integer":
        return str(value)
    if kind == "hexint":
        return hex(value)
    if kind == "short3":
        return f"{a}.{b}.{(c << 8) | d}"
    if kind == "short2":
        return f"{a}.{(b << 16) | (c << 8) | d}"
    return draw(st.sampled_from([" ", "\t", "["])) + ".".join(map(str, quad))


@PROPERTY
@given(non_canonical_ipv4())
def test_every_non_canonical_ipv4_rendering_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ip(text)


@PROPERTY
@given(ipv6s)
def test_ipv6_exploded_and_compressed_parse_alike(ip: IPv6Address) -> None:
    expected: IPAddress = ip.ipv4_mapped if ip.ipv4_mapped is not None else ip
    assert parse_ip(ip.exploded) == expected
    assert parse_ip(ip.compressed.upper()) == expected
    assert canonical_ip(ip.exploded) == str(expected)


@PROPERTY
@given(ipv4s)
def test_mapped_literal_parses_as_its_ipv4(ip: IPv4Address) -> None:
    assert parse_ip(f"::ffff:{ip}") == ip


# -- parse_network -------------------------------------------------------------------------------


def test_prefix_33_is_not_a_network() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not a network"):
        parse_network("10.0.0.0/33")


def test_network_with_host_bits_is_refused() -> None:
    with pytest.raises(ValueError, match=r"host bits are set .*10\.0\.0\.0/8"):
        parse_network("10.0.0.1/8")


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.0/255.0.0.0",
        "10.0.0.0/0.255.255.255",
        "10.0.0.0/08",
        "10.0.0.0/",
        "10/8",
        "010.0.0.0/8",
        "fe80::%eth0/64",
        "2001:db8::/129",
        " 10.0.0.0/8",
        "10.0.0.0/ 8",
    ],
)
def test_non_canonical_networks_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a network"):
        parse_network(text)


def test_bare_address_is_a_one_host_network() -> None:
    assert parse_network("127.0.0.5") == IPv4Network("127.0.0.5/32")
    assert parse_network("::1") == IPv6Network("::1/128")


def test_mapped_network_becomes_ipv4() -> None:
    assert parse_network("::ffff:10.0.0.0/104") == IPv4Network("10.0.0.0/8")


@PROPERTY
@given(random_network(st.one_of(ipv4s, ipv6s)))
def test_network_text_round_trips(network: IPNetwork) -> None:
    parsed = parse_network(str(network))
    if isinstance(network, IPv6Network) and network.subnet_of(IPv6Network("::ffff:0:0/96")):
        assert parsed.version == 4
    else:
        assert parsed == network


# -- normalise_host ------------------------------------------------------------------------------


def test_host_is_lowercased_and_trailing_dot_removed() -> None:
    assert normalise_host("WWW.Demo.Test.") == "www.demo.test"


def test_idn_becomes_punycode() -> None:
    assert normalise_host("Bücher.example") == "xn--bcher-kva.example"
    assert normalise_host("例え.テスト") == "xn--r8jz45g.xn--zckzah"


@pytest.mark.parametrize(
    "name",
    [
        "127.0.0.1",
        "::1",
        "[::1]",
        "127.0.0.1.",
        "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11",  # fullwidth 127.0.0.1
        "fe80::1%eth0",
    ],
)
def test_ip_literal_is_not_a_host_name(name: str) -> None:
    with pytest.raises(ValueError):
        normalise_host(name)


@pytest.mark.parametrize("name", ["2130706433", "127.1", "0x7f000001", "foo.0x7f", "a.b.010"])
def test_numeric_last_label_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        normalise_host(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "a..b",
        "-a.test",
        "a-.test",
        "under_score.test",
        "sp ace.test",
        " a.test",
        "a.test..",
        "a/b.test",
        "user@a.test",
        "a" * 64 + ".test",
        ".".join(["a" * 63] * 4),
    ],  # 255 characters
)
def test_invalid_host_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        normalise_host(name)


def test_longest_valid_name_is_accepted() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    assert normalise_host(name + ".") == name


ldh_labels = st.from_regex(r"[a-zA-Z](?:[a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)


@PROPERTY
@given(st.lists(ldh_labels, min_size=1, max_size=5))
def test_normalise_host_is_idempotent_and_case_blind(labels: list[str]) -> None:
    name = ".".join(labels)
    once = normalise_host(name)
    assert normalise_host(once) == once
    assert normalise_host(name.upper() + ".") == once == name.lower()


# -- special_purpose -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this-network"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "limited-broadcast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "shared-address-space"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.1", "documentation"),
        ("203.0.113.1", "documentation"),
        ("198.19.255.255", "benchmarking"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("64:ff9b::7f00:1", "nat64"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "teredo"),
        ("2001:1::1", "ietf-protocol-assignments"),
        ("2002:7f00:1::", "6to4"),
    ],
)
def test_special_purpose_names_the_innermost_range(text: str, expected: str) -> None:
    assert special_purpose(ipaddress.ip_address(text)) == expected


@pytest.mark.parametrize(
    "text", ["10.0.0.1", "172.16.0.1", "192.168.1.1", "8.8.8.8", "2606:4700::1", "1.1.1.1"]
)
def test_private_and_public_addresses_are_ordinary(text: str) -> None:
    assert special_purpose(ipaddress.ip_address(text)) is None


def test_special_purpose_judges_mapped_address_as_ipv4() -> None:
    assert special_purpose(IPv6Address("::ffff:127.0.0.1")) == "loopback"


def test_every_special_range_cites_an_rfc() -> None:
    for special in SPECIAL_PURPOSE_RANGES:
        assert special.rfc.startswith("RFC "), special


# -- AddressScope --------------------------------------------------------------------------------


def test_loopback_allowed_when_scope_names_loopback() -> None:
    verdict = scope(["127.0.0.0/8"]).check("127.0.0.5")
    assert verdict == ScopeVerdict(
        allowed=True, reason="in-scope", sentence="127.0.0.5 is inside the scope."
    )
    assert verdict


def test_loopback_refused_under_wide_scope() -> None:
    verdict = scope(["0.0.0.0/0"]).check("127.0.0.1")
    assert not verdict
    assert verdict.reason == "special-purpose"
    assert "loopback" in verdict.sentence


def test_metadata_address_refused_under_wide_scope() -> None:
    wide = scope(["0.0.0.0/0", "::/0"])
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe"):
        verdict = wide.check(address)
        assert not verdict, address
        assert verdict.reason == "special-purpose"
        assert "169.254.0.0/16" in verdict.sentence


def test_metadata_address_allowed_only_when_named() -> None:
    assert scope(["169.254.169.254/32"]).check("169.254.169.254")
    assert not scope(["169.254.169.254/32"]).check("169.254.169.253")


def test_embedded_loopback_refused_under_wide_ipv6_scope() -> None:
    wide = scope(["::/0"])
    for address in ("64:ff9b::7f00:1", "2002:7f00:1::1", "2001::1", "fe80::1", "::1", "::"):
        assert wide.check(address).reason == "special-purpose", address


def test_mapped_loopback_needs_an_ipv4_scope() -> None:
    assert scope(["::/0"]).check("::ffff:127.0.0.1").reason == "out-of-scope"
    assert scope(["0.0.0.0/0"]).check("::ffff:127.0.0.1").reason == "special-purpose"
    assert scope(["127.0.0.0/8"]).check("::ffff:127.0.0.1")


def test_broadcast_refused_under_reserved_scope() -> None:
    verdict = scope(["240.0.0.0/4"]).check("255.255.255.255")
    assert verdict.reason == "special-purpose"
    assert scope(["240.0.0.0/4"]).check("240.0.0.1")


def test_unspecified_refused_under_this_network_scope() -> None:
    assert scope(["0.0.0.0/8"]).check("0.0.0.0").reason == "special-purpose"
    assert scope(["0.0.0.0/8"]).check("0.0.0.1")


def test_private_ranges_are_ordinary_in_scope() -> None:
    assert scope(["0.0.0.0/0"]).check("10.1.2.3")
    assert scope(["10.0.0.0/8"]).check("10.1.2.3")
    assert scope(["172.16.0.0/12"]).check("172.31.255.255")


def test_exclude_wins_over_specific_include() -> None:
    verdict = scope(["127.0.0.5/32"], ["127.0.0.0/8"]).check("127.0.0.5")
    assert verdict.reason == "excluded"
    assert not verdict


def test_mapped_exclude_excludes_the_ipv4_address() -> None:
    wide = AddressScope.of([IPv4Network("10.0.0.0/8")], [IPv6Network("::ffff:a00:0/104")])
    assert wide.check("10.1.1.1").reason == "excluded"


def test_ipv6_exclude_covering_all_mapped_space_excludes_ipv4() -> None:
    assert scope(["10.0.0.0/8"], ["::/0"]).check("10.1.1.1").reason == "excluded"


def test_address_outside_every_include_is_out_of_scope() -> None:
    verdict = scope(["10.0.0.0/8", "2001:db8::/32"]).check("11.0.0.0")
    assert verdict.reason == "out-of-scope"
    assert "11.0.0.0" in verdict.sentence


def test_ipv4_include_does_not_cover_ipv6() -> None:
    assert scope(["0.0.0.0/0"]).check("2606:4700::1").reason == "out-of-scope"


def test_adjacent_networks_are_merged_without_gaps() -> None:
    adjacent = scope(["10.0.0.0/25", "10.0.0.128/25"])
    assert adjacent.check("10.0.0.127")
    assert adjacent.check("10.0.0.128")
    assert not adjacent.check("10.0.1.0")


def test_scope_with_thousands_of_networks_answers_like_the_reference() -> None:
    includes: list[IPNetwork] = [IPv4Network((i << 12, 20)) for i in range(0, 8192, 2)]
    excludes: list[IPNetwork] = [IPv4Network(((i << 12) + 256, 24)) for i in range(0, 8192, 6)]
    big = AddressScope.of(includes, excludes)
    for i in range(0, 8192, 61):
        ip = IPv4Address((i << 12) + 300)
        assert (bool(big.check(ip)), big.check(ip).reason) == reference_check(
            includes, excludes, ip
        )


def test_scope_rejects_text_networks() -> None:
    with pytest.raises(TypeError):
        AddressScope.of(["10.0.0.0/8"])  # type: ignore[list-item]


def test_check_refuses_non_canonical_text() -> None:
    with pytest.raises(ValueError):
        scope(["0.0.0.0/0"]).check("127.1")


def test_scope_is_frozen_and_comparable() -> None:
    a = scope(["10.0.0.0/8"], ["10.1.0.0/16"])
    assert a == scope(["10.0.0.0/8"], ["10.1.0.0/16"])
    with pytest.raises(AttributeError):
        a.includes = ()  # type: ignore[misc]


@PROPERTY
@given(scope_and_address())
def test_check_agrees_with_reference(
    case: tuple[list[IPNetwork], list[IPNetwork], IPAddress],
) -> None:
    includes, excludes, ip = case
    verdict = AddressScope.of(includes, excludes).check(ip)
    assert (verdict.allowed, verdict.reason) == reference_check(includes, excludes, ip)
    assert bool(verdict) is verdict.allowed


@PROPERTY
@given(scope_and_address(), st.data())
def test_exclude_always_wins(
    case: tuple[list[IPNetwork], list[IPNetwork], IPAddress], data: st.DataObject
) -> None:
    includes, excludes, ip = case
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    exclude = data.draw(network_around(ip))
    verdict = AddressScope.of([*includes, exclude], [*excludes, exclude]).check(ip)
    assert verdict.reason == "excluded"
    assert not verdict


@PROPERTY
@given(
    st.lists(random_network(st.one_of(ipv4s, special_edges)), max_size=5),
    st.lists(random_network(ipv4s), max_size=3),
    ipv4s,
)
def test_mapped_addresses_check_as_their_ipv4(
    includes: list[IPNetwork], excludes: list[IPNetwork], ip: IPv4Address
) -> None:
    checked = AddressScope.of(includes, excludes)
    mapped = IPv6Address(f"::ffff:{ip}")
    assert checked.check(mapped) == checked.check(ip)


def test_public_surface_is_what_we_mean_to_export() -> None:
    assert sorted(addresses.__all__) == sorted(
        [
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
    )


# -- the integer fast path of special-range lookup -------------------------------------------------

_EDGES = [
    type(r.network.network_address)(v)
    for r in SPECIAL_PURPOSE_RANGES
    for v in (
        int(r.network.network_address) - 1,
        int(r.network.network_address),
        int(r.network.broadcast_address),
        int(r.network.broadcast_address) + 1,
    )
    if 0 <= v < 2**r.network.max_prefixlen
]


def _by_containment(ip: IPAddress) -> str | None:
    for special in sorted(SPECIAL_PURPOSE_RANGES, key=lambda r: -r.network.prefixlen):
        if ip.version == special.network.version and ip in special.network:
            return special.name
    return None


@PROPERTY
@given(
    st.one_of(
        st.sampled_from(_EDGES),
        st.integers(0, 2**32 - 1).map(IPv4Address),
        st.integers(0, 2**128 - 1).map(IPv6Address),
    )
)
def test_special_range_lookup_agrees_with_network_containment(ip: IPAddress) -> None:
    assert special_purpose(ip) == _by_containment(addresses._unwrap(ip))
