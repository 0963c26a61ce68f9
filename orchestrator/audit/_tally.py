"""Counting a check's offences while keeping only the first one."""

from __future__ import annotations

from orchestrator.audit._report import CheckResult, Offence

__all__ = ["Tally", "not_run"]


class Tally:
    """Collects the offences of one check; remembers the first and counts the rest."""

    __slots__ = ("count", "first", "name")

    def __init__(self, name: str) -> None:
        """Start an empty tally for the check called ``name``."""
        self.name = name
        self.count = 0
        self.first: Offence | None = None

    def offend(self, subject: str, reason: str, seq: int | None = None) -> None:
        """Record one offence."""
        self.count += 1
        if self.first is None:
            self.first = Offence(subject=subject, reason=reason, seq=seq)

    def leaf(self, seq: int, reason: str) -> None:
        """Record an offence by leaf ``seq``."""
        self.offend(f"leaf {seq}", reason, seq)

    def result(self, passed: str) -> CheckResult:
        """Return the verdict: ``passed`` as the detail when clean, else the offence count."""
        if self.first is None:
            return CheckResult(name=self.name, ok=True, detail=passed)
        plural = "" if self.count == 1 else "s"
        return CheckResult(
            name=self.name,
            ok=False,
            detail=f"{self.count} offence{plural}; first: {self.first}",
            first_offence=self.first,
        )


def not_run(name: str, why: str) -> CheckResult:
    """A check that could not run counts as failed: nothing unverified passes."""
    return CheckResult(
        name=name,
        ok=False,
        detail=f"could not run: {why}",
        first_offence=Offence(subject="archive", reason=why),
    )
