"""The findings export's formats, apart from their writers (:mod:`orchestrator.record.export`),
so the command line can name them in its help without loading them."""

from __future__ import annotations

__all__ = ["FORMATS"]

FORMATS: tuple[str, ...] = ("json", "csv", "sarif", "html")
