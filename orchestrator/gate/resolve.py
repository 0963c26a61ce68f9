"""Resolve a target name once, and pin what it resolved to.

The gate checks every address a name resolves to against the scope, then hands the probe one of
those addresses (the *pinned* IP). Resolving again later, in the probe or the HTTP client, would
reopen the door the gate just closed: a name can answer inside the scope for the check and
outside it for the connection (DNS rebinding). So a :class:`Resolution` is taken once, kept
whole (every A and AAAA answer, the CNAME chain, the server that answered, when) and written to
the ledger with the decision.

The resolver asks only the configured nameservers; nothing is cached, so a changed answer is seen
on the next resolution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from orchestrator.clock import SystemClock
from orchestrator.errors import InputError, ResolutionError
from orchestrator.gate.addresses import canonical_ip, normalise_host, parse_ip

__all__ = ["Resolution", "Resolver"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """What one name resolved to, once.

    Attributes:
        name: the normalised host name asked for (``www.demo.test``).
        addresses: every A and AAAA answer as canonical literals, IPv4 first, each family in
            numeric order, without duplicates.
        cname_chain: the aliases followed from ``name`` to the canonical name, in order
            (empty when ``name`` has no CNAME); the last element is the canonical name.
        nameserver: the address of the nameserver that answered.
        answered_at: when the answers arrived (timezone-aware, UTC).
    """

    name: str
    addresses: tuple[str, ...]
    cname_chain: tuple[str, ...]
    nameserver: str
    answered_at: datetime

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, e.g. for a ledger leaf (``answered_at`` as ISO 8601 UTC, ``Z``)."""
        answered_at = self.answered_at.astimezone(UTC).isoformat(timespec="microseconds")
        return {
            "name": self.name,
            "addresses": list(self.addresses),
            "cname_chain": list(self.cname_chain),
            "nameserver": self.nameserver,
            "answered_at": answered_at.replace("+00:00", "Z"),
        }


def _address_key(text: str) -> tuple[int, int]:
    ip = parse_ip(text)
    return (ip.version, int(ip))


def _display(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


class Resolver:
    """Resolve host names to all their A and AAAA addresses with dnspython, without caching.

    Args:
        nameservers: IP literals of the nameservers to ask; None reads the system configuration
            (``/etc/resolv.conf``). Tests pass ``["127.0.0.1"]`` and the stub server's port.
        port: the nameservers' port.
        timeout: seconds allowed for one resolution (both queries), across all nameservers.
        clock: returns the current time (timezone-aware); tests may pass a fixed clock.

    Raises:
        InputError: a nameserver is not a canonical IP literal, or the timeout is not positive.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if timeout <= 0:
            raise InputError(f"resolver timeout {timeout!r} must be a positive number of seconds")
        if not 0 < port < 65536:
            raise InputError(f"resolver port {port!r} must be 1-65535")
        self._clock = clock or SystemClock().now
        if nameservers is None:
            resolver = dns.asyncresolver.Resolver(configure=True)
        else:
            if not nameservers:
                raise InputError("resolver nameservers: at least one nameserver is needed")
            try:
                servers = [canonical_ip(server) for server in nameservers]
            except ValueError as exc:
                raise InputError(f"resolver nameservers: {exc}") from exc
            # configure=False: no /etc/resolv.conf, so only the servers given here are asked.
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = servers
            resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.cache = None  # a cached answer would hide a changed (rebound) name
        self._resolver = resolver

    @property
    def nameservers(self) -> tuple[str, ...]:
        """The nameservers this resolver asks, as configured."""
        return tuple(str(server) for server in self._resolver.nameservers)

    async def resolve(self, name: str) -> Resolution:
        """Resolve ``name`` to every A and AAAA address, keeping the CNAME chain.

        Args:
            name: a host name; it is normalised first (see ``normalise_host``).

        Returns:
            The resolution, with addresses in a deterministic order.

        Raises:
            InputError: ``name`` is not a valid host name (an IP literal is refused too).
            ResolutionError: the name does not exist (NXDOMAIN), has neither A nor AAAA
                records, the nameservers failed or refused (SERVFAIL, REFUSED), or time ran
                out; the message names the host and the cause is chained.
        """
        try:
            host = normalise_host(name)
        except ValueError as exc:
            raise InputError(f"cannot resolve {name!r}: {exc}") from exc
        qname = dns.name.from_text(host + ".")
        results = await asyncio.gather(
            self._query(qname, dns.rdatatype.A),
            self._query(qname, dns.rdatatype.AAAA),
            return_exceptions=True,
        )
        answers: list[dns.resolver.Answer] = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation and interrupts are not resolution failures
            if isinstance(result, Exception):
                raise _translate(host, result) from result
            answers.append(result)
        answered_at = self._clock()

        addresses: set[str] = set()
        for answer in answers:
            if answer.rrset is not None:
                for rdata in answer.rrset:
                    addresses.add(canonical_ip(str(rdata.address)))
        if not addresses:
            raise ResolutionError(f"host {host!r} has no A or AAAA records")
        chain = next((c for c in (_cname_chain(a) for a in answers) if c), ())
        answered = next((a for a in answers if a.rrset is not None), answers[0])
        return Resolution(
            name=host,
            addresses=tuple(sorted(addresses, key=_address_key)),
            cname_chain=chain,
            nameserver=str(answered.nameserver),
            answered_at=answered_at,
        )

    async def _query(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.resolver.Answer:
        # search=False: the name is absolute; no search list or local domain is appended.
        return await self._resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)


def _cname_chain(answer: dns.resolver.Answer) -> tuple[str, ...]:
    response = answer.response
    if not isinstance(response, dns.message.QueryMessage):
        return ()
    try:
        chaining = response.resolve_chaining()
    except dns.exception.DNSException:
        return ()
    chain: list[str] = []
    for rrset in chaining.cnames:
        for rdata in rrset:
            chain.append(_display(rdata.target))
    return tuple(chain)


def _translate(host: str, exc: Exception) -> ResolutionError:
    """The ResolutionError to raise for a dnspython failure while resolving ``host``."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return ResolutionError(f"host {host!r} does not exist (NXDOMAIN)")
    if isinstance(exc, dns.resolver.NoNameservers):
        return ResolutionError(
            f"no nameserver answered for host {host!r} (server failure or refusal): {exc}"
        )
    if isinstance(exc, dns.exception.Timeout):
        return ResolutionError(f"resolving host {host!r} timed out: {exc}")
    if isinstance(exc, dns.resolver.NoAnswer):
        return ResolutionError(f"host {host!r} has no A or AAAA records")
    if isinstance(exc, dns.exception.DNSException):
        return ResolutionError(f"resolving host {host!r} failed: {exc}")
    if isinstance(exc, OSError):
        return ResolutionError(f"resolving host {host!r} failed: {exc}")
    return ResolutionError(f"resolving host {host!r} failed unexpectedly: {exc!r}")
