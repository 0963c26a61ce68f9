"""The dns probes: public records of an announced domain, asked of one pinned name server.

``dns`` (PASSIVE) asks the permit's name server (``permit.ip`` at ``ctx.dns_port``) for the
declared record types of ``permit.server_name``, for SPF, DMARC and DNSKEY, and optionally whether
the server recurses for strangers. The recursion check asks only for a name under the reserved
``.invalid`` TLD (RFC 6761), so even an open resolver sends nothing to any real third party.

``dns-axfr`` (INTRUSIVE) asks for a full zone transfer, which an ordinary client never does; it
is a separate probe so a policy can allow one without the other.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import dns.asyncquery
import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.xfr
import dns.zone

from probes.base import (
    Disruption,
    Observation,
    Permit,
    ProbeContext,
    ProbeResult,
    check_permit,
    monotonic,
)
from probes.errors import ProbeArgumentError, ProbeCancelledError

__all__ = ["RECORD_TYPES", "RECURSION_CHECK_NAME", "DnsProbe", "DnsZoneTransferProbe"]

#: record types a policy may ask for
RECORD_TYPES: tuple[str, ...] = ("A", "AAAA", "MX", "NS", "TXT", "CAA", "SOA")
#: the only name asked with recursion desired; reserved, so no real server is ever involved
RECURSION_CHECK_NAME = "rio-recursion-check.invalid."

_DEFAULT_TIMEOUT = 5.0
_DNS_KEYS = frozenset({"record_types", "recursion_check", "version_check", "timeout"})
_VERSION_BIND = dns.name.from_text("version.bind.")
#: SPF "all" qualifiers that do not tell receivers to reject (RFC 7208 §5.1, §4.6.2)
_SPF_LAX = {"+all": "pass", "all": "pass", "?all": "neutral", "~all": "softfail"}
_AXFR_KEYS = frozenset({"timeout"})
_DOMAIN = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_](?:[A-Za-z0-9\-_]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.?$"
)
_EVIDENCE_LIMIT = 4000


def _refuse(probe: str, field: str, value: object, why: str) -> ProbeArgumentError:
    return ProbeArgumentError(f"{probe} probe: {field}: {value!r} {why}")


def _timeout(probe: str, params: Mapping[str, Any]) -> float:
    timeout = params.get("timeout", _DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _refuse(probe, "params.timeout", timeout, "is not a positive number of seconds")
    return float(timeout)


def _target(probe: str, permit: Permit, ctx: ProbeContext, keys: frozenset[str]) -> dns.name.Name:
    unknown = sorted(str(k) for k in permit.params if k not in keys)
    if unknown:
        raise _refuse(probe, "params", unknown, f"has unknown keys (allowed: {sorted(keys)})")
    name = permit.server_name
    if not isinstance(name, str) or not _DOMAIN.match(name):
        raise _refuse(probe, "server_name", name, "is not a domain name")
    port = ctx.dns_port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _refuse(probe, "ctx.dns_port", port, "is not a port number 1-65535")
    return dns.name.from_text(name.rstrip(".") + ".")


class _Stop(Exception):
    """A query ended the probe early (timeout, unreachable, garbage); carries the outcome."""

    def __init__(self, outcome: str, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error


@dataclass(kw_only=True, slots=True)
class _Asker:
    """Sends queries to the one pinned server and counts them."""

    ip: str
    port: int
    permit: Permit
    ctx: ProbeContext
    timeout: float
    packets: int = 0
    latency: float | None = None

    async def ask(
        self,
        name: dns.name.Name,
        rdtype: str,
        *,
        recursion: bool = False,
        rdclass: str = "IN",
        dnssec: bool = False,
    ) -> dns.message.Message:
        if self.ctx.is_cancelled():
            raise ProbeCancelledError(f"dns probe: cancelled before {name} {rdtype}")
        left = self.permit.seconds_left()
        if left <= 0:
            raise _Stop("timeout", "permit deadline reached")
        query = dns.message.make_query(name, rdtype, rdclass=rdclass, want_dnssec=dnssec)
        if not recursion:
            # Ask the server about its own zone only; never ask it to go elsewhere for us.
            query.flags &= ~dns.flags.RD
        self.packets += 1
        sent = monotonic()
        try:
            response, used_tcp = await dns.asyncquery.udp_with_fallback(
                query, self.ip, timeout=min(self.timeout, left), port=self.port
            )
        except dns.exception.Timeout as exc:
            raise _Stop("timeout", f"{name} {rdtype}: no answer") from exc
        except OSError as exc:
            raise _Stop("unreachable", f"{name} {rdtype}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise _Stop("error", f"{name} {rdtype}: {type(exc).__name__}: {exc}") from exc
        if used_tcp:
            self.packets += 1
        if self.latency is None:
            self.latency = monotonic() - sent
        return response


def _records(response: dns.message.Message, rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return [
        rdata.to_text() for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset
    ]


def _txt_strings(response: dns.message.Message) -> list[str]:
    texts: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.TXT:
            continue
        for rdata in rrset:
            texts.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
    return texts


def _tagged(texts: list[str], tag: str) -> list[str]:
    # "v=spf1" must be the whole first term: "v=spf10" is not SPF.
    return [
        t
        for t in texts
        if t.lower() == tag or t.lower().startswith(tag + " ") or t.lower().startswith(tag + ";")
    ]


@dataclass(frozen=True, kw_only=True, slots=True)
class _DnsParams:
    record_types: tuple[str, ...]
    recursion_check: bool
    version_check: bool
    timeout: float


def _dns_params(permit: Permit) -> _DnsParams:
    params = permit.params
    types = params.get("record_types", list(RECORD_TYPES))
    if not isinstance(types, list | tuple) or not types:
        raise _refuse("dns", "params.record_types", types, "is not a non-empty list")
    for rdtype in types:
        if rdtype not in RECORD_TYPES:
            raise _refuse(
                "dns", "params.record_types", rdtype, f"is not one of {', '.join(RECORD_TYPES)}"
            )
    switches = {}
    for key in ("recursion_check", "version_check"):
        switches[key] = params.get(key, False)
        if not isinstance(switches[key], bool):
            raise _refuse("dns", f"params.{key}", switches[key], "is not true or false")
    return _DnsParams(
        record_types=tuple(dict.fromkeys(types)),
        recursion_check=switches["recursion_check"],
        version_check=switches["version_check"],
        timeout=_timeout("dns", params),
    )


def _spf_all(record: str) -> str | None:
    """The record's ``all`` mechanism with its qualifier (``-all``, ``~all``...), if any."""
    for term in record.split()[1:]:
        if term.lower().lstrip("+-~?") == "all":
            return term.lower()
    return None


