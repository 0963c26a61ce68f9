"""The http probe: a few HEAD/GET requests to declared paths on the pinned address.

The URL is always built from the permit's pinned IP literal and port, never from a name, so DNS
cannot move the probe elsewhere; the announced name travels only in the Host header and as the
TLS SNI. Redirects are observed, never followed. Certificates are not verified here: what the
server presents is the tls probe's subject, and refusing to talk would hide the HTTP facts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import ipaddress
import math
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any, ClassVar

import httpx

from probes._http_request import read_capped, send_pinned
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

__all__ = ["HttpClients", "HttpProbe", "base_url", "make_client"]

_PARAM_KEYS = frozenset({"scheme", "paths", "method", "max_body", "timeout"})
_DEFAULT_TIMEOUT = 10.0
_DEFAULT_MAX_BODY = 65536
_MAX_PATHS = 32
_MAX_PATH_LENGTH = 2048
# A path is an absolute path with an optional query: no scheme, authority, fragment or spaces.
_PATH = re.compile(r"^/(?!/)[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$")
_VERSION = re.compile(r"\d+\.\d+|/\d")
_BACKOFF_STATUSES = frozenset({429, 503})
_SHARDS = 16
"""clients per target class (see :class:`HttpClients`)"""
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Params:
    scheme: str
    paths: tuple[str, ...]
    method: str
    max_body: int
    timeout: float


def _refuse(field: str, value: object, why: str) -> ProbeArgumentError:
    return ProbeArgumentError(f"http probe: {field}: {value!r} {why}")


def _params(permit: Permit) -> _Params:
    params: Mapping[str, Any] = permit.params
    unknown = sorted(str(k) for k in params if k not in _PARAM_KEYS)
    if unknown:
        raise _refuse("params", unknown, f"has unknown keys (allowed: {sorted(_PARAM_KEYS)})")
    scheme = params.get("scheme", "http")
    if scheme not in ("http", "https"):
        raise _refuse("params.scheme", scheme, "is not 'http' or 'https'")
    paths = params.get("paths", ["/"])
    if not isinstance(paths, list | tuple) or not paths or len(paths) > _MAX_PATHS:
        raise _refuse("params.paths", paths, f"must be a list of 1..{_MAX_PATHS} paths")
    for path in paths:
        if not isinstance(path, str) or len(path) > _MAX_PATH_LENGTH or not _PATH.match(path):
            raise _refuse("params.paths", path, "is not an absolute path")
    method = params.get("method", "HEAD")
    if method not in ("HEAD", "GET"):
        raise _refuse("params.method", method, "is not HEAD or GET")
    max_body = params.get("max_body", _DEFAULT_MAX_BODY)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
        raise _refuse("params.max_body", max_body, "is not a byte count")
    timeout = params.get("timeout", _DEFAULT_TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise _refuse("params.timeout", timeout, "is not a positive number of seconds")
    return _Params(
        scheme=scheme,
        paths=tuple(paths),
        method=method,
        max_body=max_body,
        timeout=float(timeout),
    )


def base_url(permit: Permit, scheme: str) -> str:
    """``scheme://<pinned ip>:<port>`` with an IPv6 literal bracketed.

    Raises:
        ProbeArgumentError: the permit's ip is not a canonical literal or its port is not valid.
    """
    try:
        ip = ipaddress.ip_address(permit.ip)
    except ValueError:
        raise _refuse("ip", permit.ip, "is not an IP address literal") from None
    if str(ip) != permit.ip:
        raise _refuse("ip", permit.ip, "is not a canonical IP literal")
    port = permit.port
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _refuse("port", port, "is not a port number 1-65535")
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{scheme}://{host}:{port}"


def _effective_port(url: httpx.URL) -> int | None:
    """The port a request to ``url`` connects to: httpx drops 80 for http and 443 for https."""
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)


def _server_name(permit: Permit) -> str | None:
    name = permit.server_name
    if name is None:
        return None
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}", name):
        raise _refuse("server_name", name, "is not a host name")
    return name


def _unverified_tls() -> ssl.SSLContext:
    """The TLS context every http probe client uses: certificates are the tls probe's subject."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the tls probe judges certificates; see module docstring
    return context


def _identity(user_agent: str, from_address: str | None) -> dict[str, str]:
    """The headers that tell a defender who is probing (RFC 9110 User-Agent and From)."""
    headers = {"User-Agent": user_agent}
    if from_address is not None:
        headers["From"] = from_address
    return headers


def _client(
    headers: dict[str, str],
    timeout: float,
    tls: ssl.SSLContext,
    limits: httpx.Limits,
    source: str | None = None,
) -> httpx.AsyncClient:
    # Bound to a source address (a pinned egress): every connection leaves from it.
    transport = (
        httpx.AsyncHTTPTransport(verify=tls, limits=limits, local_address=source, trust_env=False)
        if source is not None
        else None
    )
    return httpx.AsyncClient(
        trust_env=False,  # no proxy, no netrc, no SSL_CERT_* from the environment
        follow_redirects=False,
        verify=tls,
        timeout=httpx.Timeout(timeout),
        headers=headers,
        limits=limits,
        transport=transport,
    )


