"""Software versions seen on the wire, and the data file of version ranges with known CVEs.

Probes report what servers announce about themselves (the SSH identification, the HTTP
``Server`` header, the FTP greeting, Redis's INFO, memcached's ``version``, BIND's
``version.bind``, Exim's SMTP greeting). :func:`announced_versions` turns those observations
into ``(product, version)`` pairs, and :class:`VersionTable` says which entries of the data file
(``format: rio.versions/v1``) cover them. The file names its source and date and can be replaced
without a code change (``RIO_VERSIONS_FILE``). Like the catalogue it is loaded strictly: unknown
keys, unknown products, malformed versions or empty ranges are refused naming the file and field.

A match is a *version* match: distributions backport fixes without changing the upstream
version, which no remote banner shows. Findings say so.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from probes.base import Observation
from probes.findings.catalogue import SEVERITIES, CatalogueError

__all__ = [
    "PRODUCTS",
    "VERSIONS_FORMAT",
    "Advisory",
    "VersionTable",
    "announced_versions",
    "load_versions",
    "version_key",
]

VERSIONS_FORMAT = "rio.versions/v1"
#: the products the extractors recognise, and so the products the file may name
PRODUCTS: tuple[str, ...] = (
    "openssh",
    "nginx",
    "apache-httpd",
    "bind",
    "vsftpd",
    "openssl",
    "redis",
    "memcached",
    "exim",
)
_PACKAGED = "versions.yaml"
_TOP_KEYS = frozenset({"format", "source", "date", "note", "advisories"})
_ADVISORY_KEYS = frozenset({"product", "cve", "affected", "severity", "summary"})
_RANGE_KEYS = frozenset({"from", "below", "exactly"})
_VERSION_TEXT = re.compile(r"^\d+(?:\.\d+)*[a-z]?(?:p\d+)?$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")

# What servers announce, per product: a pattern over the announced text.
_SERVER_HEADER = (
    ("nginx", re.compile(r"\bnginx/(\d+\.\d+\.\d+)")),
    ("apache-httpd", re.compile(r"\bApache/(\d+\.\d+\.\d+)")),
    ("openssl", re.compile(r"\bOpenSSL/(\d+\.\d+\.\d+[a-z]?)")),
)
_SSH_SOFTWARE = re.compile(r"^OpenSSH_(\d+\.\d+(?:p\d+)?)")
_VSFTPD = re.compile(r"\bvsFTPd (\d+\.\d+\.\d+)")
_BIND = re.compile(r"^(\d+\.\d+\.\d+)")
_EXIM = re.compile(r"\bExim (\d+\.\d+(?:\.\d+)?)\b")


def version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key for versions like ``9.2p1``, ``1.0.1f``, ``2.4.57``: numbers compare as numbers.

    ``1.0.1 < 1.0.1f < 1.0.2`` and ``9.8 < 9.8p1 < 9.9``.
    """
    parts: list[tuple[int, int | str]] = []
    for token in re.findall(r"\d+|[a-z]+", text.lower()):
        parts.append((0, int(token)) if token.isdigit() else (1, token))
    return tuple(parts)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Range:
    start: str | None = None
    below: str | None = None
    exactly: str | None = None

    def covers(self, version: str) -> bool:
        key = version_key(version)
        if self.exactly is not None:
            return key == version_key(self.exactly)
        if self.start is not None and key < version_key(self.start):
            return False
        return not (self.below is not None and key >= version_key(self.below))

    def to_json(self) -> dict[str, str]:
        out = {"from": self.start, "below": self.below, "exactly": self.exactly}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, kw_only=True, slots=True)
