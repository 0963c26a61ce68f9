"""One frozen settings object, read once from ``RIO_*`` environment variables.

Nothing reads the environment at import time; the CLI calls :func:`load_settings` once and passes
the result down. Every value has an embedded default that needs nothing installed beyond Python
(SQLite in ``RIO_HOME``, in-memory rate budgets, the in-process executor).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.errors import InputError

__all__ = ["Settings", "load_settings"]

_EXECUTORS = ("local", "celery")
# A permit key shorter than this is refused: it MACs every permit a worker acts on.
_PERMIT_KEY_MIN = 32
# A bare mailbox for the From header: no spaces, angle brackets or line breaks can ride along.
_MAILBOX = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """rio's configuration.

    Attributes:
        home: folder for the SQLite database, the orchestrator's own key and the master key.
        database_url: SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).
        budget_url: rate-budget storage, ``memory://`` or ``redis://host:port/db``.
        executor: ``local`` (asyncio in this process) or ``celery`` (``rio worker`` processes).
        timezone: default timezone for windows and dates.
        master_key_file: file holding the evidence master key.
        master_key_env: the master key given directly (base64), wins over the file.
        nmap_path: nmap binary, ``None`` to look it up on PATH.
        dns_nameservers: resolvers the gate pins host targets with; empty = system config.
        dns_port: port of those resolvers and of the dns probe's name servers.
        checkpoint_every: write a signed checkpoint every N leaves.
        checkpoint_seconds: ... or every T seconds, whichever comes first.
        contact: the mailbox of whoever runs the inspections (organ or vendor), sent as the
            HTTP ``From`` header so a defender reading their logs can write back; ``None`` =
            no ``From`` header (the User-Agent still names who scans under which notice).
        versions_file: a versions file (``rio.versions/v1``) replacing the packaged one.
        broker_url: the Celery broker (``redis://...`` or ``amqp://...``), ``RIO_BROKER_URL``.
        state_url: Redis for the workers' claims, answers and kill broadcast (``RIO_STATE_URL``,
            default: the broker when it is Redis).
        celery_queue: the probe queue; also the namespace of the workers' Redis keys.
        celery_visibility_seconds: Redis broker only: an unacknowledged task is delivered again
            after this long.
        egress: ``celery`` only: the scanner source addresses this deployment's workers are
            pinned to (``RIO_EGRESS``, comma-separated; ``rio worker --egress ADDR``). Each probe
            goes to the queue of one of them that its notice announces, round robin; a probe
            whose notice announces none of them is not sent. Empty: workers are not pinned.
        permit_key: the key wire permits are MACed with (``RIO_PERMIT_KEY``, >= 32 characters),
            shared by the orchestrator and its workers; required for ``celery``.
        public_base_url: where the public notice check (``rio serve --api``) is reached from
            outside, e.g. ``https://rio.psb.example`` (``RIO_PUBLIC_BASE_URL``); the notice
            letter and every HTTP probe's User-Agent then point to ``BASE/verify/NOTICE``.
            ``None``: they name the notice only.
        key_file: the operator's private key (``RIO_KEY_FILE``), used when a command is not
            given ``--key``; ``None`` = none.
        calendar_file: a working-day calendar file (``RIO_CALENDAR_FILE``) read beside the
            package's and the home's added years; ``None`` = none.
    """

    home: Path
    database_url: str
    budget_url: str = "memory://"
    executor: str = "local"
    timezone: str = "Asia/Shanghai"
    master_key_file: Path
    master_key_env: str | None = field(default=None, repr=False)
    nmap_path: str | None = None
    dns_nameservers: tuple[str, ...] = ()
    dns_port: int = 53
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 10.0
    contact: str | None = None
    versions_file: Path | None = None
    broker_url: str = ""
    state_url: str = ""
    celery_queue: str = "rio-probes"
    celery_visibility_seconds: int = 300
    permit_key: str | None = field(default=None, repr=False)
    public_base_url: str | None = None
    egress: tuple[str, ...] = ()
    key_file: Path | None = None
    calendar_file: Path | None = None

    def verify_url(self, notice_id: str) -> str | None:
        """The public check of one notice (``BASE/verify/NOTICE``), if a base URL is set."""
        if self.public_base_url is None:
            return None
        return f"{self.public_base_url}/verify/{notice_id}"

    def require_permit_key(self) -> bytes:
        """The permit key as bytes.

        Raises:
            InputError: ``RIO_PERMIT_KEY`` is not set.
        """
        if not self.permit_key:
            raise InputError("RIO_PERMIT_KEY: not set; workers and the orchestrator must share it")
        return self.permit_key.encode()

    @property
    def orchestrator_key_file(self) -> Path:
        """The orchestrator's own Ed25519 key, which signs ledger checkpoints."""
        return self.home / "orchestrator.key"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(
    env: Mapping[str, str] | None = None, *, defaults: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from ``RIO_*`` variables (``os.environ`` unless given).

    Args:
        env: The variables (default: ``os.environ``).
        defaults: Values for variables ``env`` does not set, where a front end's defaults
            differ from rio's (``rio demo`` checkpoints more often).

    Raises:
        InputError: a variable has an impossible value; the message names it.
    """
    source: Mapping[str, str] = os.environ if env is None else env
    if defaults:
        source = {**defaults, **source}
    home = Path(source.get("RIO_HOME", ".rio")).expanduser()
    database_url = source.get("RIO_DATABASE_URL") or f"sqlite:///{(home / 'rio.db').as_posix()}"
    if database_url.startswith("postgres://"):
        # Heroku-style URLs: SQLAlchemy knows no "postgres" dialect; say so instead of its
        # "Can't load plugin" (the fix is one word).
        raise InputError(
            "RIO_DATABASE_URL: scheme 'postgres://' is not supported; write "
            "postgresql+psycopg://"
            + database_url.removeprefix("postgres://").split("@")[-1]
            + " (with your user and password before the @)"
        )
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    budget_url = source.get("RIO_BUDGET_URL", "memory://")
    if not budget_url.startswith(("memory://", "redis://")):
        raise InputError(f"RIO_BUDGET_URL: {budget_url!r} is neither memory:// nor redis://...")
    executor = source.get("RIO_EXECUTOR", "local")
    if executor not in _EXECUTORS:
        raise InputError(f"RIO_EXECUTOR: {executor!r} is not one of {', '.join(_EXECUTORS)}")
    timezone = source.get("RIO_TIMEZONE", "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"RIO_TIMEZONE: {timezone!r} is not a known timezone") from None
    nameservers = tuple(s for s in source.get("RIO_DNS_NAMESERVERS", "").split(",") if s.strip())
    contact = source.get("RIO_CONTACT") or None
    if contact is not None and not _MAILBOX.fullmatch(contact):
        raise InputError(f"RIO_CONTACT: {contact!r} is not a mail address like soc@vendor.example")
    broker_url = source.get("RIO_BROKER_URL", "")
    if broker_url and not broker_url.startswith(("redis://", "amqp://", "pyamqp://")):
        raise InputError(f"RIO_BROKER_URL: {broker_url!r} is neither redis:// nor amqp://...")
    state_url = source.get("RIO_STATE_URL") or (
        broker_url if broker_url.startswith("redis://") else ""
    )
    if state_url and not state_url.startswith("redis://"):
        raise InputError(f"RIO_STATE_URL: {state_url!r} is not redis://...")
    permit_key = source.get("RIO_PERMIT_KEY") or None
    if permit_key is not None and len(permit_key) < _PERMIT_KEY_MIN:
        raise InputError(f"RIO_PERMIT_KEY: shorter than {_PERMIT_KEY_MIN} characters")
    if executor == "celery":
        if not broker_url:
            raise InputError("RIO_EXECUTOR=celery needs RIO_BROKER_URL (redis:// or amqp://)")
        if not state_url:
            raise InputError(
                "RIO_EXECUTOR=celery needs RIO_STATE_URL (redis://) with an amqp broker"
            )
        if permit_key is None:
            raise InputError("RIO_EXECUTOR=celery needs RIO_PERMIT_KEY (shared with the workers)")
    egress = _egress(source.get("RIO_EGRESS", ""))
    if egress and executor != "celery":
        raise InputError("RIO_EGRESS: pinned egresses are for RIO_EXECUTOR=celery workers")
    return Settings(
        home=home,
        database_url=database_url,
        budget_url=budget_url,
        executor=executor,
        timezone=timezone,
        master_key_file=Path(source.get("RIO_MASTER_KEY_FILE", str(home / "master.key"))),
        master_key_env=source.get("RIO_MASTER_KEY") or None,
        nmap_path=source.get("RIO_NMAP") or None,
        dns_nameservers=tuple(s.strip() for s in nameservers),
        dns_port=_int(source, "RIO_DNS_PORT", 53, 1, 65535),
        checkpoint_every=_int(source, "RIO_CHECKPOINT_EVERY", 1000, 1, 10_000_000),
        checkpoint_seconds=float(_int(source, "RIO_CHECKPOINT_SECONDS", 10, 1, 86_400)),
        contact=contact,
        versions_file=Path(source["RIO_VERSIONS_FILE"])
        if source.get("RIO_VERSIONS_FILE")
        else None,
        broker_url=broker_url,
        state_url=state_url,
        celery_queue=source.get("RIO_CELERY_QUEUE") or "rio-probes",
        celery_visibility_seconds=_int(source, "RIO_CELERY_VISIBILITY", 300, 5, 86_400),
        permit_key=permit_key,
        public_base_url=_public_base_url(source.get("RIO_PUBLIC_BASE_URL") or None),
        egress=egress,
        key_file=_path(source, "RIO_KEY_FILE"),
        calendar_file=_path(source, "RIO_CALENDAR_FILE"),
    )


def _egress(raw: str) -> tuple[str, ...]:
    """``RIO_EGRESS``: canonical IP addresses, in the order given, each once."""
    out: list[str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            address = str(ipaddress.ip_address(part))
        except ValueError:
            raise InputError(f"RIO_EGRESS: {part!r} is not an IP address") from None
        if address not in out:
            out.append(address)
    return tuple(out)


# What a base URL may hold: it is written into a User-Agent comment, where parentheses,
# backslashes, ';' and spaces would end or split the comment.
_URL_CHARS = re.compile(r"[A-Za-z0-9._~:/%-]+")


def _public_base_url(raw: str | None) -> str | None:
    """``RIO_PUBLIC_BASE_URL`` checked: http(s), a host, no query or fragment; no trailing /."""
    if raw is None:
        return None
    from urllib.parse import urlsplit

    url = raw.rstrip("/")
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or not _URL_CHARS.fullmatch(url)
    ):
        raise InputError(
            f"RIO_PUBLIC_BASE_URL: {raw!r} is not a base URL like https://rio.psb.example "
            "(http or https, a host, an optional path; no query, fragment, user or spaces)"
        )
    return url


def _path(source: Mapping[str, str], name: str) -> Path | None:
    """A file named by a variable (``~`` expanded), ``None`` when unset or blank."""
    raw = source.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def _int(source: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise InputError(f"{name}: {value} is outside {low}..{high}")
    return value