def _dmarc_policy(record: str) -> str | None:
    for tag in record.split(";"):
        key, _, value = tag.strip().partition("=")
        if key.strip().lower() == "p":
            return value.strip().lower()
    return None


def _dnssec_state(response: dns.message.Message, zone: dns.name.Name) -> dict[str, Any]:
    """Whether the zone's DNSKEY set is signed by itself, validly, now."""
    keys = response.get_rrset(response.answer, zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    if keys is None:
        return {"present": False}
    sigs = response.get_rrset(
        response.answer, zone, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY
    )
    if sigs is None:
        # Keys without signatures to a DO query: the server may strip them; no verdict.
        return {"present": True, "valid": None, "why": "the DNSKEY answer carries no RRSIG"}
    expirations = sorted(int(sig.expiration) for sig in sigs)
    try:
        dns.dnssec.validate(keys, sigs, {zone: keys})
    except dns.exception.ValidationFailure as exc:
        return {"present": True, "valid": False, "why": str(exc), "expires": expirations}
    except dns.exception.DNSException as exc:  # e.g. an algorithm this build cannot check
        return {"present": True, "valid": None, "why": str(exc), "expires": expirations}
    return {"present": True, "valid": True, "expires": expirations}


class DnsProbe:
    """Records, SPF, DMARC and DNSSEC of the domain; optionally, is the server an open resolver."""

    name: ClassVar[str] = "dns"
    disruption: ClassVar[Disruption] = Disruption.PASSIVE

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Ask ``permit.ip:ctx.dns_port`` about ``permit.server_name``.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired between queries.
        """
        check_permit(permit, self.name)
        domain = _target(self.name, permit, ctx, _DNS_KEYS)
        params = _dns_params(permit)
        asker = _Asker(
            ip=permit.ip, port=ctx.dns_port, permit=permit, ctx=ctx, timeout=params.timeout
        )
        started = monotonic()
        observations: list[Observation] = []
        outcome, error = "ok", None
        try:
            await self._ask_all(asker, domain, params, observations)
        except _Stop as stop:
            outcome, error = stop.outcome, stop.error
        except asyncio.CancelledError as exc:
            # One shape for every probe: a cancelled task reports the kill switch's error.
            raise ProbeCancelledError("dns probe: cancelled") from exc
        return ProbeResult(
            probe=self.name,
            ip=permit.ip,
            outcome=outcome,
            observations=tuple(observations),
            error=error,
            started=started,
            elapsed=monotonic() - started,
            connections=asker.packets,
            latency=asker.latency,
        )

    async def _ask_all(
        self, asker: _Asker, domain: dns.name.Name, params: _DnsParams, obs: list[Observation]
    ) -> None:
        apex = domain.to_text(omit_final_dot=True)
        txt_answer: dns.message.Message | None = None
        for rdtype in params.record_types:
            response = await asker.ask(domain, rdtype)
            if rdtype == "TXT":
                txt_answer = response
            obs.append(
                Observation(
                    key="dns.rrset",
                    value={
                        "name": apex,
                        "type": rdtype,
                        "rcode": dns.rcode.to_text(response.rcode()),
                        "authoritative": bool(response.flags & dns.flags.AA),
                        "records": _records(response, rdtype),
                    },
                )
            )
        if txt_answer is None:
            txt_answer = await asker.ask(domain, "TXT")
        spf = _tagged(_txt_strings(txt_answer), "v=spf1")
        obs.append(Observation(key="dns.spf", value={"present": bool(spf), "records": spf}))
        if len(spf) == 1:
            qualifier = _spf_all(spf[0])
            obs.append(
                Observation(
                    key="dns.spf.all",
                    value={
                        "all": qualifier,
                        "lax": qualifier in _SPF_LAX,
                        "result": _SPF_LAX.get(qualifier or ""),
                    },
                    evidence=spf[0][:_EVIDENCE_LIMIT],
                )
            )

        dmarc_answer = await asker.ask(dns.name.from_text("_dmarc", domain), "TXT")
        dmarc = _tagged(_txt_strings(dmarc_answer), "v=dmarc1")
        obs.append(Observation(key="dns.dmarc", value={"present": bool(dmarc), "records": dmarc}))
        if len(dmarc) == 1:
            policy = _dmarc_policy(dmarc[0])
            obs.append(
                Observation(
                    key="dns.dmarc.policy",
                    value={"policy": policy, "monitor_only": policy in (None, "none")},
                    evidence=dmarc[0][:_EVIDENCE_LIMIT],
                )
            )
        if "CAA" in params.record_types:
            caa = next(o.value for o in obs if o.key == "dns.rrset" and o.value["type"] == "CAA")
            obs.append(Observation(key="dns.caa", value={"present": bool(caa["records"])}))

        # With the DO bit, so the answer carries the DNSKEY set's signatures to check.
        dnskey = await asker.ask(domain, "DNSKEY", dnssec=True)
        state = _dnssec_state(dnskey, domain)
        obs.append(Observation(key="dns.dnssec", value=state))
        if params.version_check:
            answer = await asker.ask(_VERSION_BIND, "TXT", rdclass="CH")
            texts = [
                b"".join(rdata.strings).decode("utf-8", errors="replace")
                for rrset in answer.answer
                if rrset.rdtype == dns.rdatatype.TXT
                for rdata in rrset
            ]
            text = texts[0] if texts else None
            obs.append(
                Observation(
                    key="dns.version",
                    value={
                        "text": text,
                        "disclosed": bool(text and re.search(r"\d+\.\d+", text)),
                        "rcode": dns.rcode.to_text(answer.rcode()),
                    },
                    evidence=text,
                )
            )
        if params.recursion_check:
            probe_name = dns.name.from_text(RECURSION_CHECK_NAME)
            answer = await asker.ask(probe_name, "A", recursion=True)
            available = bool(answer.flags & dns.flags.RA)
            rcode = answer.rcode()
            obs.append(
                Observation(
                    key="dns.recursion",
                    value={
                        "name": RECURSION_CHECK_NAME,
                        "ra": available,
                        "rcode": dns.rcode.to_text(rcode),
                        "open": available and rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN),
                    },
                )
            )


class DnsZoneTransferProbe:
    """Ask the pinned name server for a full transfer (AXFR) of the domain; observe the answer."""

    name: ClassVar[str] = "dns-axfr"
    disruption: ClassVar[Disruption] = Disruption.INTRUSIVE

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Attempt one AXFR of ``permit.server_name`` from ``permit.ip:ctx.dns_port`` over TCP.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired before the attempt.
        """
        check_permit(permit, self.name)
        domain = _target(self.name, permit, ctx, _AXFR_KEYS)
        timeout = _timeout(self.name, permit.params)
        if ctx.is_cancelled():
            raise ProbeCancelledError("dns-axfr probe: cancelled before the transfer")
        started = monotonic()
        left = permit.seconds_left()
        zone = dns.zone.Zone(domain, rdclass=dns.rdataclass.IN)
        apex = domain.to_text(omit_final_dot=True)

        def result(
            outcome: str,
            value: dict[str, Any] | None,
            error: str | None = None,
            evidence: str | None = None,
        ) -> ProbeResult:
            observations = (
                (Observation(key="dns.axfr", value=value, evidence=evidence),)
                if value is not None
                else ()
            )
            return ProbeResult(
                probe=self.name,
                ip=permit.ip,
                outcome=outcome,
                observations=observations,
                error=error,
                started=started,
                elapsed=monotonic() - started,
                connections=1,
            )

        if left <= 0:
            return result("timeout", None, "permit deadline reached")
        try:
            await dns.asyncquery.inbound_xfr(
                permit.ip,
                zone,
                port=ctx.dns_port,
                timeout=min(timeout, left),
                lifetime=min(timeout, left),
            )
        except asyncio.CancelledError as exc:
            raise ProbeCancelledError("dns-axfr probe: cancelled") from exc
        except dns.xfr.TransferError as exc:
            rcode = dns.rcode.to_text(exc.rcode)
            return result("ok", {"name": apex, "allowed": False, "rcode": rcode})
        except dns.exception.Timeout as exc:
            return result("timeout", None, f"AXFR {apex}: no answer ({exc})")
        except OSError as exc:
            return result("unreachable", None, f"AXFR {apex}: {exc}")
        except dns.exception.DNSException as exc:
            # A malformed or truncated transfer still shows the server began to send the zone.
            return result(
                "error",
                {"name": apex, "allowed": None, "rcode": None},
                f"AXFR {apex}: {type(exc).__name__}: {exc}",
            )
        names = len(zone.nodes)
        text = zone.to_text()
        return result(
            "ok",
            {"name": apex, "allowed": True, "rcode": "NOERROR", "names": names},
            evidence=text[:_EVIDENCE_LIMIT],
        )
