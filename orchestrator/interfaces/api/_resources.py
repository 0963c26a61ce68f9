"""The resources behind a login: notices, runs (status, kill, live progress), findings,
evidence, records (view, sign, close) and audit. Each route parses, calls one service, shapes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from orchestrator.access.evidence import read_evidence
from orchestrator.access.findings import export_findings, run_findings
from orchestrator.audit import AuditReport
from orchestrator.audit.logview import LogFilter
from orchestrator.documents._render import Format
from orchestrator.errors import InputError
from orchestrator.intake._types import parse_duration
from orchestrator.interfaces.api._auth import Actor, decode_sig
from orchestrator.interfaces.api._context import ApiContext, context
from orchestrator.interfaces.api._problems import Problem
from orchestrator.record.dsse import Signature
from orchestrator.services import access as access_service
from orchestrator.services import audit as audit_service
from orchestrator.services import notices as notice_service
from orchestrator.services import records as record_service
from orchestrator.services import runs as run_service
from orchestrator.services import transparency as transparency_service
from orchestrator.services.runs import RunStatus

__all__ = ["audit_out", "record_out", "router", "run_out"]

router = APIRouter(prefix="/api/v1")
Ctx = Annotated[ApiContext, Depends(context)]


class NoticeOut(BaseModel):
    id: str
    object: str
    vendor: str | None
    organ: str | None
    announced_at: datetime
    lead_time_met_at: datetime
    sources: list[str]
    scope_sha256: str
    policy_sha256: str


class RunOut(BaseModel):
    id: str
    notice_id: str
    state: str
    pause_reason: str | None
    planned: int
    done: int
    refused: int
    failed: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    killed_by: str | None
    kill_reason: str | None
    finished: bool


class KillIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class SignatureOut(BaseModel):
    person: str
    role: str
    key_id: str
    signed_at: datetime
    version: int


class SignoffOut(BaseModel):
    ok: bool
    why: str
    officers_needed: int
    technicians_needed: int
    vendor: str | None
    officers_signed: list[str]
    technicians_signed: list[str]
    missing: list[str]
    ignored: list[str]


class RecordOut(BaseModel):
    run_id: str
    version: int
    payload_type: str
    payload: str = Field(description="Base64 of the canonical record bytes (what is signed).")
    document: dict[str, Any]
    closed_at: datetime | None
    signatures: list[SignatureOut]
    signoff: SignoffOut


class SignatureIn(BaseModel):
    keyid: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    sig: str = Field(min_length=1, max_length=200, description="Base64 Ed25519 DSSE signature.")
    version: int = Field(ge=1, description="The version you reviewed; refused if it moved on.")


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class AuditOut(BaseModel):
    run: str | None
    ok: bool
    leaves: int
    checks: list[CheckOut]


class FindingOut(BaseModel):
    id: str
    key: str
    rule: str
    title: str
    severity: str
    kind: str
    probe: str


class AccessOut(BaseModel):
    at: datetime
    person: str
    action: str
    subject: str
    reason: str
    allowed: bool


def run_out(r: RunStatus) -> RunOut:
    return RunOut(
        id=r.id,
        notice_id=r.notice_id,
        state=r.state,
        pause_reason=r.pause_reason,
        planned=r.planned,
        done=r.done,
        refused=r.refused,
        failed=r.failed,
        created_at=r.created_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        killed_by=r.killed_by,
        kill_reason=r.kill_reason,
        finished=r.finished,
    )


def record_out(v: record_service.RecordView) -> RecordOut:
    st = v.status
    return RecordOut(
        run_id=v.run_id,
        version=v.version,
        payload_type=v.payload_type,
        payload=base64.b64encode(v.payload).decode("ascii"),
        document=v.document,
        closed_at=v.closed_at,
        signatures=[
            SignatureOut(
                person=i.person,
                role=i.role,
                key_id=i.key_id,
                signed_at=i.signed_at,
                version=i.version,
            )
            for i in v.signatures
        ],
        signoff=SignoffOut(
            ok=bool(st),
            why=st.why,
            officers_needed=st.threshold.officers,
            technicians_needed=st.threshold.technicians,
            vendor=st.threshold.vendor,
            officers_signed=list(st.officers_signed),
            technicians_signed=list(st.technicians_signed),
            missing=list(st.missing),
            ignored=list(st.ignored),
        ),
    )


def audit_out(report: AuditReport) -> AuditOut:
    return AuditOut(
        run=report.run,
        ok=bool(report),
        leaves=report.leaves,
        checks=[CheckOut(name=c.name, ok=c.ok, detail=c.detail) for c in report.checks],
    )


@router.get("/notices", response_model=list[NoticeOut], tags=["notices"])
def notices(ctx: Ctx, person: Actor) -> list[NoticeOut]:
    """The notices you may see."""
    return [
        NoticeOut(
            id=n.id,
            object=n.object_id,
            vendor=n.vendor,
            organ=n.organ,
            announced_at=n.announced_at,
            lead_time_met_at=n.lead_time_met_at(),
            sources=list(n.sources),
            scope_sha256=n.scope_sha256,
            policy_sha256=n.policy_sha256,
        )
        for n in notice_service.list_notices(ctx.rio, person)
    ]


@router.get("/notices/{notice_id}", response_model=dict[str, Any], tags=["notices"])
def notice(notice_id: str, ctx: Ctx, person: Actor) -> dict[str, Any]:
    """One notice you may see: its announced scope and policy digests, windows, sources."""
    n = notice_service.show_notice(ctx.rio, person, notice_id)
    data: dict[str, Any] = n.to_json()
    data["lead_time_met_at"] = n.lead_time_met_at().isoformat()
    data["targets"] = [t.label() for t in n.scope.targets]
    data["excludes"] = [t.label() for t in n.scope.excludes]
    return data


class AnnounceIn(BaseModel):
    scope_name: str = Field(min_length=1, max_length=200, description="e.g. scopes/acme.yaml")
    scope: str = Field(min_length=1, max_length=1_000_000, description="The scope file (YAML).")
    policy_name: str = Field(min_length=1, max_length=200)
    policy: str = Field(min_length=1, max_length=1_000_000, description="The policy file (YAML).")
    vendor: str | None = Field(default=None, max_length=100)
    co_inspecting: list[str] = Field(default_factory=list, max_length=20)


@router.post("/notices", response_model=dict[str, Any], status_code=201, tags=["notices"])
def announce(body: AnnounceIn, ctx: Ctx, person: Actor) -> dict[str, Any]:
    """Announce an inspection (officers): the scope and policy are stored as sent."""
    n = notice_service.announce_notice(
        ctx.rio,
        person,
        scope_bytes=body.scope.encode("utf-8"),
        scope_name=body.scope_name,
        policy_bytes=body.policy.encode("utf-8"),
        policy_name=body.policy_name,
        vendor=body.vendor,
        co_inspecting=body.co_inspecting,
        now=ctx.clock.now(),
    )
    data: dict[str, Any] = n.to_json()
    data["lead_time_met_at"] = n.lead_time_met_at().isoformat()
    return data


@router.get(
    "/notices/{notice_id}/letter",
    tags=["notices"],
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}},
)
def letter(
    notice_id: str,
    ctx: Ctx,
    person: Actor,
    format: Annotated[Format, Query(description="html or pdf")] = Format.HTML,
) -> Response:
    """The Art. 16 notice letter for the inspected object."""
    data = notice_service.notice_letter(ctx.rio, person, notice_id, format)
    media = "application/pdf" if format is Format.PDF else "text/html; charset=utf-8"
    return Response(data, media_type=media)


class LaunchIn(BaseModel):
    when: Literal["now", "next-opening"] = Field(
        default="now",
        description="now: the serving scheduler starts it at once (refused when the gate "
        "would allow no probe now); next-opening: at the notice's next announced opening.",
    )
    every: str | None = Field(
        default=None,
        max_length=20,
        description="With next-opening: a recurring check, a new run each period (e.g. 7d).",
    )


class LaunchedOut(BaseModel):
    run_id: str
    notice_id: str
    start: datetime
    series: str | None
    next_period: datetime | None
    run: RunOut


@router.post(
    "/notices/{notice_id}/runs", response_model=LaunchedOut, status_code=201, tags=["runs"]
)
def launch(notice_id: str, body: LaunchIn, ctx: Ctx, person: Actor) -> LaunchedOut:
    """Start a run of the notice now or schedule it (a technician of the entrusted vendor; an
    officer when no vendor is entrusted). ``rio serve`` runs it: the API only hands it over."""
    if body.when == "now":
        if body.every is not None:
            raise InputError("every: a recurring check starts at the next opening, not now")
        launched = run_service.start_run(ctx.rio, person, notice_id)
    else:
        every = None
        if body.every is not None:
            try:
                every = parse_duration(body.every)
            except ValueError as exc:
                raise InputError(f"every: {body.every!r}: {exc}") from exc
        launched = run_service.schedule_run(ctx.rio, person, notice_id, every=every)
    status = run_service.run_status(ctx.rio, person, launched.run_id, now=ctx.clock.now())
    return LaunchedOut(
        run_id=launched.run_id,
        notice_id=launched.notice_id,
        start=launched.start,
        series=launched.series,
        next_period=launched.next_period,
        run=run_out(status),
    )


@router.get("/runs", response_model=list[RunOut], tags=["runs"])
def runs(ctx: Ctx, person: Actor) -> list[RunOut]:
    """The runs you may see."""
    return [run_out(r) for r in run_service.list_runs(ctx.rio, person)]


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
def run(run_id: str, ctx: Ctx, person: Actor) -> RunOut:
    """A run's status."""
    return run_out(run_service.run_status(ctx.rio, person, run_id, now=ctx.clock.now()))


