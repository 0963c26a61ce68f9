"""``rio report transparency``: what an inspected object is told about the probes it received.

Art. 5 and 7 of Order 151: the object may supervise the inspection. The report lists the
announced scope and windows, the scanner's source addresses and every probe that touched the
object's announced networks (time, address, port, probe, outcome class), each with its intent
leaf and an RFC 9162 inclusion proof against the final signed checkpoint, so the object can
check, with :func:`verify_transparency_report` and the orchestrator's public key, that what it
was shown is what the log holds. Nothing about other objects and no evidence is included.

The report is JSON for tools, or a page for people (HTML or PDF, Chinese and English, every value
escaped) that also names the inspecting organ and vendor, lists the findings on the object's own
hosts and the rectification items naming them, says what each outcome means and how to check
the proofs.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from orchestrator.audit._archive import (
    CHECKPOINTS,
    FINDINGS,
    KEYS,
    MANIFEST,
    NOTICE,
    RECTIFICATION,
    SCOPE,
    Archive,
)
from orchestrator.audit._docchecks import parse_manifest
from orchestrator.audit._docs import parse_checkpoints, parse_keys, parse_notice
from orchestrator.audit._tree import RangeRoots, inclusion_ranges
from orchestrator.errors import InputError, KeyFileError, NotFoundError, VerificationError
from orchestrator.gate.decide import address_scope
from orchestrator.intake.keys import key_id, load_public_key, public_pem
from orchestrator.intake.scope import parse_scope
from orchestrator.ledger.checkpoint import run_origin, verify_checkpoint
from orchestrator.ledger.leaves import parse_leaf
from orchestrator.ledger.merkle import leaf_hash, verify_inclusion
from orchestrator.record.canonical import loads_strict
from orchestrator.timefmt import format_instant

__all__ = [
    "REPORT_FORMAT",
    "TransparencyVerdict",
    "build_transparency_report",
    "render_html",
    "verify_transparency_report",
    "write_transparency_report",
]

REPORT_FORMAT = "rio.transparency/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_transparency_report(path: Path, object_id: str) -> dict[str, Any]:
    """Build the transparency report of one object from an archive.

    Args:
        path: The archive.
        object_id: The inspected object's id (the notice's ``object``).

    Returns:
        The report as a JSON-ready dict.

    Raises:
        NotFoundError: The archive is about another object.
        VerificationError: The final checkpoint's signature, or the root over the leaves, does
            not verify (run ``rio audit verify``): no proof is handed out against it.
        InputError: The archive is unreadable or malformed.
    """
    with Archive(path) as archive:
        manifest = parse_manifest(archive.read(MANIFEST))
        notice = parse_notice(archive.read(NOTICE))
        if notice.object != object_id:
            raise NotFoundError(
                f"{path}: the archive is about object {notice.object!r}, not {object_id!r}"
            )
        scope = parse_scope(archive.read(SCOPE), SCOPE)
        keys = parse_keys(archive.read(KEYS))
        checkpoints = parse_checkpoints(archive.read(CHECKPOINTS))
        if not checkpoints:
            raise VerificationError(f"{path}: no checkpoint to prove probes against")
        final_note = checkpoints[-1].note
        final = verify_checkpoint(
            final_note,
            keys.orchestrator_key,
            keys.orchestrator_name,
            origin=run_origin(manifest.run),
        )
        includes = address_scope(scope).includes

        def ours(ip: Any) -> bool:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return False
            return any(address.version == net.version and address in net for net in includes)

        probes: dict[int, dict[str, Any]] = {}
        for line in archive.leaf_lines():
            if line.index >= final.size:
                break
            if line.problem is not None:
                raise VerificationError(f"{path}: leaf {line.index}: {line.problem}")
            leaf = parse_leaf(line.raw, source=f"leaf {line.index}")
            if leaf.kind == "intent" and ours(leaf.data.get("ip")):
                probes[leaf.seq] = {
                    "seq": leaf.seq,
                    "at": leaf.at,
                    "ip": leaf.data.get("ip"),
                    "port": leaf.data.get("port"),
                    "ports": leaf.data.get("ports") or [],
                    "probe": leaf.data.get("probe"),
                    "outcome": None,
                    "leaf": line.raw.decode("utf-8"),
                }
            elif leaf.kind == "outcome" and leaf.data.get("intent") in probes:
                # Only the outcome class: the evidence and findings digests stay out.
                probes[leaf.data["intent"]]["outcome"] = leaf.data.get("outcome")
        findings, orders = _findings_and_orders(archive, ours)
        plans = {seq: inclusion_ranges(seq, final.size) for seq in probes}
        roots = RangeRoots([r for plan in plans.values() for r in plan], sizes=[final.size])
        for line in archive.leaf_lines():
            if line.index >= final.size:
                break
            roots.add(leaf_hash(line.raw))
        if roots.tree_root(final.size) != final.root:
            raise VerificationError(f"{path}: the leaves do not match the final signed checkpoint")
        for seq, entry in probes.items():
            proof = roots.proof(plans[seq])
            assert proof is not None  # every range lies inside the final tree, which was read
            entry["proof"] = [_b64(h) for h in proof]
    return {
        "format": REPORT_FORMAT,
        "object": {"id": scope.object.id, "name": scope.object.name},
        "notice": {
            "id": notice.id,
            "announced_at": notice.announced_at.isoformat(),
            "organ": notice.organ,
            "co_inspecting": list(notice.co_inspecting),
            "vendor": notice.vendor,
        },
        "findings": findings,
        "rectifications": orders,
        "scope": {
            "targets": [t.label() for t in scope.targets],
            "excludes": [t.label() for t in scope.excludes],
        },
        "windows": [
            {"start": w.start_utc.isoformat(), "end": w.end_utc.isoformat(), "timezone": w.timezone}
            for w in scope.windows
        ],
        "sources": list(scope.sources),
        "log": {
            "origin": final.origin,
            "size": final.size,
            "root": _b64(final.root),
            "checkpoint": final_note,
            "key_name": keys.orchestrator_name,
            "key_id": keys.orchestrator_key_id,
            "public_pem": public_pem(keys.orchestrator_key),
        },
        "probes": [probes[seq] for seq in sorted(probes)],
    }


def _findings_and_orders(
    archive: Archive, ours: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The findings on the object's own hosts and the rectification orders that name them."""
    from orchestrator.record.findings import record_where

    raw = loads_strict(archive.read(FINDINGS), source=FINDINGS)
    findings: list[dict[str, Any]] = []
    for f in raw if isinstance(raw, list) else []:
        if not isinstance(f, dict) or not ours(f.get("ip")):
            continue
        try:
            where = record_where(f)
        except (KeyError, TypeError, ValueError):
            where = f"{f.get('ip')}:{f.get('port')}"
        findings.append(
            {
                "id": f.get("id"),
                "rule": f.get("rule"),
                "title": f.get("title"),
                "severity": f.get("severity"),
                "where": where,
                "remediation": f.get("remediation"),
            }
        )
    ids = {f["id"] for f in findings}
    raw_orders = loads_strict(archive.read(RECTIFICATION), source=RECTIFICATION)
    orders = [
        {k: o.get(k) for k in ("id", "findings", "deadline", "recheck_due", "state")}
        for o in (raw_orders if isinstance(raw_orders, list) else [])
        if isinstance(o, dict) and ids & set(o.get("findings") or [])
    ]
    return findings, orders


