"""Errors raised by probes.

Probes sit below the orchestrator (the orchestrator imports probes, never the reverse), so their
errors have a root of their own; ``orchestrator.errors`` places this branch in rio's tree as the
*failure* branch for network and tool problems::

    ProbeError                  a probe could not do its work (never a refusal, never bad input)
    +-- PermitError             the permit is unsealed, expired, or for another probe
    +-- ProbeArgumentError      a parameter failed the probe's allowlist (e.g. nmap arguments)
    +-- ToolMissingError        an external tool (nmap) is not installed
    +-- ProbeTimeoutError       the target did not answer in time
    +-- ProbeConnectionError    refused, reset, unreachable
    +-- ProbeProtocolError      the peer answered something the probe could not parse
    +-- ProbeCancelledError     the kill switch stopped the probe

Third-party exceptions (httpx, dnspython, python-nmap, ssl) are translated into these at the
boundary and chained with ``from exc``.
"""

from __future__ import annotations

__all__ = [
    "PermitError",
    "ProbeArgumentError",
    "ProbeCancelledError",
    "ProbeConnectionError",
    "ProbeError",
    "ProbeProtocolError",
    "ProbeTimeoutError",
    "ToolMissingError",
]


class ProbeError(Exception):
    """A probe could not complete its work."""

    #: short machine-readable outcome class written to the probe log
    outcome = "error"


class PermitError(ProbeError):
    """The permit is not valid for this probe now (unsealed, expired, wrong probe)."""

    outcome = "refused"


class ProbeArgumentError(ProbeError):
    """A parameter was refused by the probe's own allowlist before anything was sent."""

    outcome = "refused"


class ToolMissingError(ProbeError):
    """An external tool the probe needs is not installed."""

    outcome = "error"


class ProbeTimeoutError(ProbeError):
    """The target did not answer within the permit's time."""

    outcome = "timeout"


class ProbeConnectionError(ProbeError):
    """The connection was refused, reset or the target was unreachable."""

    outcome = "unreachable"


class ProbeProtocolError(ProbeError):
    """The peer answered with something the probe could not understand."""

    outcome = "error"


class ProbeCancelledError(ProbeError):
    """The kill switch stopped the probe."""

    outcome = "killed"