class Advisory:
    """One CVE and the upstream versions of one product it affects."""

    product: str
    cve: str
    severity: str
    summary: str
    affected: tuple[_Range, ...]

    def covers(self, version: str) -> bool:
        return any(r.covers(version) for r in self.affected)

    def to_json(self) -> dict[str, Any]:
        return {
            "cve": self.cve,
            "severity": self.severity,
            "summary": self.summary,
            "affected": [r.to_json() for r in self.affected],
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class VersionTable:
    """The loaded data file."""

    file: str
    source: str
    date: str
    advisories: tuple[Advisory, ...]

    def matching(self, product: str, version: str) -> tuple[Advisory, ...]:
        """The advisories whose ranges cover ``product`` at ``version``."""
        return tuple(a for a in self.advisories if a.product == product and a.covers(version))


def _check_version(file: str, where: str, value: Any) -> str:
    if not isinstance(value, str) or not _VERSION_TEXT.match(value):
        raise CatalogueError(file, where, f"{value!r} is not a version like 1.2.3, 9.8p1 or 1.0.1g")
    return value


def _range(file: str, where: str, raw: Any) -> _Range:
    if not isinstance(raw, Mapping) or not raw:
        raise CatalogueError(file, where, "must be a mapping with from/below or exactly")
    unknown = sorted(set(raw) - _RANGE_KEYS)
    if unknown:
        raise CatalogueError(file, where, f"unknown keys {unknown} (allowed: from, below, exactly)")
    if "exactly" in raw and len(raw) > 1:
        raise CatalogueError(file, where, "exactly cannot be combined with from or below")
    values = {k: _check_version(file, f"{where}.{k}", v) for k, v in raw.items()}
    made = _Range(
        start=values.get("from"), below=values.get("below"), exactly=values.get("exactly")
    )
    if made.start and made.below and version_key(made.start) >= version_key(made.below):
        raise CatalogueError(file, where, f"from {made.start} is not below {made.below}")
    return made


def _advisory(file: str, index: int, raw: Any) -> Advisory:
    where = f"advisories[{index}]"
    if not isinstance(raw, Mapping):
        raise CatalogueError(file, where, "must be a mapping")
    missing = sorted(_ADVISORY_KEYS - set(raw))
    unknown = sorted(set(raw) - _ADVISORY_KEYS)
    if missing or unknown:
        raise CatalogueError(file, where, f"missing keys {missing}, unknown keys {unknown}")
    product, cve, severity, summary = raw["product"], raw["cve"], raw["severity"], raw["summary"]
    if product not in PRODUCTS:
        raise CatalogueError(file, f"{where}.product", f"{product!r} is not one of {PRODUCTS}")
    if not isinstance(cve, str) or not _CVE.match(cve):
        raise CatalogueError(file, f"{where}.cve", f"{cve!r} is not a CVE id")
    if severity not in SEVERITIES:
        raise CatalogueError(file, f"{where}.severity", f"{severity!r} is not one of {SEVERITIES}")
    if not isinstance(summary, str) or not summary.strip():
        raise CatalogueError(file, f"{where}.summary", "must be a non-empty string")
    ranges = raw["affected"]
    if not isinstance(ranges, list) or not ranges:
        raise CatalogueError(file, f"{where}.affected", "must be a non-empty list of ranges")
    affected = tuple(_range(file, f"{where}.affected[{i}]", r) for i, r in enumerate(ranges))
    return Advisory(product=product, cve=cve, severity=severity, summary=summary, affected=affected)


def parse_versions(text: str, file: str) -> VersionTable:
    """Parse a versions file strictly.

    Raises:
        CatalogueError: naming the file, the field and the problem.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(file, "(file)", f"is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise CatalogueError(file, "(file)", "must be a mapping")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogueError(file, "(top level)", f"unknown keys {unknown}")
    if data.get("format") != VERSIONS_FORMAT:
        raise CatalogueError(file, "format", f"must be {VERSIONS_FORMAT!r}")
    for key in ("source", "date"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise CatalogueError(file, key, "must say where the data comes from and when")
    raw = data.get("advisories")
    if not isinstance(raw, list):
        raise CatalogueError(file, "advisories", "must be a list")
    advisories = tuple(_advisory(file, i, a) for i, a in enumerate(raw))
    seen: set[tuple[str, str]] = set()
    for i, a in enumerate(advisories):
        if (a.product, a.cve) in seen:
            raise CatalogueError(file, f"advisories[{i}]", f"{a.cve} for {a.product} twice")
        seen.add((a.product, a.cve))
    return VersionTable(
        file=file, source=data["source"], date=str(data["date"]), advisories=advisories
    )


def load_versions(path: Path | None = None) -> VersionTable:
    """Load the versions file at ``path``, or the packaged one.

    Raises:
        CatalogueError: the file cannot be read or is malformed.
    """
    if path is None:
        resource = importlib.resources.files("probes.findings").joinpath(_PACKAGED)
        return parse_versions(resource.read_text(encoding="utf-8"), f"probes/findings/{_PACKAGED}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(str(path), "(file)", f"cannot be read: {exc.strerror}") from exc
    return parse_versions(text, str(path))


def _value(obs: Observation) -> Mapping[str, Any]:
    return obs.value if isinstance(obs.value, Mapping) else {}


def announced_versions(obs: Observation) -> Iterator[tuple[str, str, str]]:
    """``(product, version, where)`` for each version the observation shows a server announce."""
    value = _value(obs)
    if obs.key == "http.banner" and obs.evidence:
        for product, pattern in _SERVER_HEADER:
            match = pattern.search(obs.evidence)
            if match:
                yield product, match.group(1), "HTTP Server header"
    elif obs.key == "ssh.banner" and isinstance(value.get("software"), str):
        match = _SSH_SOFTWARE.match(value["software"])
        if match:
            yield "openssh", match.group(1), "SSH identification"
    elif obs.key == "ftp.banner" and obs.evidence:
        match = _VSFTPD.search(obs.evidence)
        if match:
            yield "vsftpd", match.group(1), "FTP greeting"
    elif obs.key == "smtp.banner" and obs.evidence:
        match = _EXIM.search(obs.evidence.splitlines()[0])
        if match:
            yield "exim", match.group(1), "SMTP greeting"
    elif obs.key == "dns.version" and isinstance(value.get("text"), str):
        match = _BIND.match(value["text"])
        if match:
            yield "bind", match.group(1), "version.bind"
    elif obs.key == "service.version":
        product, version = str(value.get("product")), value.get("version")
        if product in PRODUCTS and isinstance(version, str) and _VERSION_TEXT.match(version):
            yield product, version, str(value.get("source", "service"))
