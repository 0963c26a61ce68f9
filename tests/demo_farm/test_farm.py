"""Rules of the loopback target farm: what each kind of target serves, the DNS stub, counters,
self-shutdown and freeing its ports. Every farm here binds only 127.0.0.0/8 and ports picked
free (0), and is closed by the end of its test."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest
from cryptography import x509

import orchestrator.demo
from orchestrator.demo import COUNTER_KEYS, Farm, FarmSpec
from orchestrator.errors import InputError, NotFoundError, StateError

GOOD, WEAK, SPARE, FRAGILE = "127.0.10.1", "127.0.10.2", "127.0.10.3", "127.0.10.4"
SECURITY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
)


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    spec = FarmSpec(
        count=4,
        http_port=0,
        https_port=0,
        open_ports=(0,),
        weak=(2,),
        fragile=(4,),
        # Low enough that a handful of requests surely lands inside one second.
        fragile_rps=2.0,
        dns_port=0,
        lifetime=30.0,
    )
    with Farm(spec) as running:
        yield running


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, verify=False, timeout=5.0) as http:
        yield http


def _peer_certificate(ip: str, port: int) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((ip, port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _query(farm: Farm, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    assert farm.dns_ip is not None and farm.dns_port is not None
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, farm.dns_ip, port=farm.dns_port, timeout=3)


def _bind_tcp(ip: str, port: int) -> None:
    # SO_REUSEADDR as any server sets it: ignores TIME_WAIT leftovers, but still fails while
    # a listener holds the port.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.listen()


def _bind_udp(ip: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, port))


def test_package_exports_only_the_farm_api() -> None:
    assert sorted(orchestrator.demo.__all__) == ["COUNTER_KEYS", "Farm", "FarmSpec"]


def test_farm_serves_the_first_count_hosts_of_its_network(farm: Farm) -> None:
    assert farm.targets == (GOOD, WEAK, SPARE, FRAGILE)
    assert farm.skipped == ()
    assert farm.running


def test_well_configured_target_redirects_http_to_https(farm: Farm, client: httpx.Client) -> None:
    response = client.get(
        f"http://{GOOD}:{farm.http_port}/login", headers={"Host": "www.demo.test"}
    )
    assert response.status_code == 301
    assert response.headers["location"] == f"https://www.demo.test:{farm.https_port}/login"
    assert response.headers["connection"] == "close"


def test_well_configured_target_serves_https_with_security_headers(
    farm: Farm, client: httpx.Client
) -> None:
    response = client.get(f"https://{GOOD}:{farm.https_port}/")
    assert response.status_code == 200
    assert response.text.startswith("<!doctype html>")
    for header in SECURITY_HEADERS:
        assert header in response.headers, header
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert response.headers["server"] == "rio-demo"


def test_head_request_gets_headers_without_body(farm: Farm, client: httpx.Client) -> None:
    response = client.head(f"https://{GOOD}:{farm.https_port}/")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""


def test_weak_target_lacks_security_headers_and_discloses_versions(
    farm: Farm, client: httpx.Client
) -> None:
    for url in (f"http://{WEAK}:{farm.http_port}/", f"https://{WEAK}:{farm.https_port}/"):
        response = client.get(url)
        assert response.status_code == 200, url  # no redirect to HTTPS either
        for header in SECURITY_HEADERS:
            assert header not in response.headers, (url, header)
        cookie = response.headers["set-cookie"]
        assert "secure" not in cookie.lower() and "httponly" not in cookie.lower()
        assert "/" in response.headers["server"]  # e.g. Apache/2.4.29
        assert "x-powered-by" in response.headers


def test_weak_target_presents_expired_self_signed_certificate(farm: Farm) -> None:
    cert = _peer_certificate(WEAK, farm.https_port)
    assert cert.issuer == cert.subject
    assert cert.not_valid_after_utc < datetime.now(UTC)


def test_well_configured_target_certificate_chains_to_farm_ca_for_demo_names(farm: Farm) -> None:
    context = ssl.create_default_context(cadata=farm.ca_pem.decode())
    for name in ("www.demo.test", "portal.demo.test"):
        with (
            socket.create_connection((GOOD, farm.https_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() is not None
    context.check_hostname = False
    with (
        socket.create_connection((WEAK, farm.https_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw)


def test_fragile_target_answers_429_with_retry_after_when_driven_above_its_rate(
    farm: Farm, client: httpx.Client
) -> None:
    statuses: list[int] = []
    throttled: httpx.Response | None = None
    for _ in range(20):
        response = client.get(f"https://{FRAGILE}:{farm.https_port}/")
        statuses.append(response.status_code)
        if response.status_code == 429:
            throttled = response
            break
    assert throttled is not None, statuses
    assert throttled.headers["retry-after"] == "2"
    assert statuses[0] != 429  # the first request of a burst is served
    assert farm.counters()[FRAGILE]["responses_429"] >= 1


def test_target_that_is_not_fragile_never_answers_429(farm: Farm, client: httpx.Client) -> None:
    statuses = {client.get(f"https://{SPARE}:{farm.https_port}/").status_code for _ in range(8)}
    assert statuses == {200}
    assert farm.counters()[SPARE]["responses_429"] == 0


def test_dns_stub_answers_a_for_www_authoritatively(farm: Farm) -> None:
    response = _query(farm, "www.demo.test", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert not response.flags & dns.flags.RA
    assert [rd.to_text() for rd in response.answer[0]] == [GOOD]
    portal = _query(farm, "portal.demo.test", "A", tcp=True)
    assert [rd.to_text() for rd in portal.answer[0]] == [WEAK]


def test_dns_stub_serves_spf_and_dmarc_records(farm: Farm) -> None:
    spf = _query(farm, "demo.test", "TXT")
    assert [rd.to_text() for rd in spf.answer[0]] == ['"v=spf1 -all"']
    dmarc = _query(farm, "_dmarc.demo.test", "TXT")
    assert [rd.to_text() for rd in dmarc.answer[0]] == ['"v=DMARC1; p=reject"']
    assert _query(farm, "demo.test", "MX").answer[0].rdtype == dns.rdatatype.MX
    assert _query(farm, "demo.test", "DNSKEY").answer == []  # no DNSSEC


def test_dns_stub_refuses_other_zones_and_zone_transfers(farm: Farm) -> None:
    assert _query(farm, "example.com", "A").rcode() == dns.rcode.REFUSED
    assert _query(farm, "demo.test", "AXFR", tcp=True).rcode() == dns.rcode.REFUSED


def test_dns_stub_answers_nxdomain_with_soa_for_unknown_names(farm: Farm) -> None:
    response = _query(farm, "nothing.demo.test", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_counters_count_requests_and_accepts_per_target(farm: Farm, client: httpx.Client) -> None:
    before = farm.counters()[GOOD]
    times_before = len(farm.request_times(GOOD))
    started = time.monotonic()
    client.get(f"http://{GOOD}:{farm.http_port}/")
    client.get(f"https://{GOOD}:{farm.https_port}/")
    with socket.create_connection((GOOD, farm.open_ports[0]), timeout=5) as sock:
        assert sock.recv(1) == b""  # the listener accepts and closes
    after = farm.counters()[GOOD]
    assert set(after) == set(COUNTER_KEYS)
    assert {key: after[key] - before[key] for key in COUNTER_KEYS} == {
        "http_requests": 1,
        "https_requests": 1,
        "tcp_accepts": 1,
        "responses_429": 0,
    }
    new_times = farm.request_times(GOOD)[times_before:]
    assert len(new_times) == 2
    assert started <= new_times[0] <= new_times[1] <= time.monotonic()


def test_request_times_refused_for_an_address_that_is_not_a_target(farm: Farm) -> None:
    with pytest.raises(NotFoundError, match=re.escape("127.0.10.9")):
        farm.request_times("127.0.10.9")


def test_farm_starts_only_once(farm: Farm) -> None:
    with pytest.raises(StateError):
        farm.start()


def test_close_frees_every_port() -> None:
    spec = FarmSpec(
        network="127.0.12.0/29",
        count=2,
        http_port=0,
        https_port=0,
        open_ports=(0,),
        weak=(),
        dns_ip="127.0.12.6",
        dns_port=0,
        lifetime=30.0,
    )
    farm = Farm(spec).start()
    try:
        with pytest.raises(OSError):
            _bind_tcp(farm.targets[0], farm.http_port)
    finally:
        farm.close()
    assert not farm.running
    assert farm.dns_port is not None
    for ip in farm.targets:
        for port in (farm.http_port, farm.https_port, *farm.open_ports):
            _bind_tcp(ip, port)
    _bind_udp("127.0.12.6", farm.dns_port)
    _bind_tcp("127.0.12.6", farm.dns_port)
    farm.close()  # a second close is harmless


def test_farm_stops_itself_when_its_lifetime_ends() -> None:
    spec = FarmSpec(
        network="127.0.13.0/29",
        count=1,
        http_port=0,
        https_port=0,
        open_ports=(),
        weak=(),
        dns_ip=None,
        lifetime=0.3,
    )
    with Farm(spec) as farm:
        deadline = time.monotonic() + 5.0
        while farm.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not farm.running
        _bind_tcp(farm.targets[0], farm.http_port)


def test_port_that_cannot_be_bound_is_skipped_and_recorded() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.14.2", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        spec = FarmSpec(
            network="127.0.14.0/29",
            count=2,
            http_port=0,
            https_port=0,
            open_ports=(taken,),
            weak=(),
            dns_ip=None,
            lifetime=30.0,
        )
        with Farm(spec) as farm:
            assert farm.targets == ("127.0.14.1", "127.0.14.2")
            assert len(farm.skipped) == 1
            assert f"127.0.14.2:{taken}" in farm.skipped[0]
            with contextlib.closing(socket.create_connection(("127.0.14.1", taken), 5)) as sock:
                assert sock.recv(1) == b""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"network": "10.0.0.0/24"}, "network"),
        ({"network": "127.0.10.0/33"}, "network"),
        ({"count": 31}, "count"),
        ({"dns_ip": "192.0.2.53"}, "dns_ip"),
        ({"weak": (0,)}, "weak[0]"),
        ({"open_ports": (70000,)}, "open_ports[0]"),
        ({"open_ports": (8080,)}, "open_ports"),
        ({"lifetime": 0.0}, "lifetime"),
    ],
)
def test_spec_refused_when_a_field_is_out_of_range(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"FarmSpec.{field}:")):
        FarmSpec(**fields)  # type: ignore[arg-type]