@router.post("/runs/{run_id}/kill", response_model=RunOut, tags=["runs"])
async def kill(run_id: str, body: KillIn, ctx: Ctx, person: Actor) -> RunOut:
    """Pull the run's kill switch (officers; technicians of the run's vendor)."""
    return run_out(
        await run_service.kill_run(ctx.rio, person, run_id, reason=body.reason, now=ctx.clock.now())
    )


@router.get(
    "/runs/{run_id}/events",
    tags=["runs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(run_id: str, request: Request, ctx: Ctx, person: Actor) -> StreamingResponse:
    """Live progress as server-sent events: a ``progress`` event (the run's status as JSON)
    whenever it changes, ``end`` when the run is final; the stream ends after a while and
    the browser's EventSource reconnects."""
    first = await run_in_threadpool(
        run_service.run_status, ctx.rio, person, run_id, now=ctx.clock.now()
    )

    async def stream() -> AsyncIterator[str]:
        status, last = first, ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ctx.config.sse_max_seconds
        yield "retry: 2000\n\n"
        while True:
            data = run_out(status).model_dump_json()
            if data != last:
                yield f"event: progress\ndata: {data}\n\n"
                last = data
            if status.finished:
                yield f"event: end\ndata: {json.dumps({'state': status.state})}\n\n"
                return
            if loop.time() >= deadline or await request.is_disconnected():
                return
            await asyncio.sleep(ctx.config.sse_poll_seconds)
            status = await run_in_threadpool(
                run_service.run_status, ctx.rio, person, run_id, now=ctx.clock.now()
            )

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/runs/{run_id}/findings", response_model=list[FindingOut], tags=["findings"])
def findings(run_id: str, ctx: Ctx, person: Actor) -> list[FindingOut]:
    """The run's findings (never their evidence)."""
    return [
        FindingOut(
            id=f.id,
            key=f.key,
            rule=f.rule,
            title=f.title,
            severity=f.severity,
            kind=f.kind,
            probe=f.probe,
        )
        for f in run_findings(ctx.rio, person, run_id)
    ]


_EXPORT_MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "sarif": "application/sarif+json",
    "html": "text/html; charset=utf-8",
}


@router.get(
    "/runs/{run_id}/findings/export",
    tags=["findings"],
    response_class=Response,
    responses={200: {"content": {m.split(";")[0]: {} for m in _EXPORT_MEDIA.values()}}},
)
def findings_export(
    run_id: str,
    ctx: Ctx,
    person: Actor,
    format: Annotated[
        Literal["json", "csv", "sarif", "html"], Query(description="sarif is SARIF 2.1.0")
    ],
    evidence_reason: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=500,
            description="Include each finding's evidence, every read logged with this reason.",
        ),
    ] = None,
) -> Response:
    """The run's findings for other tools (json, csv, SARIF) or people (html), as
    ``rio findings export`` writes them."""
    data = export_findings(
        ctx.rio, person, run_id, format, evidence_reason=evidence_reason, now=ctx.clock.now()
    )
    return Response(data, media_type=_EXPORT_MEDIA[format], headers={"Cache-Control": "no-store"})


