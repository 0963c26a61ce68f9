"""What the http probes (http, http-content) share on the wire: one request, one capped read.

The request goes to the URL the caller built from the permit's pinned IP literal; the announced
name travels only as the Host header and the TLS SNI. The body is read raw and cut off at the
probe's byte limit, and the response is always closed, so a server that talks forever cannot
hold a probe. The caller maps ``httpx`` errors to its own outcomes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from probes.base import OnWire, monotonic

__all__ = ["read_capped", "send_pinned"]


_WIRE_EVENTS = frozenset(
    {
        "connection.connect_tcp.started",
        "http11.send_request_headers.started",
        "http2.send_request_headers.started",
    }
)
"""httpcore trace events at which something leaves for the target: a SYN, a request"""

_ANSWER_EVENTS = frozenset(
    {
        "http11.receive_response_headers.complete",
        "http2.receive_response_headers.complete",
    }
)
"""httpcore trace events that prove the target has received the request: its answer's head"""


def _wire_trace(on_wire: OnWire) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` extension that tells ``on_wire`` as a connection or request
    leaves, and as the answer's head comes in."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event in _WIRE_EVENTS:
            on_wire()
        elif event in _ANSWER_EVENTS:
            on_wire(end=True)

    return trace


async def send_pinned(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL | str,
    *,
    scheme: str,
    server_name: str | None,
    timeout: float,
    on_wire: OnWire | None = None,
) -> tuple[httpx.Response, float]:
    """Send one request on the pinned ``url``; the name travels only as Host and SNI.

    The one request path of the http probes (http, http-content): redirects are not followed
    (the client's setting). Returns the streamed response, its body unread (hand it to
    :func:`read_capped`, which closes it), and the seconds from sending to its head.

    Raises:
        httpx.HTTPError: as :meth:`httpx.AsyncClient.send` (the caller maps it to an outcome).
    """
    headers = {"Host": server_name} if server_name else {}
    extensions: dict[str, Any] = {}
    if scheme == "https" and server_name:
        extensions["sni_hostname"] = server_name
    if on_wire is not None:
        extensions["trace"] = _wire_trace(on_wire)
    request = client.build_request(
        method, url, headers=headers, extensions=extensions, timeout=httpx.Timeout(timeout)
    )
    sent = monotonic()
    response = await client.send(request, stream=True)
    return response, monotonic() - sent


async def read_capped(response: httpx.Response, max_body: int, *, keep: bool = False) -> bytes:
    """Read at most about ``max_body`` raw bytes of ``response`` and close it.

    Returns the first ``max_body`` bytes when ``keep``, else nothing (the body is only drained).

    Raises:
        httpx.HTTPError: reading failed (the response is closed all the same).
    """
    body = bytearray()
    read = 0
    try:
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if keep:
                body += chunk
            if read >= max_body:
                break
    finally:
        await response.aclose()
    return bytes(body[:max_body])
