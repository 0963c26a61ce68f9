"""DNS name normalisation used by the scope loader and the gate."""

from __future__ import annotations

import re

import idna

__all__ = ["normalise_host"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_host(name: str) -> str:
    """Lowercase, IDN to punycode (IDNA 2008), trailing dot removed, labels checked.

    Raises:
        ValueError: the name is not a valid DNS host name, or it is an IP literal.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a DNS name is expected")
    text = name.strip().rstrip(".")
    if any(c.isspace() for c in text) or "/" in text or ":" in text or "@" in text:
        raise ValueError("is not a DNS name")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"is not a valid DNS name ({exc})") from None
    ascii_name = ascii_name.lower()
    if len(ascii_name) > 253:
        raise ValueError("is longer than 253 characters")
    labels = ascii_name.split(".")
    for label in labels:
        if not _LABEL.match(label) and label != "*":
            raise ValueError(f"label {label!r} is not a valid DNS label")
    if all(label.isdigit() for label in labels) or re.fullmatch(r"[0-9.x]+", ascii_name):
        raise ValueError("looks like a numeric address; write IP targets as ip: or cidr:")
    return ascii_name
