"""Rules for resolving once and pinning, against the stub DNS server on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import dns.resolver
import pytest

from orchestrator.errors import InputError, ResolutionError
from orchestrator.gate import resolve as resolve_module
from orchestrator.gate.addresses import AddressScope, parse_network
from orchestrator.gate.resolve import Resolution, Resolver
from tests.support.dns_server import StubDNSServer

RECORDS: dict[str, list[tuple[str, str]]] = {
    "multi.demo.test": [
        ("A", "127.0.0.7"),
        ("A", "127.0.0.5"),
        ("A", "127.0.0.10"),
        ("AAAA", "::1"),
    ],
    "www.demo.test": [("CNAME", "edge.demo.test.")],
    "edge.demo.test": [("CNAME", "origin.demo.test.")],
    "origin.demo.test": [("A", "127.0.0.20")],
    "mapped.demo.test": [("AAAA", "::ffff:127.0.0.30")],
    "mail-only.demo.test": [("MX", "10 mail.demo.test.")],
    "dangling.demo.test": [("CNAME", "gone.demo.test.")],
}
FIXED = datetime(2026, 11, 30, 2, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[StubDNSServer]:
    with StubDNSServer(RECORDS, authoritative_zones=("demo.test",)) as stub:
        yield stub
    assert stub.errors == []


@pytest.fixture
def resolver(server: StubDNSServer) -> Resolver:
    return Resolver(["127.0.0.1"], port=server.port, timeout=2.0, clock=lambda: FIXED)


async def test_all_answers_are_returned_in_canonical_order(resolver: Resolver) -> None:
    resolution = await resolver.resolve("multi.demo.test")
    assert resolution.addresses == ("127.0.0.5", "127.0.0.7", "127.0.0.10", "::1")
    assert resolution.cname_chain == ()
    assert resolution.nameserver == "127.0.0.1"
    assert resolution.answered_at == FIXED


async def test_cname_chain_is_kept(resolver: Resolver) -> None:
    resolution = await resolver.resolve("www.demo.test")
    assert resolution.cname_chain == ("edge.demo.test", "origin.demo.test")
    assert resolution.addresses == ("127.0.0.20",)


async def test_name_is_normalised_before_asking(resolver: Resolver, server: StubDNSServer) -> None:
    resolution = await resolver.resolve("MULTI.Demo.Test.")
    assert resolution.name == "multi.demo.test"
    assert ("multi.demo.test", "A") in server.queries


async def test_both_address_types_are_asked(resolver: Resolver, server: StubDNSServer) -> None:
    await resolver.resolve("multi.demo.test")
    assert sorted(server.queries) == [("multi.demo.test", "A"), ("multi.demo.test", "AAAA")]


async def test_mapped_aaaa_answer_is_pinned_as_ipv4(resolver: Resolver) -> None:
    resolution = await resolver.resolve("mapped.demo.test")
    assert resolution.addresses == ("127.0.0.30",)


async def test_nxdomain_raises_resolution_error_naming_the_host(resolver: Resolver) -> None:
    with pytest.raises(ResolutionError, match=r"'nope\.demo\.test'.*NXDOMAIN") as caught:
        await resolver.resolve("nope.demo.test")
    assert isinstance(caught.value.__cause__, dns.resolver.NXDOMAIN)


async def test_cname_to_missing_name_raises(resolver: Resolver) -> None:
    with pytest.raises(ResolutionError, match=r"dangling\.demo\.test"):
        await resolver.resolve("dangling.demo.test")


async def test_name_without_address_records_raises(resolver: Resolver) -> None:
    with pytest.raises(ResolutionError, match=r"'mail-only\.demo\.test' has no A or AAAA"):
        await resolver.resolve("mail-only.demo.test")


async def test_refused_query_raises_resolution_error(resolver: Resolver) -> None:
    with pytest.raises(ResolutionError, match=r"'outside\.example'") as caught:
        await resolver.resolve("outside.example")
    assert isinstance(caught.value.__cause__, dns.resolver.NoNameservers)


async def test_silent_nameserver_times_out() -> None:
    # A bound loopback UDP socket that never answers: the query is received and dropped.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        resolver = Resolver(["127.0.0.1"], port=port, timeout=0.3)
        with pytest.raises(ResolutionError, match=r"'quiet\.demo\.test' timed out") as caught:
            await resolver.resolve("quiet.demo.test")
    assert isinstance(caught.value.__cause__, dns.exception.Timeout)


async def test_changed_answers_are_visible_on_the_next_resolution(
    resolver: Resolver, server: StubDNSServer
) -> None:
    first = await resolver.resolve("origin.demo.test")
    server.set_records("origin.demo.test", [("A", "127.0.0.21")])
    second = await resolver.resolve("origin.demo.test")
    assert first.addresses == ("127.0.0.20",)
    assert second.addresses == ("127.0.0.21",)


async def test_rebinding_name_is_caught_on_its_second_resolution(
    resolver: Resolver, server: StubDNSServer
) -> None:
    server.set_sequence("rebind.demo.test", [[("A", "127.0.0.40")], [("A", "169.254.169.254")]])
    scope = AddressScope.of([parse_network("127.0.0.0/8"), parse_network("0.0.0.0/0")])
    first = await resolver.resolve("rebind.demo.test")
    second = await resolver.resolve("rebind.demo.test")
    assert all(scope.check(a) for a in first.addresses)
    assert [scope.check(a).reason for a in second.addresses] == ["special-purpose"]


async def test_ip_literal_is_refused_without_asking(
    resolver: Resolver, server: StubDNSServer
) -> None:
    with pytest.raises(InputError, match="IP address"):
        await resolver.resolve("127.0.0.1")
    assert server.queries == []


async def test_ipv6_loopback_nameserver_is_used() -> None:
    with StubDNSServer(RECORDS, host="::1", authoritative_zones=("demo.test",)) as stub:
        resolver = Resolver(["::1"], port=stub.port)
        resolution = await resolver.resolve("origin.demo.test")
    assert resolution.nameserver == "::1"
    assert resolution.addresses == ("127.0.0.20",)


def test_only_the_configured_nameservers_are_used() -> None:
    assert Resolver(["127.0.0.1"], port=5353).nameservers == ("127.0.0.1",)


@pytest.mark.parametrize("nameservers", [[], ["127.1"], ["dns.example"], ["https://x/dns-query"]])
def test_invalid_nameservers_are_refused(nameservers: list[str]) -> None:
    with pytest.raises(InputError, match="nameserver"):
        Resolver(nameservers)


def test_non_positive_timeout_is_refused() -> None:
    with pytest.raises(InputError, match="timeout"):
        Resolver(["127.0.0.1"], timeout=0)


async def test_resolution_to_json_is_stable(resolver: Resolver) -> None:
    resolution = await resolver.resolve("www.demo.test")
    assert resolution.to_json() == {
        "name": "www.demo.test",
        "addresses": ["127.0.0.20"],
        "cname_chain": ["edge.demo.test", "origin.demo.test"],
        "nameserver": "127.0.0.1",
        "answered_at": "2026-11-30T02:00:00.123456Z",
    }


def test_resolution_is_frozen() -> None:
    resolution = Resolution(
        name="a.test",
        addresses=("127.0.0.1",),
        cname_chain=(),
        nameserver="127.0.0.1",
        answered_at=FIXED,
    )
    with pytest.raises(AttributeError):
        resolution.addresses = ()  # type: ignore[misc]


def test_public_surface_is_what_we_mean_to_export() -> None:
    assert sorted(resolve_module.__all__) == ["Resolution", "Resolver"]