def make_client(permit: Permit, ctx: ProbeContext) -> httpx.AsyncClient:
    """An httpx client for one target: no proxies from the environment, no redirects, no verify.

    A runner may keep one per target and pass it to :meth:`HttpProbe.run` so several paths share
    a connection; a whole run shares clients through :class:`HttpClients`.
    """
    timeout = _params(permit).timeout
    return _client(
        _identity(ctx.user_agent, ctx.from_address),
        timeout,
        _unverified_tls(),
        httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ctx.source_address,
    )


class HttpClients:
    """The http clients of one run: one per target class, one TLS context for all of them.

    Making an httpx client and its SSL context per probe cost about a millisecond each time. A
    run keeps one client per *target class* instead: plain HTTP shares one client (the Host
    header travels with each request), HTTPS gets one client per server name, because a pooled
    TLS connection keeps the SNI it was opened with and must never carry a request for another
    name. Each class is split into a few shards by address: httpcore scans its whole pool for
    every request, so one pool of a run's hundreds of connections cost more than the requests.
    Every request still goes to its permit's pinned ``ip:port`` (the URL is built from the
    literal, connections are pooled per ``scheme://ip:port``), redirects are never followed, and
    nothing is read from the environment. Past ``max_classes`` names, a probe gets a client of
    its own, as without a pool.

    Args:
        user_agent: the run's User-Agent.
        from_address: the run's From header (the inspecting side's mailbox), if any.
        max_connections: connections open at once per client (the run's concurrency bounds it).
        max_classes: most clients kept.
    """

    def __init__(
        self,
        user_agent: str,
        *,
        from_address: str | None = None,
        max_connections: int = 256,
        max_classes: int = 256,
    ):
        self._headers = _identity(user_agent, from_address)
        self._tls = _unverified_tls()
        per_shard = max(1, -(-max_connections // _SHARDS))
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=per_shard,
            keepalive_expiry=5.0,
        )
        self._max_classes = max_classes
        self._clients: dict[tuple[str | None, int], httpx.AsyncClient] = {}
        self._closed = False

    def client_for(self, permit: Permit) -> httpx.AsyncClient | None:
        """The shared client for this permit's target class, or ``None`` to make one's own."""
        if self._closed:
            return None
        scheme = permit.params.get("scheme", "http")
        # One address always lands on the same shard, so its paths share one connection.
        key = (_server_name(permit) if scheme == "https" else None, hash(permit.ip) % _SHARDS)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= self._max_classes:
                return None
            client = _client(self._headers, _DEFAULT_TIMEOUT, self._tls, self._limits)
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client (their pooled connections with them)."""
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _cookie_observations(
    scheme: str, port: int, path: str, response: httpx.Response
) -> list[Observation]:
    observations: list[Observation] = []
    for index, header in enumerate(response.headers.get_list("set-cookie")):
        attributes = [part.strip().lower() for part in header.split(";")[1:]]
        samesite = next(
            (a.split("=", 1)[1].strip() for a in attributes if a.startswith("samesite=")), None
        )
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
            name = next(iter(jar.keys()), None)
        except Exception:  # a malformed cookie is still an observation
            name = None
        observations.append(
            Observation(
                key="http.cookie",
                value={
                    "scheme": scheme,
                    "path": path,
                    "index": index,
                    "secure": "secure" in attributes,
                    "httponly": "httponly" in attributes,
                    "samesite": samesite,
                },
                port=port,
                evidence=name or header.split("=", 1)[0][:64],
            )
        )
    return observations


def _observe(scheme: str, port: int, path: str, response: httpx.Response) -> list[Observation]:
    headers = response.headers
    status = response.status_code
    obs = [Observation(key="http.status", value={"path": path, "status": status})]
    for header in ("server", "x-powered-by"):
        banner = headers.get(header)
        if banner:
            obs.append(
                Observation(
                    key="http.banner",
                    value={
                        "path": path,
                        "header": header,
                        "version": bool(_VERSION.search(banner)),
                    },
                    evidence=banner,
                )
            )
    location = headers.get("location")
    is_redirect = 300 <= status < 400
    if is_redirect and location is not None:
        target = httpx.URL(location) if "://" in location else None
        obs.append(
            Observation(
                key="http.redirect",
                value={
                    "path": path,
                    "status": status,
                    "scheme": target.scheme if target is not None else None,
                },
                evidence=location,
            )
        )
    if scheme == "http":
        to_https = is_redirect and location is not None and location.lower().startswith("https://")
        obs.append(
            Observation(key="http.https_redirect", value={"path": path, "redirects": to_https})
        )
    if not is_redirect:
        csp = headers.get("content-security-policy")
        if scheme == "https":
            obs.append(
                Observation(
                    key="http.header.hsts",
                    value={"path": path, "present": "strict-transport-security" in headers},
                    evidence=headers.get("strict-transport-security"),
                )
            )
        obs.append(
            Observation(
                key="http.header.csp",
                value={"path": path, "present": csp is not None},
                evidence=csp,
            )
        )
        xcto = headers.get("x-content-type-options", "").strip().lower() == "nosniff"
        obs.append(
            Observation(
                key="http.header.xcto",
                value={"path": path, "present": xcto},
                evidence=headers.get("x-content-type-options"),
            )
        )
        frame_ancestors = csp is not None and "frame-ancestors" in csp.lower()
        obs.append(
            Observation(
                key="http.header.xfo",
                value={
                    "path": path,
                    "present": "x-frame-options" in headers,
                    "csp_frame_ancestors": frame_ancestors,
                },
                evidence=headers.get("x-frame-options"),
            )
        )
    obs.extend(_cookie_observations(scheme, port, path, response))
    # Every observation names the port it was made on, so findings can say where.
    return [o if o.port is not None else dataclasses.replace(o, port=port) for o in obs]


class HttpProbe:
    """HEAD or GET of the declared paths; observe status, headers, cookies and redirects."""

    name: ClassVar[str] = "http"
    disruption: ClassVar[Disruption] = Disruption.LIGHT
    binds_source: ClassVar[bool] = True
    """its connections leave from ``ctx.source_address`` when set"""

    async def run(
        self, permit: Permit, ctx: ProbeContext, client: httpx.AsyncClient | None = None
    ) -> ProbeResult:
        """Request each declared path once on ``permit.ip:permit.port``.

        Args:
            permit: the gate's permit for probe ``http``.
            ctx: the probe context (User-Agent, kill switch).
            client: a client from :func:`make_client` to reuse; else the run's shared one
                (``ctx.http_clients``); else one is made and closed.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired between requests.
        """
        check_permit(permit, self.name)
        params = _params(permit)
        base = base_url(permit, params.scheme)
        server_name = _server_name(permit)
        if client is None and ctx.http_clients is not None and ctx.source_address is None:
            client = ctx.http_clients.client_for(permit)
        owned = client is None
        http = client if client is not None else make_client(permit, ctx)
        try:
            return await self._run(permit, ctx, http, params, base, server_name)
        except asyncio.CancelledError as exc:
            # One shape for every probe: a cancelled task reports the kill switch's error.
            raise ProbeCancelledError("http probe: cancelled") from exc
        finally:
            if owned:
                await http.aclose()

    async def _run(
        self,
        permit: Permit,
        ctx: ProbeContext,
        client: httpx.AsyncClient,
        params: _Params,
        base: str,
        server_name: str | None,
    ) -> ProbeResult:
        started = monotonic()
        # base_url() checked the permit's port; httpx.URL would report None for 80 and 443.
        base_port = permit.port
        pinned = httpx.URL(base)
        if base_port is None or _effective_port(pinned) != base_port:
            raise _refuse("port", permit.port, "does not survive URL parsing")
        observations: list[Observation] = []
        requests = 0
        latency: float | None = None
        status: int | None = None
        retry_after: float | None = None
        outcome, error = "ok", None
        for path in params.paths:
            if ctx.is_cancelled():
                raise ProbeCancelledError(f"http probe: cancelled before {path}")
            left = permit.seconds_left()
            if left <= 0:
                outcome, error = "timeout", "permit deadline reached"
                break
            url = httpx.URL(base + path)
            # Defence in depth: whatever the path held, the request goes to the pinned address.
            if url.host != pinned.host or _effective_port(url) != permit.port:
                raise _refuse("params.paths", path, "moves the request off the pinned address")
            requests += 1
            try:
                response, head = await send_pinned(
                    client,
                    params.method,
                    url,
                    scheme=params.scheme,
                    server_name=server_name,
                    timeout=min(params.timeout, left),
                    on_wire=ctx.on_wire,
                )
                if latency is None:
                    latency = head
                await read_capped(response, params.max_body)
            except httpx.TimeoutException as exc:
                outcome, error = "timeout", f"{path}: {type(exc).__name__}"
                break
            except (httpx.ConnectError, httpx.NetworkError) as exc:
                outcome, error = "unreachable", f"{path}: {type(exc).__name__}: {exc}"
                break
            except httpx.HTTPError as exc:
                outcome, error = "error", f"{path}: {type(exc).__name__}: {exc}"
                break
            status = response.status_code
            observations.extend(_observe(params.scheme, base_port, path, response))
            if status in _BACKOFF_STATUSES:
                # The target asks us to slow down: stop here and let the health breaker decide.
                retry_after = _retry_after(response.headers.get("retry-after"))
                break
        return ProbeResult(
            probe=self.name,
            ip=permit.ip,
            outcome=outcome,
            observations=tuple(observations),
            error=error,
            started=started,
            elapsed=monotonic() - started,
            connections=requests,
            latency=latency,
            http_status=status,
            retry_after=retry_after,
        )
