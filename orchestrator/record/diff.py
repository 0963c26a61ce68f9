"""What changed between two versions of a record: the changes a reader checks before signing.

A new version voids every earlier signature (:mod:`orchestrator.record.assemble`), so a signer
who reviewed version 1 wants to know what version 2 changed, not to re-read the whole record.
The diff walks both documents: objects key by key, and lists of objects that carry an identity
(``id``, or ``finding`` in the conclusions) element by element, matched on it, so an added
order reads ``rectifications[id=3]: added`` rather than "the list differs". Any other list is
compared as one value. ``version`` and ``created_at`` are bookkeeping of every version and are
left out: two versions whose diff is empty say the same.

Paths are dotted keys with ``[KEY=VALUE]`` for a matched list element, e.g.
``conclusions.violations[finding=R-1-F2].rectification``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BOOKKEEPING", "ChangeKind", "RecordChange", "RecordDiff", "diff_documents"]

BOOKKEEPING = frozenset({"version", "created_at"})
"""Top-level fields every version has its own value of."""

_IDENTITY = ("id", "finding")
"""Keys that name a list element, in the order they are tried."""


class ChangeKind(enum.StrEnum):
    """How one path differs."""

    ADDED = "added"
    """Only the newer version has it."""
    REMOVED = "removed"
    """Only the older version has it."""
    CHANGED = "changed"
    """Both have it, with different values."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordChange:
    """One difference: where, how, and the values on each side (``None`` where absent)."""

    path: str
    kind: ChangeKind
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordDiff:
    """The changes from version ``since`` to version ``version`` of a run's record
    (``since`` is ``None`` for version 1: there is nothing before it)."""

    run_id: str
    version: int
    since: int | None
    changes: tuple[RecordChange, ...]

    def __bool__(self) -> bool:
        """True when something changed."""
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "version": self.version,
            "since": self.since,
            "changes": [c.to_json() for c in self.changes],
        }


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _identity(old: Sequence[Any], new: Sequence[Any]) -> str | None:
    """The key every element of both lists carries, with a scalar value distinct within each
    list, if any: the elements are then matched on it."""
    items = [*old, *new]
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    for key in _IDENTITY:
        if all(_scalar(i.get(key)) for i in items) and all(
            len({i[key] for i in side}) == len(side) for side in (old, new)
        ):
            return key
    return None


def _walk(path: str, old: Any, new: Any, out: list[RecordChange]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(RecordChange(path=sub, kind=ChangeKind.REMOVED, before=old[key]))
            elif key not in old:
                out.append(RecordChange(path=sub, kind=ChangeKind.ADDED, after=new[key]))
            else:
                _walk(sub, old[key], new[key], out)
        return
    if isinstance(old, list) and isinstance(new, list) and old != new:
        key = _identity(old, new)
        if key is not None:
            before = {i[key]: i for i in old}
            after = {i[key]: i for i in new}
            # Older order first, then what the newer version adds, in its order.
            for ident in [*before, *(i for i in after if i not in before)]:
                sub = f"{path}[{key}={ident}]"
                if ident not in after:
                    out.append(
                        RecordChange(path=sub, kind=ChangeKind.REMOVED, before=before[ident])
                    )
                elif ident not in before:
                    out.append(RecordChange(path=sub, kind=ChangeKind.ADDED, after=after[ident]))
                else:
                    _walk(sub, before[ident], after[ident], out)
            kept_old = [i for i in before if i in after]
            kept_new = [i for i in after if i in before]
            if kept_old != kept_new:  # the same elements, listed in another order
                out.append(
                    RecordChange(
                        path=f"{path}[*].{key}",
                        kind=ChangeKind.CHANGED,
                        before=kept_old,
                        after=kept_new,
                    )
                )
            return
    if old != new or type(old) is not type(new):
        out.append(RecordChange(path=path, kind=ChangeKind.CHANGED, before=old, after=new))


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[RecordChange, ...]:
    """The changes from record document ``old`` to ``new`` (bookkeeping fields left out).

    Args:
        old: The older version's parsed document.
        new: The newer version's parsed document.

    Returns:
        One change per differing path, in document order (keys sorted, as the canonical
        form sorts them).
    """
    out: list[RecordChange] = []
    _walk(
        "",
        {k: v for k, v in old.items() if k not in BOOKKEEPING},
        {k: v for k, v in new.items() if k not in BOOKKEEPING},
        out,
    )
    return tuple(out)
