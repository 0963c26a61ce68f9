"""The access lab (people of every role, notices of two vendors, two runs) for service tests:
the same fixtures as tests/access, imported rather than written again."""

from __future__ import annotations

from tests.access.conftest import lab, template

__all__ = ["lab", "template"]
