"""One renderer for every document: autoescaped templates, HTML or PDF, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from orchestrator.documents._format import Format
from orchestrator.errors import InputError, StoreError, ToolError
from orchestrator.store.files import write_atomic

__all__ = ["Format", "render", "to_bytes", "write_document"]


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.documents", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """Render a template from the package's ``templates/`` folder; every value is escaped."""
    return _ENV.get_template(template).render(**context)


def _pdf(page: str) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise ToolError(
            "PDF output needs WeasyPrint and Debian's pango libraries "
            f"(apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-wqy-microhei): {exc}"
        ) from exc
    try:
        data = weasyprint.HTML(string=page).write_pdf()
    except Exception as exc:  # WeasyPrint raises many kinds; none may escape as a traceback
        raise ToolError(f"WeasyPrint could not lay out the document: {exc}") from exc
    if not isinstance(data, bytes):  # pragma: no cover - write_pdf() without a target
        raise ToolError("WeasyPrint returned no PDF")
    return data


def to_bytes(page: str, fmt: Format) -> bytes:
    """The document's bytes in ``fmt``."""
    return page.encode("utf-8") if fmt is Format.HTML else _pdf(page)


def write_document(data: bytes, out: Path) -> None:
    """Write ``data`` to ``out`` atomically (temporary file beside it, then rename).

    Raises:
        InputError: ``out``'s folder does not exist.
        StoreError: The file cannot be written.
    """
    target = out.resolve()
    if not target.parent.is_dir():
        raise InputError(f"{out}: folder {target.parent} does not exist")
    try:
        write_atomic(target, data, mode=0o644)
    except OSError as exc:
        raise StoreError(f"{out}: cannot write the document: {exc.strerror}") from exc
