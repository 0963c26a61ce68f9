"""The farm's authoritative stub DNS server for one zone, over UDP and TCP.

Answers from a fixed zone with the AA flag; names outside the zone get ``REFUSED`` (the stub is
not an open resolver, RA stays clear); zone transfers (AXFR/IXFR) are ``REFUSED``; unknown names
get ``NXDOMAIN`` and existing names without the asked type get ``NODATA``, both with the SOA in
the authority section. There is no DNSSEC: a DNSKEY or DS query gets NODATA.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

__all__ = ["DemoZone", "DnsUdpProtocol", "serve_dns_tcp", "start_dns"]

_UDP_DEFAULT_SIZE = 512
_TCP_TIMEOUT = 5.0
_TCP_MAX_MESSAGES = 16
_TRANSFERS = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


class DemoZone:
    """The demo zone and the answers it gives.

    Args:
        zone: the zone's name, e.g. ``demo.test``.
        first: the address of target 1 (``www``, ``mail`` and the apex point here).
        second: the address of target 2 (``portal``).
        ns: the address of ``ns1`` (the stub itself).
    """

    def __init__(self, *, zone: str, first: str, second: str, ns: str) -> None:
        self.origin = dns.name.from_text(zone)
        text = "\n".join(
            [
                "$TTL 300",
                "@ SOA ns1 hostmaster 2024010101 3600 600 86400 300",
                "@ NS ns1",
                f"@ A {first}",
                "@ MX 10 mail",
                '@ TXT "v=spf1 -all"',
                '_dmarc TXT "v=DMARC1; p=reject"',
                f"ns1 A {ns}",
                f"mail A {first}",
                f"www A {first}",
                f"portal A {second}",
            ]
        )
        # Absolute names throughout, so rrsets go to the wire without an origin.
        self._zone = dns.zone.from_text(text, origin=self.origin, relativize=False)
        soa = self._zone.find_rdataset(self.origin, dns.rdatatype.SOA)
        self._soa = dns.rrset.from_rdata_list(self.origin, soa.ttl, list(soa))

    def respond(self, query: dns.message.Message) -> dns.message.Message:
        """The response to ``query`` (a parsed request, not a response)."""
        response = dns.message.make_response(query)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if (
            question.rdclass != dns.rdataclass.IN
            or not question.name.is_subdomain(self.origin)
            or question.rdtype in _TRANSFERS
        ):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        node = self._zone.get_node(question.name)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa)
            return response
        if question.rdtype == dns.rdatatype.ANY:
            rdatasets = list(node.rdatasets)
        else:
            found = node.get_rdataset(dns.rdataclass.IN, question.rdtype)
            rdatasets = [found] if found is not None else []
        for rdataset in rdatasets:
            response.answer.append(
                dns.rrset.from_rdata_list(question.name, rdataset.ttl, list(rdataset))
            )
        if not rdatasets:
            response.authority.append(self._soa)
        return response

    def answer_wire(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The wire response to the wire query ``wire``; ``None`` when it deserves no answer.

        Args:
            wire: the query as received.
            max_size: the UDP payload limit (``None`` over TCP); a larger answer is truncated
                (TC set, sections emptied) so the client retries over TCP.
        """
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # garbage or a truncated packet: a real server drops it too
        if query.flags & dns.flags.QR:
            return None  # never answer a response (reflection loops)
        response = self.respond(query)
        if max_size is None:
            return response.to_wire(max_size=65535)
        limit = max(_UDP_DEFAULT_SIZE, query.payload if query.edns >= 0 else 0)
        try:
            return response.to_wire(max_size=min(limit, max_size))
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()


class DnsUdpProtocol(asyncio.DatagramProtocol):
    """UDP side of the stub: one datagram in, at most one out."""

    def __init__(self, zone: DemoZone, on_query: Callable[[], None]) -> None:
        self._zone = zone
        self._on_query = on_query
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport at runtime.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_query()
        answer = self._zone.answer_wire(data, 65535)
        if answer is not None and self._transport is not None:
            self._transport.sendto(answer, addr)


def serve_dns_tcp(
    zone: DemoZone, on_query: Callable[[], None]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """The ``asyncio.start_server`` callback for DNS over TCP (2-byte length prefix)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(_TCP_MAX_MESSAGES):
                prefix = await asyncio.wait_for(reader.readexactly(2), _TCP_TIMEOUT)
                wire = await asyncio.wait_for(
                    reader.readexactly(int.from_bytes(prefix, "big")), _TCP_TIMEOUT
                )
                on_query()
                answer = zone.answer_wire(wire, None)
                if answer is None:
                    return
                writer.write(len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client closed or stalled
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), _TCP_TIMEOUT)

    return handle


async def start_dns(
    zone: DemoZone, ip: str, port: int, on_query: Callable[[], None], *, attempts: int = 1
) -> tuple[int, asyncio.BaseTransport, asyncio.Server]:
    """Serve ``zone`` on ``ip`` over UDP and TCP on one port number.

    Args:
        zone: what to answer.
        ip: the address to bind.
        port: the port; 0 lets UDP pick one, and TCP binds the same number.
        on_query: called once per query received.
        attempts: how often to try (for port 0, TCP may find the number UDP picked taken).

    Returns:
        The port bound, the UDP transport and the TCP server.

    Raises:
        OSError: the last bind failure when every attempt failed.
    """
    loop = asyncio.get_running_loop()
    failure: OSError = OSError(f"no attempt to bind {ip}:{port}")
    for _ in range(attempts):
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: DnsUdpProtocol(zone, on_query), local_addr=(ip, port)
            )
        except OSError as exc:
            failure = exc
            continue
        bound = int(transport.get_extra_info("sockname")[1])
        try:
            server = await asyncio.start_server(serve_dns_tcp(zone, on_query), ip, bound)
        except OSError as exc:
            transport.close()
            failure = exc
            continue
        return bound, transport, server
    raise failure