@dataclass(frozen=True, kw_only=True, slots=True)
class TransparencyVerdict:
    """Whether a transparency report's checkpoint and every proof verify; true when they do."""

    ok: bool
    probes: int
    problems: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.ok

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"ok": self.ok, "probes": self.probes, "problems": list(self.problems)}


def verify_transparency_report(
    report: Mapping[str, Any], *, public_key: Ed25519PublicKey | None = None
) -> TransparencyVerdict:
    """Check a transparency report on the object's side.

    Args:
        report: The parsed JSON report.
        public_key: The orchestrator key the object trusts (from the inspecting organ). Without
            it the report's own ``log.public_pem`` is used, which proves only self-consistency.

    Returns:
        The verdict; never raises for a malformed report.
    """
    problems: list[str] = []
    try:
        log = report["log"]
        key = public_key or load_public_key(str(log["public_pem"]).encode("utf-8"))
        if public_key is not None and log.get("key_id") != key_id(public_key):
            problems.append("the report names another orchestrator key")
        cp = verify_checkpoint(str(log["checkpoint"]), key, str(log["key_name"]))
        probes = list(report["probes"])
    except (KeyError, TypeError, KeyFileError, VerificationError) as exc:
        return TransparencyVerdict(ok=False, probes=0, problems=(f"checkpoint: {exc}",))
    for entry in probes:
        try:
            seq = entry["seq"]
            raw = str(entry["leaf"]).encode("utf-8")
            leaf = parse_leaf(raw, source=f"probe {seq}")
            proof = [base64.b64decode(p, validate=True) for p in entry["proof"]]
            stated = (seq, "intent", entry["ip"], entry["at"], entry["probe"])
            if (
                leaf.seq,
                leaf.kind,
                leaf.data.get("ip"),
                leaf.at,
                leaf.data.get("probe"),
            ) != stated:
                problems.append(f"probe {seq}: the leaf does not say what the entry says")
            elif not verify_inclusion(leaf_hash(raw), seq, cp.size, proof, cp.root):
                problems.append(f"probe {seq}: the inclusion proof does not verify")
        except (KeyError, TypeError, ValueError, InputError) as exc:
            problems.append(f"probe entry: malformed ({exc})")
    return TransparencyVerdict(ok=not problems, probes=len(probes), problems=tuple(problems))


