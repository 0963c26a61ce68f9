"""The http-content probe: a small fixed set of well-known paths, read and matched on signatures.

Each declared path gets one GET on the pinned address (Host and SNI carry the announced name);
at most ``max_body`` bytes are read, redirects are never followed. A finding needs *both* a 200
status and the content's own signature (``ref: refs/`` for ``/.git/HEAD``, ``KEY=value`` lines
for ``/.env``, SQL dump statements for ``*.sql``, ``Index of /`` for a listing, ...), so a server
that answers 200 with a friendly page for every path is not reported. The excerpt kept as
evidence has anything that looks like a secret masked.

The paths a policy may list are :data:`CONTENT_PATHS`; the policy chooses a subset.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
from probes.http import base_url, make_client

__all__ = ["CONTENT_PATHS", "HttpContentProbe", "mask_secrets"]

_EXCERPT = 600
_SECRET = re.compile(
    r"(?im)^(\s*[\w.-]*(?:pass|secret|token|key|pwd|credential|auth)[\w.-]*\s*[=:]\s*)(\S.*)$"
)
_ENV_LINE = re.compile(r"(?m)^[A-Z][A-Z0-9_]*=")


def mask_secrets(text: str) -> str:
    """``PASSWORD=hunter2`` -> ``PASSWORD=***``; every ``KEY=value`` of an env file likewise."""
    masked = _SECRET.sub(lambda m: m.group(1) + "***", text)
    return re.sub(r"(?m)^([A-Z][A-Z0-9_]*=).+$", r"\1***", masked)


def _listing(body: str) -> bool:
    return bool(re.search(r"<title>\s*Index of /", body, re.I))


def _git_head(body: str) -> bool:
    return bool(re.match(r"ref: refs/|[0-9a-f]{40}\s*$", body))


def _svn_entries(body: str) -> bool:
    return bool(re.match(r"\d+\s*\n", body)) or "<wc-entries" in body


def _env(body: str) -> bool:
    return len(_ENV_LINE.findall(body)) >= 2 and "<html" not in body.lower()


def _sql_dump(body: str) -> bool:
    return bool(re.search(r"CREATE TABLE|INSERT INTO|-- MySQL dump|PostgreSQL database dump", body))


def _default_page(body: str) -> bool:
    return any(
        sign in body
        for sign in ("Welcome to nginx!", "Apache2 Debian Default Page", "<h1>It works!</h1>")
    )


def _status_page(body: str) -> bool:
    return "Apache Server Status" in body or bool(re.match(r"Active connections: \d+", body))


def _admin_console(body: str) -> bool:
    return any(sign in body for sign in ("phpMyAdmin", "Tomcat Web Application Manager"))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Check:
    kind: str
    """the observation is ``http.content.<kind>``"""
    signature: Callable[[str], bool]


#: the paths a policy may list, and what each one reveals when it matches
CONTENT_PATHS: Mapping[str, tuple[str, ...]] = {
    "/": ("listing", "default_page"),
    "/.git/HEAD": ("vcs",),
    "/.svn/entries": ("vcs",),
    "/.env": ("env",),
    "/backup.sql": ("backup",),
    "/dump.sql": ("backup",),
    "/db.sql": ("backup",),
    "/backup/": ("listing",),
    "/server-status": ("status_page",),
    "/nginx_status": ("status_page",),
    "/phpmyadmin/": ("admin_console",),
    "/manager/html": ("admin_console",),
}
_SIGNATURES: Mapping[str, Callable[[str], bool]] = {
    "listing": _listing,
    "default_page": _default_page,
    "vcs": lambda body: _git_head(body) or _svn_entries(body),
    "env": _env,
    "backup": _sql_dump,
    "status_page": _status_page,
    "admin_console": _admin_console,
}
_KEYS = frozenset({"scheme", "paths", "max_body", "timeout"})


@dataclass(frozen=True, kw_only=True, slots=True)
class _Params:
    scheme: str
    paths: tuple[str, ...]
    max_body: int
    timeout: float


def _params(permit: Permit) -> _Params:
    params: Mapping[str, Any] = permit.params
    unknown = sorted(str(k) for k in params if k not in _KEYS)
    if unknown:
        raise ProbeArgumentError(f"http-content probe: params: unknown keys {unknown}")
    scheme = params.get("scheme", "http")
    if scheme not in ("http", "https"):
        raise ProbeArgumentError(f"http-content probe: params.scheme: {scheme!r}")
    paths = params.get("paths", ["/"])
    if not isinstance(paths, list | tuple) or not paths:
        raise ProbeArgumentError(f"http-content probe: params.paths: {paths!r} is not a list")
    for path in paths:
        if path not in CONTENT_PATHS:
            raise ProbeArgumentError(
                f"http-content probe: params.paths: {path!r} is not one of {sorted(CONTENT_PATHS)}"
            )
    max_body = params.get("max_body", 16384)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or not 0 < max_body <= 65536:
        raise ProbeArgumentError(f"http-content probe: params.max_body: {max_body!r}")
    timeout = params.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ProbeArgumentError(f"http-content probe: params.timeout: {timeout!r}")
    return _Params(scheme=scheme, paths=tuple(paths), max_body=max_body, timeout=float(timeout))


class HttpContentProbe:
    """GET each declared well-known path once; observe what its content reveals."""

    name: ClassVar[str] = "http-content"
    disruption: ClassVar[Disruption] = Disruption.LIGHT
    binds_source: ClassVar[bool] = True
    """its connections leave from ``ctx.source_address`` when set (``make_client``)"""

    async def run(self, permit: Permit, ctx: ProbeContext) -> ProbeResult:
        """Fetch each declared path from ``permit.ip:permit.port``.

        Raises:
            PermitError: the permit is not valid for this probe now.
            ProbeArgumentError: a parameter failed the allowlist.
            ProbeCancelledError: the kill switch fired between requests.
        """
        check_permit(permit, self.name)
        params = _params(permit)
        base = base_url(permit, params.scheme)
        # make_client checks the same keys as the http probe (a subset of them is ours).
        client = make_client(permit, ctx)
        try:
            return await self._run(permit, ctx, client, params, base)
        except asyncio.CancelledError as exc:
            raise ProbeCancelledError("http-content probe: cancelled") from exc
        finally:
            await client.aclose()

    async def _run(
        self,
        permit: Permit,
        ctx: ProbeContext,
        client: httpx.AsyncClient,
        params: _Params,
        base: str,
    ) -> ProbeResult:
        started = monotonic()
        observations: list[Observation] = []
        requests, latency = 0, None
        outcome, error = "ok", None
        name = permit.server_name
        for path in params.paths:
            if ctx.is_cancelled():
                raise ProbeCancelledError(f"http-content probe: cancelled before {path}")
            left = permit.seconds_left()
            if left <= 0:
                outcome, error = "timeout", "permit deadline reached"
                break
            requests += 1
            try:
                response, head = await send_pinned(
                    client,
                    "GET",
                    base + path,
                    scheme=params.scheme,
                    server_name=name,
                    timeout=min(params.timeout, left),
                    on_wire=ctx.on_wire,
                )
                latency = latency if latency is not None else head
                body = await read_capped(response, params.max_body, keep=True)
            except httpx.TimeoutException as exc:
                outcome, error = "timeout", f"GET {path}: {exc}"
                break
            except httpx.HTTPError as exc:
                outcome, error = "unreachable", f"GET {path}: {type(exc).__name__}: {exc}"
                break
            text = body.decode("utf-8", errors="replace")
            for kind in CONTENT_PATHS[path]:
                exposed = response.status_code == 200 and _SIGNATURES[kind](text)
                observations.append(
                    Observation(
                        key=f"http.content.{kind}",
                        value={
                            "scheme": params.scheme,
                            "path": path,
                            "status": response.status_code,
                            "exposed": exposed,
                        },
                        port=permit.port,
                        evidence=mask_secrets(text[:_EXCERPT]) if exposed else None,
                    )
                )
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
        )
