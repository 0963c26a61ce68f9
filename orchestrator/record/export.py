"""A run's findings in the forms other tools and people read: JSON, CSV, SARIF 2.1.0, HTML.

Pure functions of the findings (:class:`~orchestrator.record.findings.FindingView`) and a little
about the run; nothing here reads the database or decides who may see what
(:func:`orchestrator.access.findings.export_findings` does both). Evidence appears only when the
caller passes it (decrypted through the logged evidence read); otherwise only the fact that a
finding has evidence does.

- ``json``: ``{"format": "rio.findings-export/v1", "run", "notice", "object", "findings": [...]}``.
- ``csv``: one row per finding, the columns of :data:`CSV_COLUMNS`.
- ``sarif``: SARIF 2.1.0 (OASIS Standard, errata 01): one ``run`` with rio as the driver, one
  ``reportingDescriptor`` per rule (the catalogue's words and references), one ``result`` per
  finding with its endpoint as the artifact URI and its stable key as the partial fingerprint
  ``rioFindingKey/v1`` (so tools that track results across runs use rio's keys).
- ``html``: a findings report a person reads (Jinja2, every value escaped).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from orchestrator import __version__
from orchestrator.errors import InputError
from orchestrator.record._formats import FORMATS
from orchestrator.record.findings import FindingView

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMAT",
    "FORMATS",
    "SARIF_SCHEMA_URI",
    "ExportContext",
    "render",
]

EXPORT_FORMAT = "rio.findings-export/v1"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SARIF_FINGERPRINT = "rioFindingKey/v1"
CSV_COLUMNS: tuple[str, ...] = (
    "key",
    "id",
    "rule",
    "severity",
    "kind",
    "title",
    "uri",
    "target",
    "ip",
    "port",
    "transport",
    "scheme",
    "server_name",
    "path",
    "seen_as",
    "remediation",
    "references",
    "evidence",
)
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning"}


@dataclass(frozen=True, kw_only=True, slots=True)
class ExportContext:
    """What an export says about the run besides its findings."""

    run_id: str
    notice_id: str
    object_id: str
    object_name: str
    state: str
    generated_at: str
    """ISO 8601"""


def _reference_text(ref: Mapping[str, str]) -> str:
    return f"{ref.get('instrument', '')} {ref.get('article', '')} ({ref.get('text_version', '')})"


def _evidence_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json(
    ctx: ExportContext, findings: Sequence[FindingView], evidence: Mapping[str, str]
) -> bytes:
    items = []
    for f in findings:
        item = f.to_json()
        item["uri"] = f.location.uri()
        if f.id in evidence:
            item["evidence"] = _evidence_value(evidence[f.id])
        items.append(item)
    doc = {
        "format": EXPORT_FORMAT,
        "run": ctx.run_id,
        "notice": ctx.notice_id,
        "object": {"id": ctx.object_id, "name": ctx.object_name},
        "state": ctx.state,
        "generated_at": ctx.generated_at,
        "findings": items,
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def _csv(findings: Sequence[FindingView], evidence: Mapping[str, str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for f in findings:
        loc = f.location
        seen = "; ".join(f"{t} ({n})" if n else t for t, n in f.seen_as)
        writer.writerow(
            [
                f.key,
                f.id,
                f.rule,
                f.severity,
                f.kind,
                f.title,
                loc.uri(),
                loc.target,
                loc.ip,
                "" if loc.port is None else loc.port,
                loc.transport,
                loc.scheme or "",
                loc.server_name or "",
                loc.path or "",
                seen,
                f.remediation,
                "; ".join(_reference_text(r) for r in f.refs),
                evidence.get(f.id, ""),
            ]
        )
    return out.getvalue().encode("utf-8")


def _sarif(
    ctx: ExportContext, findings: Sequence[FindingView], evidence: Mapping[str, str]
) -> bytes:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for f in findings:
        if f.rule in index:
            continue
        index[f.rule] = len(rules)
        rules.append(
            {
                "id": f.rule,
                "shortDescription": {"text": f.title},
                "help": {"text": f.remediation},
                "defaultConfiguration": {"level": _SARIF_LEVEL.get(f.severity, "note")},
                "properties": {
                    "severity": f.severity,
                    "kind": f.kind,
                    "references": [dict(r) for r in f.refs],
                },
            }
        )
    results = []
    for f in findings:
        properties: dict[str, Any] = {
            "finding": f.id,
            "severity": f.severity,
            "location": f.location.to_json(),
            "seenAs": [{"target": t, "serverName": n} for t, n in f.seen_as],
        }
        if f.id in evidence:
            properties["evidence"] = _evidence_value(evidence[f.id])
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "kind": "fail",
                "level": _SARIF_LEVEL.get(f.severity, "note"),
                "message": {"text": f"{f.title} at {f.where()}"},
                "locations": [
                    {
                        "physicalLocation": {"artifactLocation": {"uri": f.location.uri()}},
                        "logicalLocations": [
                            {"name": t, "kind": "target"}
                            for t in dict.fromkeys(t for t, _ in f.seen_as)
                        ],
                    }
                ],
                "partialFingerprints": {SARIF_FINGERPRINT: f.key},
                "properties": properties,
            }
        )
    doc = {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rio",
                        "fullName": "rio - Remote Inspection Orchestrator",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"rio/{ctx.notice_id}/{ctx.run_id}"},
                "columnKind": "unicodeCodePoints",
                "results": results,
                "properties": {
                    "run": ctx.run_id,
                    "notice": ctx.notice_id,
                    "object": {"id": ctx.object_id, "name": ctx.object_name},
                },
            }
        ],
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.record", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _html(
    ctx: ExportContext, findings: Sequence[FindingView], evidence: Mapping[str, str]
) -> bytes:
    ordered = sorted(findings, key=lambda f: (_SEVERITY_ORDER.get(f.severity, 9), f.rule, f.key))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    template = _ENV.get_template("findings.html.j2")
    text = template.render(
        ctx=ctx,
        findings=ordered,
        counts=sorted(counts.items(), key=lambda kv: _SEVERITY_ORDER.get(kv[0], 9)),
        evidence=evidence,
        reference_text=_reference_text,
        version=__version__,
    )
    return text.encode("utf-8")


def render(
    fmt: str,
    ctx: ExportContext,
    findings: Sequence[FindingView],
    evidence: Mapping[str, str] | None = None,
) -> bytes:
    """The findings of one run in ``fmt`` (one of :data:`FORMATS`).

    Args:
        fmt: ``json``, ``csv``, ``sarif`` or ``html``.
        ctx: the run the findings belong to.
        findings: the findings, in the order they were first seen.
        evidence: decrypted evidence by finding id, for the findings whose evidence was read.

    Raises:
        InputError: an unknown format.
    """
    shown = evidence or {}
    if fmt == "json":
        return _json(ctx, findings, shown)
    if fmt == "csv":
        return _csv(findings, shown)
    if fmt == "sarif":
        return _sarif(ctx, findings, shown)
    if fmt == "html":
        return _html(ctx, findings, shown)
    raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
