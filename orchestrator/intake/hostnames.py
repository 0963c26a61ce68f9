"""DNS host name normalisation: the one implementation, used by the scope loader and the gate.

The loader normalises announced names and excludes with it; the gate normalises every request's
names with it (``gate/decide.py`` ``normalise_request``), and so does the resolver. One function,
so that ``ADMIN.lab.test.`` and ``admin.lab.test`` can never be two names in one place and one
name in another.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["normalise_host"]

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# WHATWG URL parsers read a host whose last label is a number as an IPv4 address
# (``http://2130706433/`` is 127.0.0.1), so such a "name" is an address in disguise.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def normalise_host(name: str) -> str:
    """Normalise a DNS host name: IDN to punycode, lower case, trailing dot removed, checked.

    Internationalised names are converted with IDNA 2008 (UTS #46 mapping) when the ``idna``
    package is installed, else with Python's IDNA 2003 codec.

    Args:
        name: a host name such as ``WWW.Example.COM.`` or ``bücher.example``.

    Returns:
        The ASCII form, e.g. ``www.example.com`` or ``xn--bcher-kva.example``.

    Raises:
        ValueError: the name is empty, too long, has an invalid label, or is an IP literal
            (or a numeric form a URL parser would read as one).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{name!r} is not a host name: it is empty")
    if name != name.strip():
        raise ValueError(f"{name!r} is not a host name: remove the surrounding spaces")
    ascii_name = name if name.isascii() else _idna_encode(name)
    ascii_name = ascii_name.lower()
    if ascii_name.endswith("."):
        ascii_name = ascii_name[:-1]
    if _is_ip_literal(ascii_name) or _is_ip_literal(name):
        raise ValueError(f"{name!r} is an IP address, not a host name; give addresses as addresses")
    if not ascii_name:
        raise ValueError(f"{name!r} is not a host name: it is empty")
    if len(ascii_name) > 253:
        raise ValueError(f"{name!r} is not a host name: longer than 253 characters")
    labels = ascii_name.split(".")
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            raise ValueError(
                f"{name!r} is not a host name: label {label!r} must be 1-63 letters, digits "
                "or hyphens, not starting or ending with a hyphen"
            )
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise ValueError(
            f"{name!r} is not a host name: its last label is numeric, so URL parsers would "
            "read it as an IPv4 address"
        )
    return ascii_name


def _idna_encode(name: str) -> str:
    try:
        import idna
    except ImportError:  # pragma: no cover - httpx depends on idna, so it is normally present
        try:
            return name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"{name!r} is not a valid internationalised name: {exc}") from exc
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{name!r} is not a valid internationalised name: {exc}") from exc


def _is_ip_literal(text: str) -> bool:
    candidate = text.strip().strip("[]").split("%", 1)[0]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True
