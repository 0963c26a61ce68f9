"""What Alembic compares: our models, not APScheduler's own job-store tables."""

from __future__ import annotations

__all__ = ["include_object"]


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "table" and name is not None and name.startswith("apscheduler"))
