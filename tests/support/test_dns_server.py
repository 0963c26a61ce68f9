"""The stub DNS server answers the way the tests that use it rely on (real UDP/TCP on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dns_server import StubDNSServer

SOA = "ns1.demo.test. hostmaster.demo.test. 1 7200 3600 1209600 300"
DNSKEY = (
    "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
    "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="
)
RECORDS: dict[str, list[tuple[str, str]]] = {
    "demo.test": [
        ("SOA", SOA),
        ("NS", "ns1.demo.test."),
        ("MX", "10 mail.demo.test."),
        ("TXT", '"v=spf1 -all"'),
        ("CAA", '0 issue "letsencrypt.org"'),
        ("DNSKEY", DNSKEY),
    ],
    "www.demo.test": [("CNAME", "web.demo.test.")],
    "web.demo.test.": [("A", "127.0.0.5"), ("A", "127.0.0.6"), ("AAAA", "::1")],
    "dangling.demo.test": [("CNAME", "gone.demo.test.")],
}


@pytest.fixture
def server() -> Iterator[StubDNSServer]:
    with StubDNSServer(RECORDS, authoritative_zones=("demo.test",)) as stub:
        yield stub
    assert stub.errors == []


def ask(server: StubDNSServer, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=2.0)


def answer_texts(response: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in response.answer for rdata in rrset]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cname_chain_is_followed_inside_the_table(server: StubDNSServer, tcp: bool) -> None:
    response = ask(server, "www.demo.test", "A", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert sorted(answer_texts(response)) == ["127.0.0.5", "127.0.0.6", "web.demo.test."]


@pytest.mark.parametrize(
    ("rdtype", "expected"),
    [
        ("MX", "10 mail.demo.test."),
        ("TXT", '"v=spf1 -all"'),
        ("CAA", '0 issue "letsencrypt.org"'),
        ("NS", "ns1.demo.test."),
        ("SOA", SOA),
    ],
)
def test_other_record_types_are_served(server: StubDNSServer, rdtype: str, expected: str) -> None:
    assert answer_texts(ask(server, "demo.test", rdtype)) == [expected]


def test_dnskey_is_served_over_tcp(server: StubDNSServer) -> None:
    response = ask(server, "demo.test", "DNSKEY", tcp=True)
    assert response.answer[0].rdtype == dns.rdatatype.DNSKEY


def test_unknown_name_in_zone_is_nxdomain_with_soa(server: StubDNSServer) -> None:
    response = ask(server, "nope.demo.test", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    assert response.authority[0].rdtype == dns.rdatatype.SOA
    assert response.authority[0][0].to_text() == SOA


def test_cname_to_missing_name_is_nxdomain(server: StubDNSServer) -> None:
    response = ask(server, "dangling.demo.test", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert answer_texts(response) == ["gone.demo.test."]


def test_known_name_without_the_type_is_nodata(server: StubDNSServer) -> None:
    response = ask(server, "web.demo.test", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []


def test_name_outside_zones_is_refused_without_ra(server: StubDNSServer) -> None:
    response = ask(server, "example.com", "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.RA


def test_recursive_stub_plays_an_open_resolver() -> None:
    with StubDNSServer({}, recursive=True) as stub:
        response = ask(stub, "example.com", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.RA
    assert answer_texts(response) == ["127.0.0.99"]


@pytest.mark.parametrize("recursive", [False, True])
def test_zone_transfer_is_always_refused(recursive: bool) -> None:
    with StubDNSServer(RECORDS, authoritative_zones=("demo.test",), recursive=recursive) as stub:
        response = ask(stub, "demo.test", "AXFR", tcp=True)
    assert response.rcode() == dns.rcode.REFUSED


def test_queries_are_recorded_in_order(server: StubDNSServer) -> None:
    ask(server, "WWW.demo.test.", "A")
    ask(server, "demo.test", "MX", tcp=True)
    assert server.queries == [("www.demo.test", "A"), ("demo.test", "MX")]


def test_set_records_changes_answers_live(server: StubDNSServer) -> None:
    assert answer_texts(ask(server, "web.demo.test", "AAAA")) == ["::1"]
    server.set_records("web.demo.test", [("AAAA", "::2")])
    assert answer_texts(ask(server, "web.demo.test", "AAAA")) == ["::2"]


def test_sequence_steps_per_address_type_then_sticks_at_last(server: StubDNSServer) -> None:
    server.set_sequence(
        "flip.demo.test",
        [[("A", "127.0.0.5"), ("AAAA", "::1")], [("A", "198.51.100.7")]],
    )
    assert answer_texts(ask(server, "flip.demo.test", "A")) == ["127.0.0.5"]
    assert answer_texts(ask(server, "flip.demo.test", "AAAA")) == ["::1"]
    assert answer_texts(ask(server, "flip.demo.test", "A")) == ["198.51.100.7"]
    assert answer_texts(ask(server, "flip.demo.test", "AAAA")) == []
    assert answer_texts(ask(server, "flip.demo.test", "A", tcp=True)) == ["198.51.100.7"]


def test_ipv6_loopback_is_served() -> None:
    with StubDNSServer(RECORDS, host="::1", authoritative_zones=("demo.test",)) as stub:
        assert answer_texts(ask(stub, "web.demo.test", "AAAA")) == ["::1"]


def test_non_loopback_host_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        StubDNSServer({}, host="192.0.2.1")


def test_malformed_record_fails_at_set_time() -> None:
    with pytest.raises(dns.exception.SyntaxError):
        StubDNSServer({"bad.demo.test": [("A", "not-an-address")]})


def test_stop_releases_the_port() -> None:
    with StubDNSServer(RECORDS) as stub:
        port = stub.port
    with StubDNSServer(RECORDS, port=port) as again:
        assert again.port == port
