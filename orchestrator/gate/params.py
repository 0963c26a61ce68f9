"""The probe's parameters must be the policy's: a permit never carries more than was allowed.

The planner builds every request's parameters from the policy; this check makes the gate, not
the planner, the place that guarantees it. A request may ask for less than the policy allows
(fewer ports, a shorter timeout), never for more or for something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from orchestrator.intake.policy import Policy

__all__ = ["params_problem"]


def _url_parts(target: str) -> tuple[str, int, str] | None:
    """(scheme, port, path) of an announced ``url:`` target."""
    if not target.startswith("url:"):
        return None
    parts = urlsplit(target.removeprefix("url:"))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, port, parts.path or "/"


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _unknown(params: Mapping[str, Any], allowed: set[str]) -> str | None:
    extra = sorted(set(params) - allowed)
    return f"parameters {extra} are not part of the policy" if extra else None


def _at_most(params: Mapping[str, Any], key: str, limit: float) -> str | None:
    if key not in params:
        return None
    value = _seconds(params[key])
    if value is None or value > limit or value < 0:
        return f"{key} {params[key]!r} exceeds the policy's {limit:g}"
    return None


def params_problem(
    probe: str,
    params: Mapping[str, Any],
    *,
    target: str,
    port: int | None,
    ports: tuple[int, ...],
    policy: Policy,
) -> str | None:
    """Why the request's parameters are not within the policy, or ``None`` when they are."""
    p = policy.probes
    url = _url_parts(target)
    if probe == "port" and p.port is not None:
        pol = p.port
        if not ports or not set(ports) <= set(pol.ports):
            return f"ports {sorted(set(ports) - set(pol.ports))} are not in the policy's port list"
        if params.get("version_detection") and not pol.version_detection:
            return "version detection is not allowed by the policy"
        scripts = params.get("scripts", [])
        if not isinstance(scripts, list | tuple) or not set(scripts) <= set(pol.scripts):
            return f"scripts {scripts!r} are not allowed by the policy"
        return (
            _unknown(params, {"retries", "host_timeout", "version_detection", "scripts"})
            or _at_most(params, "retries", pol.retries)
            or _at_most(params, "host_timeout", pol.host_timeout.total_seconds())
        )
    if probe == "http" and p.http is not None:
        pol_h = p.http
        allowed_ports = set(pol_h.ports) | set(pol_h.https_ports)
        allowed_paths = set(pol_h.paths)
        if url is not None:
            allowed_ports.add(url[1])
            allowed_paths.add(url[2])
        if port not in allowed_ports:
            return f"port {port} is not an HTTP port of the policy or the announced URL"
        paths = params.get("paths", ["/"])
        if not isinstance(paths, list | tuple) or not set(paths) <= allowed_paths:
            return f"paths {paths!r} are not declared by the policy or the announced URL"
        if params.get("method", pol_h.method) not in ("HEAD", pol_h.method):
            return f"method {params.get('method')!r} is not the policy's {pol_h.method}"
        return (
            _unknown(params, {"scheme", "paths", "method", "max_body", "timeout"})
            or _at_most(params, "max_body", pol_h.max_body)
            or _at_most(params, "timeout", pol_h.timeout.total_seconds())
        )
    if probe == "tls" and p.tls is not None:
        pol_t = p.tls
        allowed = set(pol_t.ports) | ({url[1]} if url is not None and url[0] == "https" else set())
        if port not in allowed:
            return f"port {port} is not a TLS port of the policy or the announced URL"
        if params.get("check_legacy") and not pol_t.check_legacy:
            return "legacy TLS handshakes are not allowed by the policy"
        if params.get("enumerate") and not pol_t.enumerate:
            return "cipher-suite enumeration is not allowed by the policy"
        if params.get("inspect") and not pol_t.inspect:
            return "the tls inspection handshakes are not allowed by the policy"
        if params.get("ca_bundle") is not None and params.get("ca_bundle") != pol_t.ca_bundle:
            return f"ca_bundle {params.get('ca_bundle')!r} is not the policy's"
        keys = {"timeout", "check_legacy", "enumerate", "max_handshakes", "inspect", "ca_bundle"}
        return (
            _unknown(params, keys)
            or _at_most(params, "timeout", pol_t.timeout.total_seconds())
            or _at_most(params, "max_handshakes", pol_t.max_handshakes)
        )
    if probe == "dns" and p.dns is not None:
        pol_d = p.dns
        types = params.get("record_types", [])
        if not isinstance(types, list | tuple) or not set(types) <= set(pol_d.record_types):
            return f"record types {types!r} are not allowed by the policy"
        if params.get("recursion_check") and not pol_d.recursion_check:
            return "the open-recursion check is not allowed by the policy"
        if params.get("version_check") and not pol_d.version_check:
            return "the version.bind query is not allowed by the policy"
        keys = {"record_types", "recursion_check", "version_check", "timeout"}
        return _unknown(params, keys) or _at_most(params, "timeout", pol_d.timeout.total_seconds())
    if probe == "http-content" and p.http_content is not None:
        pol_c = p.http_content
        scheme = params.get("scheme", "http")
        content_ports = pol_c.https_ports if scheme == "https" else pol_c.ports
        if port not in content_ports:
            return f"port {port} is not an http-content {scheme} port of the policy"
        paths = params.get("paths", [])
        if not isinstance(paths, list | tuple) or not set(paths) <= set(pol_c.paths):
            return f"paths {paths!r} are not declared by the policy"
        return (
            _unknown(params, {"scheme", "paths", "max_body", "timeout"})
            or _at_most(params, "max_body", pol_c.max_body)
            or _at_most(params, "timeout", pol_c.timeout.total_seconds())
        )
    service = p.service(probe)
    if service is not None:
        if port not in service.ports:
            return f"port {port} is not a {probe} port of the policy"
        switches = service.switches()
        for name, on in switches.items():
            if params.get(name) and not on:
                return f"{probe} {name} is not allowed by the policy"
        return _unknown(params, {"timeout", *switches}) or _at_most(
            params, "timeout", service.timeout.total_seconds()
        )
    if probe == "dns-axfr" and p.dns_axfr is not None:
        return _unknown(params, {"timeout"}) or _at_most(
            params, "timeout", p.dns_axfr.timeout.total_seconds()
        )
    return None