@router.get(
    "/findings/{finding_id}/evidence",
    tags=["findings"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def evidence(
    finding_id: str,
    ctx: Ctx,
    person: Actor,
    reason: Annotated[str, Query(min_length=1, max_length=500, description="Why; logged.")],
) -> Response:
    """Decrypt a finding's evidence; every attempt, allowed or refused, is in the access log."""
    data = read_evidence(ctx.rio, person, finding_id, reason=reason)
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/runs/{run_id}/access-log", response_model=list[AccessOut], tags=["findings"])
def run_access_log(run_id: str, ctx: Ctx, person: Actor) -> list[AccessOut]:
    """Who read (or was refused) the run's evidence, when and why."""
    entries = access_service.run_access_log(ctx.rio, person, run_id, now=ctx.clock.now())
    return [
        AccessOut(
            at=e.at,
            person=e.person,
            action=e.action,
            subject=e.subject,
            reason=e.reason,
            allowed=e.allowed,
        )
        for e in entries
    ]


@router.get("/runs/{run_id}/record", response_model=RecordOut, tags=["records"])
def record(run_id: str, ctx: Ctx, person: Actor) -> RecordOut:
    """The current record version, its signatures and what closure still needs."""
    return record_out(record_service.view_record(ctx.rio, person, run_id, now=ctx.clock.now()))


class ChangeOut(BaseModel):
    path: str = Field(description="Dotted path; [KEY=VALUE] names a list element.")
    kind: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class RecordDiffOut(BaseModel):
    run_id: str
    version: int
    since: int | None = Field(description="The version compared with; null for version 1.")
    changes: list[ChangeOut]


@router.get("/runs/{run_id}/record/diff", response_model=RecordDiffOut, tags=["records"])
def record_diff(
    run_id: str,
    ctx: Ctx,
    person: Actor,
    version: Annotated[int | None, Query(ge=1, description="Default: the current one.")] = None,
) -> RecordDiffOut:
    """What a version changed since the version before it (signatures on it are void)."""
    diff = record_service.record_diff(ctx.rio, person, run_id, version=version, now=ctx.clock.now())
    return RecordDiffOut.model_validate(diff.to_json())


@router.get(
    "/runs/{run_id}/record/print",
    tags=["records"],
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}},
)
def record_print(
    run_id: str,
    ctx: Ctx,
    person: Actor,
    format: Annotated[Format, Query(description="html or pdf")] = Format.HTML,
) -> Response:
    """The record as a document to sign and file (Art. 18), with the digest signatures cover."""
    data = record_service.print_record(ctx.rio, person, run_id, format)
    media = "application/pdf" if format is Format.PDF else "text/html; charset=utf-8"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


