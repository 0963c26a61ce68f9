"""The probe plan: scope x policy -> probe requests, spread across targets.

The plan is a deterministic stream, never a list: item ``i`` is the same request every time the
same scope and policy are planned, which is what lets a run resume after a crash by skipping the
items its log already decided. Requests are ordered round-robin: round ``k`` yields the ``k``-th
request of every target before any target gets its ``k+1``-th, so no host sees a burst while
others wait. Memory stays flat whatever the number of targets (a /8 is never expanded into a list).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from orchestrator.gate.addresses import AddressScope
from orchestrator.gate.decide import ProbeRequest, address_scope
from orchestrator.intake.policy import SERVICE_PROBES, Policy
from orchestrator.intake.scope import Scope, Target

__all__ = ["Plan", "plan_for"]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Unit:
    """One address or name to probe, with the target it came from."""

    target: str
    ip: str | None = None
    host: str | None = None
    url: str | None = None
    domain: str | None = None


def _seconds(value: Any) -> float:
    return float(value.total_seconds())


class Plan:
    """A scope's probe plan under a policy."""

    def __init__(self, scope: Scope, policy: Policy) -> None:
        self.scope = scope
        self.policy = policy
        self._addresses: AddressScope = address_scope(scope)
        self._chunk = policy.port_chunk
        # One source for what a probe costs: the policy's own (it also refuses, at load, a
        # probe that can never fit one second of its tightest budget from the same numbers).
        self._costs = {probe: cost for probe, cost, _ in policy.probes.costs()}
        self._template: list[ProbeRequest] | None = None

    # -- units -------------------------------------------------------------------------------

    def _units(self) -> Iterator[_Unit]:
        for t in self.scope.targets:
            yield from self._target_units(t)

    def _target_units(self, t: Target) -> Iterator[_Unit]:
        label = t.label()
        if t.kind == "ip":
            if self._addresses.check(t.value):
                yield _Unit(target=label, ip=t.value)
        elif t.kind == "cidr":
            net = ipaddress.ip_network(t.value)
            hosts = net.hosts() if net.num_addresses > 2 else iter(net)
            for ip in hosts:
                text = str(ip)
                # Excluded addresses are not planned at all (the gate would refuse them anyway).
                if self._addresses.check(text):
                    yield _Unit(target=label, ip=text)
        elif t.kind == "host":
            yield _Unit(target=label, host=t.value)
        elif t.kind == "url":
            yield _Unit(target=label, url=t.value)
        elif t.kind == "domain":
            for ns in t.nameservers:
                yield _Unit(target=label, ip=ns, domain=t.value)

    # -- requests per unit -------------------------------------------------------------------

    def _requests(self, u: _Unit) -> list[ProbeRequest]:
        p = self.policy.probes
        out: list[ProbeRequest] = []
        base: dict[str, Any] = {"target": u.target, "ip": u.ip, "host": u.host, "item": 0}
        if u.domain is not None:
            if p.dns is not None:
                cost = self._costs["dns"]
                params = {
                    "record_types": list(p.dns.record_types),
                    "recursion_check": p.dns.recursion_check,
                    "version_check": p.dns.version_check,
                    "timeout": _seconds(p.dns.timeout),
                }
                out.append(
                    ProbeRequest(
                        probe="dns", server_name=u.domain, params=params, cost=cost, **base
                    )
                )
            if p.dns_axfr is not None:
                params = {"timeout": _seconds(p.dns_axfr.timeout)}
                out.append(
                    ProbeRequest(
                        probe="dns-axfr", server_name=u.domain, params=params, cost=1, **base
                    )
                )
            return out
        if u.url is not None:
            parts = urlsplit(u.url)
            host = parts.hostname or ""
            literal = _literal(host)
            url_base: dict[str, Any] = {
                "target": u.target,
                "ip": literal,
                "host": None if literal else host,
                "item": 0,
            }
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if p.http is not None:
                params = {
                    "scheme": parts.scheme,
                    "paths": [parts.path or "/"],
                    "method": p.http.method,
                    "max_body": p.http.max_body,
                    "timeout": _seconds(p.http.timeout),
                }
                out.append(ProbeRequest(probe="http", port=port, params=params, cost=1, **url_base))
            if parts.scheme == "https" and p.tls is not None:
                out.append(self._tls(port, url_base))
            return out
        if p.port is not None:
            ports = p.port.ports
            params = {
                "retries": p.port.retries,
                "host_timeout": int(_seconds(p.port.host_timeout)),
                "version_detection": p.port.version_detection,
                "scripts": list(p.port.scripts),
            }
            for i in range(0, len(ports), self._chunk):
                chunk = tuple(ports[i : i + self._chunk])
                out.append(
                    ProbeRequest(probe="port", ports=chunk, params=params, cost=len(chunk), **base)
                )
        if p.http is not None:
            for scheme, ports in (("http", p.http.ports), ("https", p.http.https_ports)):
                for port in ports:
                    params = {
                        "scheme": scheme,
                        "paths": list(p.http.paths),
                        "method": p.http.method,
                        "max_body": p.http.max_body,
                        "timeout": _seconds(p.http.timeout),
                    }
                    out.append(
                        ProbeRequest(
                            probe="http", port=port, params=params, cost=self._costs["http"], **base
                        )
                    )
        if p.tls is not None:
            for port in p.tls.ports:
                out.append(self._tls(port, base))
        if p.http_content is not None:
            pc = p.http_content
            for scheme, ports in (("http", pc.ports), ("https", pc.https_ports)):
                for port in ports:
                    params = {
                        "scheme": scheme,
                        "paths": list(pc.paths),
                        "max_body": pc.max_body,
                        "timeout": _seconds(pc.timeout),
                    }
                    out.append(
                        ProbeRequest(
                            probe="http-content",
                            port=port,
                            params=params,
                            cost=self._costs["http-content"],
                            **base,
                        )
                    )
        for _, name in SERVICE_PROBES:
            service = p.service(name)
            if service is None:
                continue
            switches = service.switches()
            params = {"timeout": _seconds(service.timeout), **switches}
            cost = self._costs[name]
            for port in service.ports:
                out.append(ProbeRequest(probe=name, port=port, params=params, cost=cost, **base))
        return out

    def _tls(self, port: int, base: dict[str, Any]) -> ProbeRequest:
        tls = self.policy.probes.tls
        assert tls is not None
        params: dict[str, Any] = {
            "timeout": _seconds(tls.timeout),
            "check_legacy": tls.check_legacy,
        }
        if tls.enumerate:
            params.update(enumerate=True, max_handshakes=tls.max_handshakes)
        if tls.inspect:
            params["inspect"] = True
            if tls.ca_bundle is not None:
                params["ca_bundle"] = tls.ca_bundle
        return ProbeRequest(probe="tls", port=port, params=params, cost=self._costs["tls"], **base)

    # -- the stream --------------------------------------------------------------------------

    def _generic(self) -> list[ProbeRequest]:
        """The requests of every address or host unit (ip, cidr, host targets): the policy
        alone decides them, so they are built once and given each unit's target, ip and host.
        (Their params are shared between units: requests never change them.)"""
        if self._template is None:
            self._template = self._requests(_Unit(target=""))
        return self._template

    def _unit_requests(self, u: _Unit) -> list[ProbeRequest]:
        """The unit's requests: its own for a URL or a domain, else the shared template."""
        if u.url is None and u.domain is None:
            return self._generic()
        return self._requests(u)

    def __iter__(self) -> Iterator[ProbeRequest]:
        """Round-robin over units; item numbers are positions in this stream."""
        item = 0
        round_no = 0
        template = self._generic()
        while True:
            produced = False
            for unit in self._units():
                reqs = self._unit_requests(unit)
                if round_no < len(reqs):
                    produced = True
                    r = reqs[round_no]
                    own = reqs is not template
                    yield ProbeRequest(
                        item=item,
                        probe=r.probe,
                        target=r.target if own else unit.target,
                        ip=r.ip if own else unit.ip,
                        host=r.host if own else unit.host,
                        server_name=r.server_name,
                        port=r.port,
                        ports=r.ports,
                        params=r.params,
                        cost=r.cost,
                    )
                    item += 1
            if not produced:
                return
            round_no += 1

    def count(self) -> int:
        """Planned requests (walks the units once; requests are built only for URLs and
        domains, whose requests depend on the unit)."""
        return sum(len(self._unit_requests(u)) for u in self._units())

    def head(self, n: int) -> list[ProbeRequest]:
        return list(islice(iter(self), n))


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def plan_for(scope: Scope, policy: Policy) -> Plan:
    return Plan(scope, policy)
