"""What every request handler is given: the opened home, the clock, the API's own settings.

No module-level state: :func:`~orchestrator.interfaces.api.create_app` builds one
:class:`ApiContext` and hangs it on ``app.state``; handlers reach it through :func:`context`.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from orchestrator.clock import Clock, SystemClock
from orchestrator.context import Rio
from orchestrator.errors import InputError
from orchestrator.services.metrics import LedgerCounts

__all__ = ["ApiConfig", "ApiContext", "context"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiConfig:
    """Settings of the HTTP front end.

    Attributes:
        host_name: The name login challenges are bound to (default: this host's name); a
            signature made for another server's challenge is refused.
        public_rate: How often one client address may ask the public notice check
            (``limits`` notation, e.g. ``30/minute``).
        rate_storage: Where the public check's counters live (``memory://`` or a
            ``redis://`` URL shared by several API processes).
        sse_poll_seconds: How often the live progress stream looks at the run.
        sse_max_seconds: After how long a progress stream ends (the page reconnects).
        secure_cookie: Mark the page session cookie ``Secure`` (behind HTTPS).
    """

    host_name: str = field(default_factory=socket.gethostname)
    public_rate: str = "30/minute"
    rate_storage: str = "memory://"
    sse_poll_seconds: float = 1.0
    sse_max_seconds: float = 600.0
    secure_cookie: bool = False


@dataclass(kw_only=True)
class ApiContext:
    """The opened home, the clock and the public check's rate limiter."""

    rio: Rio
    clock: Clock = field(default_factory=SystemClock)
    config: ApiConfig = field(default_factory=ApiConfig)
    storage: Storage = field(init=False)
    limiter: MovingWindowRateLimiter = field(init=False)
    public_limit: RateLimitItem = field(init=False)
    verify_results: Counter[str] = field(default_factory=Counter)
    """Audit verifications this process answered, by result (for /metrics)."""
    ledger_counts: LedgerCounts = field(default_factory=LedgerCounts)
    """The ledger's counts, kept between scrapes of /metrics (each leaf is read once)."""

    def __post_init__(self) -> None:
        url = self.config.rate_storage
        storage = MemoryStorage() if url == "memory://" else storage_from_string(url)
        if not isinstance(storage, Storage):
            raise InputError(f"rate storage {url!r}: not a synchronous limits storage")
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.public_limit = parse(self.config.public_rate)


def context(request: Request) -> ApiContext:
    """The request's :class:`ApiContext` (a FastAPI dependency)."""
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx
