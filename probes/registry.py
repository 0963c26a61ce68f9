"""The probe catalogue: every probe rio can run, listed by hand.

Nothing is discovered (no entry points, no imports by name): a package installed beside rio cannot
add a probe. Adding one is a code change that review and the gate's disruption check both see.
"""

from __future__ import annotations

from probes.base import Probe
from probes.content import HttpContentProbe
from probes.dns import DnsProbe, DnsZoneTransferProbe
from probes.http import HttpProbe
from probes.port import PortProbe
from probes.services import FtpProbe, MemcachedProbe, RedisProbe, SmtpProbe
from probes.ssh import SshProbe
from probes.tls import TlsProbe

__all__ = ["PROBES", "UnknownProbeError", "probe_class", "probe_names"]

PROBES: tuple[type[Probe], ...] = (
    PortProbe,
    HttpProbe,
    TlsProbe,
    DnsProbe,
    DnsZoneTransferProbe,
    SshProbe,
    RedisProbe,
    MemcachedProbe,
    FtpProbe,
    HttpContentProbe,
    SmtpProbe,
)


class UnknownProbeError(KeyError):
    """No probe of that name exists in :data:`PROBES`."""

    def __str__(self) -> str:
        # KeyError would show the repr of the message in quotes; say it plainly.
        return str(self.args[0]) if self.args else "unknown probe"


def probe_names() -> tuple[str, ...]:
    """The names of all registered probes, in registry order."""
    return tuple(cls.name for cls in PROBES)


def probe_class(name: str) -> type[Probe]:
    """The probe class registered under ``name``.

    Raises:
        UnknownProbeError: no probe has that name (a ``KeyError``); the message lists the names.
    """
    for cls in PROBES:
        if cls.name == name:
            return cls
    raise UnknownProbeError(f"unknown probe {name!r} (known: {', '.join(probe_names())})")