@router.post(
    "/runs/{run_id}/record/signatures",
    response_model=SignatureOut,
    status_code=201,
    tags=["records"],
)
def sign(run_id: str, body: SignatureIn, ctx: Ctx, person: Actor) -> SignatureOut:
    """Submit your DSSE signature over the current version (made where your key is)."""
    signature = Signature(keyid=body.keyid, sig=decode_sig(body.sig, "sig"))
    info = record_service.submit_signature(
        ctx.rio, person, run_id, signature, version=body.version, now=ctx.clock.now()
    )
    return SignatureOut(
        person=info.person,
        role=info.role,
        key_id=info.key_id,
        signed_at=info.signed_at,
        version=info.version,
    )


@router.post("/runs/{run_id}/record/close", response_model=SignoffOut, tags=["records"])
def close(run_id: str, ctx: Ctx, person: Actor) -> SignoffOut:
    """Close the record (an officer) if two officers (and the vendor's technician) signed."""
    record_service.close_record(ctx.rio, person, run_id, now=ctx.clock.now())
    view = record_service.view_record(ctx.rio, person, run_id, now=ctx.clock.now())
    return record_out(view).signoff


@router.get("/runs/{run_id}/audit", response_model=AuditOut, tags=["audit"])
def audit_run(run_id: str, ctx: Ctx, person: Actor) -> AuditOut:
    """Export the closed run's archive and verify it offline, check by check."""
    report = audit_service.verify_run_archive(ctx.rio, person, run_id, now=ctx.clock.now())
    ctx.verify_results[("pass" if report else "fail")] += 1
    return audit_out(report)