_OUTCOME_WORDS = (
    ("ok", "探测完成, 服务作答", "the probe completed and the service answered"),
    ("refused", "连接被拒绝 (端口关闭)", "the connection was refused (port closed)"),
    ("timeout", "在时限内没有回应", "no answer within the time limit"),
    ("unreachable", "地址不可达", "the address could not be reached"),
    ("error", "探测出错, 未得出结论", "the probe failed; no conclusion"),
    ("killed", "检查被人工或自动终止", "the inspection was stopped (kill switch)"),
    ("unknown", "结果未知", "the outcome is not known"),
)


_ORDER_WORDS = (
    ("ordered", "已责令整改, 期限届满后复查", "ordered; re-checked after the deadline"),
    ("applied", "贵方已书面申请提前复查", "you applied in writing for an early re-check"),
    ("resolved", "复查未再发现所列问题", "the re-check found none of the ordered findings"),
    ("unresolved", "复查仍发现部分所列问题", "the re-check still found some ordered findings"),
)


def _local(text: str, zone: ZoneInfo) -> str:
    """An instant as the report writes it (UTC) in the object's stated timezone, ISO 8601."""
    return format_instant(datetime.fromisoformat(text), zone)


def render_html(report: Mapping[str, Any]) -> str:
    """Render a report as one HTML page, Chinese and English; every value is escaped.

    Every time is shown in the timezone the scope states (its first window's), ISO 8601 with
    the offset, as the object's own logs can be compared with it; the JSON keeps UTC.
    """
    from orchestrator.documents._render import render

    zones = [w["timezone"] for w in report["windows"]] or ["UTC"]
    zone = ZoneInfo(zones[0])
    probes = [
        {
            **p,
            "local_at": _local(p["at"], zone),
            "port_text": p["port"] if p["port"] is not None else ",".join(map(str, p["ports"])),
        }
        for p in report["probes"]
    ]
    windows = [
        {
            **w,
            "local_start": _local(w["start"], ZoneInfo(w["timezone"])),
            "local_end": _local(w["end"], ZoneInfo(w["timezone"])),
        }
        for w in report["windows"]
    ]
    notice = {**report["notice"], "announced_local": _local(report["notice"]["announced_at"], zone)}
    view = {**report, "probes": probes, "windows": windows, "notice": notice}
    view.setdefault("findings", [])
    view.setdefault("rectifications", [])
    return render(
        "transparency.html",
        r=view,
        timezone=zone.key,
        outcome_words=_OUTCOME_WORDS,
        order_words=_ORDER_WORDS,
        footer=f"rio transparency {report['notice']['id']}",
    )


def write_transparency_report(report: Mapping[str, Any], out: Path) -> None:
    """Write a report as HTML (``.html``/``.htm``), PDF (``.pdf``) or JSON, by the file's suffix.

    Raises:
        InputError: Another suffix.
    """
    suffix = out.suffix.lower()
    if suffix in (".html", ".htm"):
        out.write_text(render_html(report), encoding="utf-8")
    elif suffix == ".pdf":
        from orchestrator.documents._render import Format, to_bytes, write_document

        write_document(to_bytes(render_html(report), Format.PDF), out)
    elif suffix == ".json":
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        raise InputError(f"{out}: write the report to a .html, .pdf or .json file")
