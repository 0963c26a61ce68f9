"""rio's exception tree.

Three branches stay apart: *bad input* (a file or argument is wrong; fix it and try again),
*refusal* (rio understood and said no; the rules forbid it), and *failure* (something outside
rio broke: the network, a tool, the database). Calls made in the wrong order are *state* errors.
Probes raise their own branch (``probes.errors.ProbeError``) because the orchestrator imports
probes and never the reverse; it counts as a failure::

    RioError
    +-- InputError                  bad input: names the file/object, the field and what is wrong
    |   +-- ScopeFileError          a scope file is malformed
    |   +-- PolicyFileError         a policy file is malformed
    |   +-- CalendarFileError       an operator working-day calendar file is malformed
    |   +-- RecordFileError         a record, envelope or archive file is malformed
    |   +-- KeyFileError            a key file is missing, unreadable or of the wrong type
    |   +-- NotFoundError           an unknown notice, run, person, vendor, object or key
    |   +-- ConflictError           a name or key id that already exists
    +-- RefusalError                the rules say no
    |   +-- GateRefusalError        the gate refused a probe (carries the Refusal)
    |   +-- ClosureRefusedError     the record lacks the signatures the policy requires
    |   +-- AccessDeniedError       the person's role does not allow this
    |   +-- CalendarRangeError      a date outside the years the working-day calendar covers
    |   +-- RunKilledError          the run was stopped by the kill switch (by whom, why)
    +-- FailureError                something outside rio broke
    |   +-- StoreError              the database failed or refused a write
    |   |   +-- BudgetStoreError    the shared rate-budget store (Redis) is down or failed
    |   +-- ToolError               an external tool is missing or failed (rio doctor)
    |   +-- DecryptionError         wrong key, tampered or moved ciphertext
    |   +-- ResolutionError         a DNS name could not be resolved
    +-- StateError                  a call out of order (e.g. sign a record that is closed)
    |   +-- TransitionError         a run or order asked for a move its state machine forbids
    +-- VerificationError           a proof, checkpoint or signature does not verify

    probes.errors.ProbeError        (failure branch of the probes package)

Every message names the object it is about, e.g.
``scopes/acme.yaml: targets[3].cidr: '10.0.0.0/33' is not a network``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDeniedError",
    "BudgetStoreError",
    "CalendarFileError",
    "CalendarRangeError",
    "ClosureRefusedError",
    "ConflictError",
    "DecryptionError",
    "FailureError",
    "GateRefusalError",
    "InputError",
    "KeyFileError",
    "NotFoundError",
    "PolicyFileError",
    "RecordFileError",
    "RefusalError",
    "ResolutionError",
    "RioError",
    "RunKilledError",
    "ScopeFileError",
    "StateError",
    "StoreError",
    "ToolError",
    "TransitionError",
    "VerificationError",
]


class RioError(Exception):
    """Root of every error rio raises on purpose."""

    exit_code = 1


class InputError(RioError):
    """Bad input: a file, argument or name is wrong."""

    exit_code = 2


class _FileError(InputError):
    """An input file is malformed; the message reads ``FILE: path.to.field: what is wrong``."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(f"{where}{problem}")


class ScopeFileError(_FileError):
    """A scope file is malformed."""


class PolicyFileError(_FileError):
    """A policy file is malformed."""


class CalendarFileError(_FileError):
    """An operator working-day calendar file is malformed."""


class RecordFileError(_FileError):
    """A record, envelope or archive file is malformed."""


class KeyFileError(InputError):
    """A key file is missing, unreadable or holds the wrong kind of key."""


class NotFoundError(InputError):
    """An unknown notice, run, person, vendor, object or key."""


class ConflictError(InputError):
    """A name or key id that already exists."""


class RefusalError(RioError):
    """The rules forbid what was asked."""

    exit_code = 3


class GateRefusalError(RefusalError):
    """The gate refused a probe."""

    def __init__(self, refusal: Any) -> None:
        self.refusal = refusal
        super().__init__(str(refusal))


class ClosureRefusedError(RefusalError):
    """The record lacks the signatures its policy requires."""


class AccessDeniedError(RefusalError):
    """The person's role does not allow this action."""


class CalendarRangeError(RefusalError):
    """The date lies outside the years the working-day calendar covers."""


class FailureError(RioError):
    """Something outside rio broke."""

    exit_code = 4


class StoreError(FailureError):
    """The database failed or refused a write."""


class RunKilledError(RefusalError):
    """The run was stopped by the kill switch; the message says by whom and why."""


class BudgetStoreError(StoreError):
    """The shared rate-budget store (Redis) is down or failed: no probe may be granted."""


class ToolError(FailureError):
    """An external tool is missing or failed."""


class DecryptionError(FailureError):
    """Wrong key, tampered ciphertext, or a ciphertext moved to another row."""


class StateError(RioError):
    """A call out of order for the object's current state."""

    exit_code = 5


class TransitionError(StateError):
    """A run (or rectification order) asked to move where its transition table does not go."""


class VerificationError(RioError):
    """A proof, checkpoint or signature does not verify."""

    exit_code = 6


class ResolutionError(FailureError):
    """A DNS name could not be resolved (NXDOMAIN, no answer, timeout, server failure)."""
