"""How a document is written (kept apart from the renderer, so a command line that names it
loads no template engine)."""

from __future__ import annotations

import enum

__all__ = ["Format"]


class Format(enum.StrEnum):
    """How a document is written."""

    HTML = "html"
    """one self-contained HTML page (every value escaped)"""
    PDF = "pdf"
    """the same page laid out as PDF (A4), for paper files"""
