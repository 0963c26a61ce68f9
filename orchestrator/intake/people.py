"""Who people are to rio: a role and a registered person, as values (the registry stores them;
this module loads no database code, so a command line can name a role cheaply)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Person", "Role"]


class Role(enum.StrEnum):
    """What a person may do in rio."""

    OFFICER = "officer"
    """an officer of the public security organ: announces, signs records, orders rectification"""
    TECHNICIAN = "technician"
    """technical support staff of an entrusted vendor: launches runs, co-signs records"""
    AUDITOR = "auditor"
    """reads ledgers, records and verification results"""
    ADMIN = "admin"
    """manages registries; never signs"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Person:
    id: int
    name: str
    role: Role
    organisation: str
    vendor: str | None
    revoked_at: datetime | None

    def active_at(self, when: datetime) -> bool:
        return self.revoked_at is None or when < self.revoked_at
