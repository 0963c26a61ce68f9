"""Scope announcement files (``scopes/*.yaml``): what the object was told would be inspected.

A scope names the inspected object (its service types per Art. 11 and whether it is a key
supervision object per Art. 9), the targets, the excludes (which always win), the announced time
windows with their timezone, the scanner source addresses and a contact. Loading is strict:
unknown keys, duplicate keys, wrong types and impossible values are refused with
``FILE: path.to.field: what is wrong``; the result is frozen.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator, model_validator

from orchestrator.errors import ScopeFileError
from orchestrator.intake._types import (
    STRICT,
    IPLiteral,
    NetworkLiteral,
    Slug,
    TimezoneName,
)
from orchestrator.intake._yaml import parse_document, read_document
from orchestrator.intake.hostnames import normalise_host

__all__ = [
    "SCOPE_FORMAT",
    "AnnouncedWindow",
    "Contact",
    "InspectedObject",
    "Scope",
    "ServiceType",
    "Target",
    "load_scope",
    "parse_scope",
    "scope_json_schema",
]

SCOPE_FORMAT = "rio.scope/v1"


class ServiceType(enum.StrEnum):
    """Internet service types of Order 151 Art. 11 (what the object provides)."""

    ACCESS = "access"
    """internet access service"""
    IDC = "idc"
    """data centre (IDC) service"""
    CDN = "cdn"
    """content delivery service"""
    DOMAIN = "domain"
    """domain name service"""
    NETWORKING = "networking"
    """networking (interconnection) service"""
    INFORMATION = "information"
    """internet information service"""
    PLATFORM = "platform"
    """internet platform / public online service"""
    OTHER = "other"
    """another internet service"""


class InspectedObject(BaseModel):
    """The inspected entity."""

    model_config = STRICT
    id: Slug
    name: str = Field(min_length=1, max_length=200)
    services: tuple[ServiceType, ...] = Field(min_length=1)
    key_supervision: bool = False


class Contact(BaseModel):
    """Who at the object received the notice."""

    model_config = STRICT
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=40)


_KINDS = ("ip", "cidr", "host", "url", "domain")


class Target(BaseModel):
    """One announced target: exactly one of ``ip``, ``cidr``, ``host``, ``url``, ``domain``.

    ``nameservers`` (domains only) names the in-scope name servers the dns probe asks.
    """

    model_config = STRICT
    ip: IPLiteral | None = None
    cidr: NetworkLiteral | None = None
    host: str | None = None
    url: str | None = None
    domain: str | None = None
    nameservers: tuple[IPLiteral, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("a mapping with one of ip, cidr, host, url or domain is expected")
        given = [k for k in _KINDS if k in data]
        if len(given) != 1:
            raise ValueError(
                f"exactly one of ip, cidr, host, url, domain is expected (found {given or 'none'})"
            )
        if "nameservers" in data and given[0] != "domain":
            raise ValueError("nameservers belongs to domain targets only")
        return data

    @field_validator("host", "domain")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else normalise_host(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("only http:// and https:// URLs can be announced")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.username or parts.password:
            raise ValueError("credentials in URLs are not allowed")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the URL's port is not a number in 1..65535") from None
        host = parts.hostname
        try:
            from orchestrator.intake._types import strict_ip

            host = strict_ip(host)
            shown = f"[{host}]" if ":" in host else host
        except ValueError:
            host = normalise_host(host)
            shown = host
        netloc = shown if port is None else f"{shown}:{port}"
        return f"{parts.scheme}://{netloc}{parts.path or '/'}"

    @property
    def kind(self) -> str:
        for k in _KINDS:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("unreachable: validated target has a kind")

    @property
    def value(self) -> str:
        return str(getattr(self, self.kind))

    @property
    def hostname(self) -> str | None:
        """The DNS name of host, url and domain targets (``None`` for ip and cidr)."""
        if self.kind in ("host", "domain"):
            return self.value
        if self.kind == "url":
            name = urlsplit(self.value).hostname
            if name is None or _looks_like_ip(name):
                return None
            return name
        return None

    def label(self) -> str:
        return f"{self.kind}:{self.value}"


def _looks_like_ip(text: str) -> bool:
    from orchestrator.intake._types import strict_ip

    try:
        strict_ip(text)
    except ValueError:
        return False
    return True


class AnnouncedWindow(BaseModel):
    """A time window announced to the object, in its own timezone."""

    model_config = STRICT
    start: datetime
    end: datetime
    timezone: TimezoneName

    @model_validator(mode="after")
    def _ordered(self) -> AnnouncedWindow:
        if self.end_utc <= self.start_utc:
            raise ValueError("the window ends before it starts")
        return self

    def _aware(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=ZoneInfo(self.timezone)).astimezone(UTC)
        return value.astimezone(UTC)

    @property
    def start_utc(self) -> datetime:
        return self._aware(self.start)

    @property
    def end_utc(self) -> datetime:
        return self._aware(self.end)

    def contains(self, instant: datetime) -> bool:
        """True when ``instant`` lies in [start, end)."""
        return self.start_utc <= instant < self.end_utc


class Scope(BaseModel):
    """A scope announcement, as loaded from its file."""

    model_config = STRICT
    format: Literal["rio.scope/v1"]
    object: InspectedObject
    contact: Contact
    targets: tuple[Target, ...] = Field(min_length=1)
    excludes: tuple[Target, ...] = ()
    windows: tuple[AnnouncedWindow, ...] = Field(min_length=1)
    sources: tuple[IPLiteral, ...] = Field(min_length=1)

    @field_validator("excludes")
    @classmethod
    def _no_url_excludes(cls, value: tuple[Target, ...]) -> tuple[Target, ...]:
        for t in value:
            if t.kind == "url":
                raise ValueError("excludes name addresses or names, not URLs")
        return value

    def window_at(self, instant: datetime) -> AnnouncedWindow | None:
        for w in self.windows:
            if w.contains(instant):
                return w
        return None


def parse_scope(data: bytes, source: str) -> Scope:
    """Parse scope bytes strictly.

    Raises:
        ScopeFileError: naming ``source``, the field and the problem.
    """
    return parse_document(
        data,
        source,
        model=Scope,
        fmt=SCOPE_FORMAT,
        error=ScopeFileError,
        keys="format, object, targets",
    )


def load_scope(path: Path) -> tuple[Scope, bytes]:
    """Read and parse a scope file; returns the scope and the exact bytes announced."""
    data = read_document(path, ScopeFileError)
    return parse_scope(data, str(path)), data


def scope_json_schema() -> str:
    return json.dumps(Scope.model_json_schema(), indent=2, sort_keys=True)
