"""The farm's minimal HTTP/1.1 responder and the per-target tallies it keeps.

One request per connection: read the request head, answer, close (``Connection: close``). What a
target answers depends on its profile:

* **well configured**: plain HTTP redirects (301) to HTTPS; HTTPS answers 200 with HSTS, CSP,
  ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy``, a ``Secure; HttpOnly``
  cookie and a ``Server`` banner without a version;
* **weak**: HTTP and HTTPS both answer 200 with no security headers, a cookie without ``Secure``
  or ``HttpOnly``, and versioned ``Server`` / ``X-Powered-By`` banners;
* **fragile** (either of the above): when more than ``fragile_rps`` requests arrived in the last
  second, answer 429 with ``Retry-After: 2`` after an added 200 ms, the way a struggling server
  would, so rio's back-off can be observed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

__all__ = ["COUNTER_KEYS", "Site", "Tally", "serve_http"]

#: The keys of every target's counters, in the order :meth:`Farm.counters` lists them.
COUNTER_KEYS = ("http_requests", "https_requests", "tcp_accepts", "responses_429")

_HEAD_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 2.0
_WINDOW = 1.0
_FRAGILE_DELAY = 0.2
_RETRY_AFTER = "2"
# A Host header is echoed into a Location only when it is a plain host name or IPv4 address.
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    400: "Bad Request",
    405: "Method Not Allowed",
    429: "Too Many Requests",
}
_PAGE = b"<!doctype html><title>rio demo</title><p>rio demo target</p>\n"

_GOOD_HEADERS = (
    ("Server", "rio-demo"),
    ("Content-Security-Policy", "default-src 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
_GOOD_HTTPS_HEADERS = (
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("Set-Cookie", "session=demo; Path=/; Secure; HttpOnly; SameSite=Strict"),
)
_WEAK_HEADERS = (
    ("Server", "Apache/2.4.29 (Ubuntu)"),
    ("X-Powered-By", "PHP/7.2.24"),
    ("Set-Cookie", "session=demo; Path=/"),
)


class Tally:
    """Counters and HTTP(S) arrival times of one target.

    Written by the farm's loop thread, read from any thread (benchmarks), hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTER_KEYS, 0)
        self._times: list[float] = []

    def add(self, key: str) -> None:
        """Add one to counter ``key`` (one of :data:`COUNTER_KEYS`)."""
        with self._lock:
            self._counts[key] += 1

    def arrive(self, key: str, now: float) -> int:
        """Record an HTTP(S) request arriving at monotonic ``now``.

        Returns:
            How many requests (this one included) arrived in the last second.
        """
        with self._lock:
            self._counts[key] += 1
            self._times.append(now)
            return len(self._times) - bisect.bisect_right(self._times, now - _WINDOW)

    def counts(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)

    def times(self) -> list[float]:
        """A copy of the arrival times, oldest first."""
        with self._lock:
            return list(self._times)


@dataclass(frozen=True, kw_only=True, slots=True)
class Site:
    """How one target answers HTTP(S).

    Attributes:
        ip: the target address (used in redirects when the Host header is unusable).
        weak: serve the poorly configured profile.
        fragile_rps: above this many requests per second answer 429; ``None`` = never.
        https_port: where well-configured targets redirect plain HTTP.
        tally: the target's counters.
    """

    ip: str
    weak: bool
    fragile_rps: float | None
    https_port: int
    tally: Tally


def _response(status: int, headers: list[tuple[str, str]], body: bytes, head_only: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    lines.append(f"Date: {formatdate(usegmt=True)}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("Content-Type: text/html; charset=utf-8")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def _redirect_location(site: Site, host_header: str | None, target: str) -> str:
    host = (host_header or "").rsplit(":", 1)[0] if host_header else ""
    if not _HOST_RE.match(host):
        host = site.ip
    port = "" if site.https_port == 443 else f":{site.https_port}"
    path = target if target.startswith("/") else "/"
    return f"https://{host}{port}{path}"


async def _answer(site: Site, scheme: str, head: bytes) -> tuple[bytes, bool]:
    """The response bytes for one request head, and whether it was a 429."""
    now = time.monotonic()
    recent = site.tally.arrive(f"{scheme}_requests", now)
    try:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        return _response(400, [("Server", "rio-demo")], b"bad request\n", False), False
    if not version.startswith("HTTP/1."):
        return _response(400, [("Server", "rio-demo")], b"bad request\n", False), False
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    head_only = method == "HEAD"
    profile = list(_WEAK_HEADERS if site.weak else _GOOD_HEADERS)
    if site.fragile_rps is not None and recent > site.fragile_rps:
        # Latency first, then the refusal: both are what rio's health check should notice.
        await asyncio.sleep(_FRAGILE_DELAY)
        site.tally.add("responses_429")
        status_headers = [*profile[:1], ("Retry-After", _RETRY_AFTER)]
        return _response(429, status_headers, b"slow down\n", head_only), True
    if method not in ("GET", "HEAD"):
        return _response(405, [*profile[:1], ("Allow", "GET, HEAD")], b"", head_only), False
    if not site.weak and scheme == "http":
        location = _redirect_location(site, headers.get("host"), target)
        return _response(301, [*profile[:1], ("Location", location)], b"", head_only), False
    if not site.weak:
        profile.extend(_GOOD_HTTPS_HEADERS)
    return _response(200, profile, _PAGE, head_only), False


def serve_http(
    site: Site, scheme: str, track: Callable[[], Callable[[], None]]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """The ``asyncio.start_server`` callback answering HTTP (``scheme`` ``http`` or ``https``).

    Args:
        site: the target's profile and tally.
        scheme: ``"http"`` or ``"https"``; selects the counter and the redirect rule.
        track: registers the running handler with the farm (so close() can cancel it) and
            returns the function that unregisters it.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        untrack = track()
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT)
            except asyncio.LimitOverrunError:
                writer.write(_response(400, [("Server", "rio-demo")], b"too long\n", False))
                await writer.drain()
                return
            response, _ = await _answer(site, scheme, head[:-4])
            writer.write(response)
            await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            # The client went away or never finished its request: nothing to answer.
            pass
        finally:
            untrack()
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)

    return handle
