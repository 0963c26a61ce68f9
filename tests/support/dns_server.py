"""A stub DNS server for tests: answers from a table, on loopback only, UDP and TCP on one port.

It is a *fake at the boundary* (see CONVENTIONS.md, 9): the resolver and the DNS probe talk real
DNS over real sockets to it, so their wire handling is exercised, while the answers come from a
Python dict the test controls and may change between queries.

Behaviour, in the order the server decides:

* ``AXFR``/``IXFR`` queries are always ``REFUSED`` (an inspection must never get a zone transfer
  from our own fake, so a probe that asks can be tested for what it does with a refusal).
* A name present in the records table (or given a sequence) is answered from the table with the
  AA flag set. CNAMEs are followed inside the table: the answer holds the CNAME rrset, then the
  target's rrset. A name present with no record of the asked type gets NOERROR and no answer
  (NODATA), with the SOA of its authoritative zone in the authority section when there is one.
* A name under one of ``authoritative_zones`` but absent from the table gets ``NXDOMAIN``, the
  zone's SOA (from the table, or a synthesised one) in the authority section and the AA flag.
* Any other name: with ``recursive=True`` the server plays an open resolver: the RA flag is set
  and an ``A`` query is answered ``127.0.0.99`` (no upstream is ever contacted). Otherwise it
  answers ``REFUSED`` with RA clear.

Names in :attr:`StubDNSServer.queries` are lower case without the trailing dot, e.g.
``("www.demo.test", "A")``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import struct
import threading
from collections.abc import Iterable
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = ["StubDNSServer"]

Record = tuple[str, str]

_TTL = 60
_MAX_CNAME_HOPS = 16
_OPEN_RESOLVER_ANSWER = "127.0.0.99"
_ADDRESS_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})
_TRANSFER_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
_POLL_SECONDS = 0.05
_TCP_IO_TIMEOUT = 1.0
_MAX_TCP_MESSAGES = 16
_BIND_ATTEMPTS = 20


def _absolute(name: str) -> dns.name.Name:
    """The absolute, lower-cased dnspython name for ``name`` (with or without trailing dot)."""
    return dns.name.from_text(name.strip().lower().rstrip(".") + ".")


def _display(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else "."


def _parse_records(name: dns.name.Name, records: Iterable[Record]) -> dict[int, list[str]]:
    """Validate ``records`` now, so a typo fails in the test and not silently in the thread."""
    by_type: dict[int, list[str]] = {}
    for rdtype_text, rdata_text in records:
        rdtype = dns.rdatatype.from_text(rdtype_text.upper())
        # Parsing raises on malformed rdata; relative names in rdata are taken as absolute.
        dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, rdata_text, origin=dns.name.root, relativize=False
        )
        by_type.setdefault(int(rdtype), []).append(rdata_text)
    return by_type


class StubDNSServer:
    """Serve DNS answers from a table on loopback, UDP and TCP on the same port, in a thread.

    Use as a context manager::

        with StubDNSServer({"www.demo.test": [("A", "127.0.0.5")]},
                           authoritative_zones=("demo.test",)) as dns_server:
            resolver = Resolver(["127.0.0.1"], port=dns_server.port)

    Args:
        records: name -> list of ``(rdtype, rdata text)``, e.g. ``("MX", "10 mail.demo.test.")``.
        host: a loopback address to bind (anything else is refused: tests talk to loopback only).
        port: the port to bind; 0 picks a free one, the same number for UDP and TCP.
        recursive: play an open resolver for names outside every authoritative zone.
        authoritative_zones: zones whose unknown names get NXDOMAIN with the zone's SOA.
    """

    def __init__(
        self,
        records: dict[str, list[tuple[str, str]]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        recursive: bool = False,
        authoritative_zones: tuple[str, ...] = (),
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"StubDNSServer host {host!r} is not a loopback address")
        self.host: str = host
        self.port: int = port
        self.recursive = recursive
        self.queries: list[tuple[str, str]] = []
        #: exceptions raised while answering (the client got SERVFAIL); tests may assert empty.
        self.errors: list[BaseException] = []
        self._zones = tuple(_absolute(zone) for zone in authoritative_zones)
        self._lock = threading.Lock()
        self._table: dict[dns.name.Name, dict[int, list[str]]] = {}
        self._sequences: dict[dns.name.Name, list[dict[int, list[str]]]] = {}
        self._sequence_counts: dict[tuple[dns.name.Name, int], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        for name, name_records in records.items():
            self.set_records(name, name_records)

    # -- the table, changeable while the server runs -------------------------------------------

    def set_records(self, name: str, records: list[tuple[str, str]]) -> None:
        """Replace the records of ``name`` (and drop any sequence set for it).

        An empty list keeps the name existing with no data (NOERROR, empty answer).
        """
        key = _absolute(name)
        parsed = _parse_records(key, records)
        with self._lock:
            self._table[key] = parsed
            self._sequences.pop(key, None)
            self._reset_counts(key)

    def set_sequence(self, name: str, answers: list[list[tuple[str, str]]]) -> None:
        """Answer successive queries for ``name`` from successive record lists.

        The n-th ``A`` query (counted from 0) gets ``answers[min(n, len - 1)]``, and so does the
        n-th ``AAAA`` query: the two types are counted apart, so a resolver that asks both for
        one resolution sees one step per resolution. Queries of other types see the step most
        recently served.
        """
        if not answers:
            raise ValueError(f"set_sequence({name!r}): answers must not be empty")
        key = _absolute(name)
        steps = [_parse_records(key, step) for step in answers]
        with self._lock:
            self._sequences[key] = steps
            self._reset_counts(key)

    def _reset_counts(self, key: dns.name.Name) -> None:
        for rdtype in _ADDRESS_TYPES:
            self._sequence_counts.pop((key, int(rdtype)), None)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> StubDNSServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind UDP and TCP on one port and start serving in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("StubDNSServer is already started")
        self._bind()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="stub-dns", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, join the thread (2 s at most) and close the sockets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None

    def _bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        last_error: OSError | None = None
        # With port 0 the UDP port is free but the same TCP port may not be: retry, bounded.
        for _ in range(_BIND_ATTEMPTS if self.port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((self.host, self.port))
                port = int(udp.getsockname()[1])
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, port))
                tcp.listen(16)
            except OSError as exc:
                last_error = exc
                udp.close()
                tcp.close()
                continue
            udp.setblocking(False)
            tcp.setblocking(False)
            self._udp, self._tcp, self.port = udp, tcp, port
            return
        raise OSError(f"StubDNSServer could not bind {self.host}:{self.port}") from last_error

    # -- serving -------------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ)
            selector.register(self._tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=_POLL_SECONDS):
                    if key.fileobj is self._udp:
                        self._serve_udp(self._udp)
                    else:
                        self._serve_tcp(self._tcp)

    def _serve_udp(self, sock: socket.socket) -> None:
        try:
            wire, peer = sock.recvfrom(65535)
        except (BlockingIOError, OSError):
            return
        reply = self._reply(wire, max_size=None)
        if reply is not None:
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)

    def _serve_tcp(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, OSError):
            return
        with conn:
            conn.settimeout(_TCP_IO_TIMEOUT)
            for _ in range(_MAX_TCP_MESSAGES):
                if self._stop.is_set():
                    return
                try:
                    header = _recv_exactly(conn, 2)
                    if header is None:
                        return
                    (length,) = struct.unpack("!H", header)
                    wire = _recv_exactly(conn, length)
                    if wire is None:
                        return
                    reply = self._reply(wire, max_size=65535)
                    if reply is None:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

    def _reply(self, wire: bytes, *, max_size: int | None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: a real server would drop it too
        # UDP: honour the client's EDNS payload (512 without EDNS); truncate rather than fail.
        size = max_size if max_size is not None else max(query.payload, 512)
        try:
            response = self._answer(query)
            try:
                return response.to_wire(max_size=size)
            except dns.exception.TooBig:
                response.flags |= dns.flags.TC
                for section in (response.answer, response.authority, response.additional):
                    section.clear()
                return response.to_wire(max_size=size)
        except Exception as exc:  # a bug in the stub must show in the test, not hang the client
            self.errors.append(exc)
            failure = dns.message.make_response(query)
            failure.set_rcode(dns.rcode.SERVFAIL)
            return failure.to_wire(max_size=size)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=self.recursive)
        if not self.recursive:
            response.flags &= ~dns.flags.RA
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if len(query.question) == 1 else dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, int(question.rdtype)
        with self._lock:
            self.queries.append((_display(qname), dns.rdatatype.to_text(question.rdtype)))
            if qtype in _TRANSFER_TYPES:
                response.set_rcode(dns.rcode.REFUSED)
                return response
            if self._known(qname):
                response.flags |= dns.flags.AA
                self._answer_from_table(response, qname, qtype)
                return response
            zone = self._zone_of(qname)
            if zone is not None:
                response.flags |= dns.flags.AA
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa(zone))
                return response
        if self.recursive:
            if qtype == dns.rdatatype.A:
                response.answer.append(
                    dns.rrset.from_text(qname, _TTL, "IN", "A", _OPEN_RESOLVER_ANSWER)
                )
            return response
        response.set_rcode(dns.rcode.REFUSED)
        return response

    # -- table lookups (called with the lock held) ---------------------------------------------

    def _known(self, name: dns.name.Name) -> bool:
        return name in self._table or name in self._sequences

    def _zone_of(self, name: dns.name.Name) -> dns.name.Name | None:
        matches = [zone for zone in self._zones if name.is_subdomain(zone)]
        return max(matches, key=len) if matches else None

    def _records_of(self, name: dns.name.Name, qtype: int) -> dict[int, list[str]]:
        steps = self._sequences.get(name)
        if steps is None:
            return self._table.get(name, {})
        if qtype in _ADDRESS_TYPES:
            count = self._sequence_counts.get((name, qtype), 0)
            self._sequence_counts[(name, qtype)] = count + 1
            return steps[min(count, len(steps) - 1)]
        if name in self._table:
            return self._table[name]
        served = [self._sequence_counts.get((name, int(t)), 0) for t in _ADDRESS_TYPES]
        return steps[min(max(max(served) - 1, 0), len(steps) - 1)]

    def _answer_from_table(
        self, response: dns.message.Message, qname: dns.name.Name, qtype: int
    ) -> None:
        name = qname
        seen: set[dns.name.Name] = set()
        for _ in range(_MAX_CNAME_HOPS):
            seen.add(name)
            records = self._records_of(name, qtype)
            if qtype in records:
                response.answer.append(_rrset(name, qtype, records[qtype]))
                return
            cname = records.get(int(dns.rdatatype.CNAME))
            if not cname or qtype == dns.rdatatype.CNAME:
                break
            response.answer.append(_rrset(name, int(dns.rdatatype.CNAME), cname))
            target = _absolute(cname[0])
            if target in seen:
                return  # a CNAME loop: answer what we have, as real servers do
            if not self._known(target):
                zone = self._zone_of(target)
                if zone is not None:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    response.authority.append(self._soa(zone))
                return
            name = target
        # NODATA: say so with the SOA of the zone when we have one.
        zone = self._zone_of(name)
        if zone is not None:
            response.authority.append(self._soa(zone))

    def _soa(self, zone: dns.name.Name) -> dns.rrset.RRset:
        records = self._table.get(zone, {})
        soa = records.get(int(dns.rdatatype.SOA))
        if soa:
            return _rrset(zone, int(dns.rdatatype.SOA), soa)
        zone_text = zone.to_text()
        synthesised = f"ns1.{zone_text} hostmaster.{zone_text} 1 7200 3600 1209600 300"
        return _rrset(zone, int(dns.rdatatype.SOA), [synthesised])


def _rrset(name: dns.name.Name, rdtype: int, texts: list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(
        name,
        _TTL,
        dns.rdataclass.IN,
        dns.rdatatype.RdataType.make(rdtype),
        texts,
        origin=dns.name.root,
        relativize=False,
    )


def _recv_exactly(conn: socket.socket, count: int) -> bytes | None:
    """Read exactly ``count`` bytes, or None when the peer closed first."""
    chunks: list[bytes] = []
    remaining = count
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
