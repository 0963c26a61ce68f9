"""The verdict of an offline audit: one named result per check, and the first offence of each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CHECK_NAMES", "AuditReport", "CheckResult", "Offence"]

CHECK_NAMES = (
    "trust",
    "manifest",
    "merkle",
    "checkpoint-signatures",
    "consistency",
    "sequence",
    "outcomes",
    "scope",
    "windows",
    "rates",
    "catalogue",
    "kill",
    "record",
    "findings",
    "documents",
)
"""Every check :func:`~orchestrator.audit.verify.verify_archive` runs, in report order."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Offence:
    """The first thing a check found wrong.

    Attributes:
        subject: What offends, e.g. ``"leaf 17"``, ``"signature 2 (keyid 3f2a...)"``,
            ``"member scope.yaml"``, ``"checkpoint 3"``.
        reason: One sentence saying what is wrong with it.
        seq: The leaf's sequence number when the subject is a leaf (its line number in
            ``ledger/leaves.jsonl``), else ``None``.
    """

    subject: str
    reason: str
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"subject": self.subject, "reason": self.reason, "seq": self.seq}


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    """One check's verdict; true when it passed.

    Attributes:
        name: One of :data:`CHECK_NAMES`.
        ok: Whether the check passed.
        detail: What was checked and, on failure, how many offences were found.
        first_offence: The first offence (``None`` when the check passed).
    """

    name: str
    ok: bool
    detail: str
    first_offence: Offence | None = None

    def __bool__(self) -> bool:
        return self.ok

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "first_offence": None if self.first_offence is None else self.first_offence.to_json(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditReport:
    """What ``rio audit verify`` found; true only when every check passed, ``trust`` included
    (an archive verified against no trust anchor is at best self-consistent).

    Attributes:
        archive: The archive's path as given.
        run: The run id the manifest names (``None`` when the manifest is unreadable).
        leaves: How many leaf lines were read.
        checks: One result per check, in :data:`CHECK_NAMES` order.
    """

    archive: str
    run: str | None
    leaves: int
    checks: tuple[CheckResult, ...]

    def __bool__(self) -> bool:
        return all(self.checks)

    @property
    def self_consistent(self) -> bool:
        """Every check but ``trust`` passed: intact, but maybe not made by whom one trusts."""
        return all(c.ok for c in self.checks if c.name != "trust")

    @property
    def verdict(self) -> str:
        """``verified``, ``self-consistent, not authenticated`` or ``NOT verified``."""
        if self:
            return "verified"
        if self.self_consistent:
            return "self-consistent, not authenticated"
        return "NOT verified"

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The checks that did not pass."""
        return tuple(c for c in self.checks if not c.ok)

    def check(self, name: str) -> CheckResult:
        """Return the result of the check called ``name``.

        Raises:
            KeyError: No check has that name.
        """
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_json(self) -> str:
        """Return the report as indented JSON text."""
        doc = {
            "archive": self.archive,
            "run": self.run,
            "leaves": self.leaves,
            "ok": bool(self),
            "verdict": self.verdict,
            "checks": [c.to_json() for c in self.checks],
        }
        return json.dumps(doc, indent=2, ensure_ascii=False)