class LeafOut(BaseModel):
    seq: int
    at: str
    kind: str
    target: str | None
    probe: str | None
    text: str


class TargetOut(BaseModel):
    target: str
    probes: int
    refusals: int
    pauses: int
    peak_rate: int = Field(description="Most budget units in any one-second window, as sent.")


class LeavesOut(BaseModel):
    leaves: list[LeafOut]
    targets: list[TargetOut] = Field(description="Per target, over every matching leaf.")
    matched: int
    next_after: int | None = Field(description="Pass as ?after= for the next page.")


@router.get("/runs/{run_id}/leaves", response_model=LeavesOut, tags=["audit"])
def leaves(
    run_id: str,
    ctx: Ctx,
    person: Actor,
    target: Annotated[str | None, Query(max_length=255, description="Only this address.")] = None,
    probe: Annotated[str | None, Query(max_length=40, description="Only this probe.")] = None,
    since: Annotated[datetime | None, Query(description="Only from this instant.")] = None,
    refused: Annotated[bool, Query(description="Only refusals.")] = False,
    after: Annotated[int, Query(ge=-1, le=2**62, description="Leaves after this seq.")] = -1,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> LeavesOut:
    """Browse the run's probe log readably, filtered as ``rio audit log RUN`` filters it."""
    if since is not None and since.tzinfo is None:
        raise InputError("since: give the instant with its offset, e.g. 2026-09-02T02:00:00Z")
    page = audit_service.review_leaves(
        ctx.rio,
        person,
        run_id,
        LogFilter(target=target, probe=probe, since=since, refused=refused),
        after=after,
        limit=limit,
    )
    return LeavesOut(
        leaves=[LeafOut(**e.to_json()) for e in page.entries],
        targets=[TargetOut(**s.to_json()) for s in page.targets],
        matched=page.matched,
        next_after=page.next_after,
    )


@router.get(
    "/runs/{run_id}/transparency",
    tags=["audit"],
    response_model=dict[str, Any],
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}},
)
def transparency(
    run_id: str,
    ctx: Ctx,
    person: Actor,
    format: Annotated[
        Literal["json", "html", "pdf"], Query(description="json for tools, html or pdf for people")
    ] = "json",
) -> Any:
    """The transparency report for the run's inspected object (Art. 5, 7): every probe that
    touched its announced networks with an RFC 9162 inclusion proof against the final signed
    checkpoint, built from the closed run's archive as ``rio report transparency`` builds it."""
    report = transparency_service.transparency_report(ctx.rio, person, run_id, now=ctx.clock.now())
    if format == "json":
        return report
    fmt = Format(format)
    data = transparency_service.render_transparency_report(report, fmt)
    media = "application/pdf" if fmt is Format.PDF else "text/html; charset=utf-8"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


@router.post("/audit/verify", response_model=AuditOut, tags=["audit"])
async def audit_upload(
    ctx: Ctx, person: Actor, archive: Annotated[UploadFile, File(description="A rio archive.")]
) -> AuditOut:
    """Verify an uploaded archive against this home's orchestrator key."""
    data = await archive.read(audit_service.MAX_UPLOAD + 1)
    if len(data) > audit_service.MAX_UPLOAD:
        raise Problem(slug="bad-input", detail="the archive is larger than 256 MiB")
    report = await run_in_threadpool(
        audit_service.verify_uploaded_archive, ctx.rio, person, data, now=ctx.clock.now()
    )
    ctx.verify_results[("pass" if report else "fail")] += 1
    return audit_out(report)
