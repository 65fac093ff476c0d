"""The read API under /api/v1 (OpenAPI 3.1 at /api/v1/openapi.json). Every operation needs a role; the access log
is admin-only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from collector.freshness import Freshness
from collector.model import ControlRef
from collector.store import EvidenceFilter
from collector.store.browse import evidence_page
from collector.web.auth import Identity
from collector.web.context import WebContext, context_of, require
from collector.web.views import (
    connector_rows,
    control_detail,
    control_rows,
    coverage_document,
    one_record,
    record_document,
    run_rows,
)

__all__ = ["router"]


class Error(BaseModel):
    detail: str


router = APIRouter(
    prefix="/api/v1",
    responses={
        400: {"model": Error, "description": "a parameter that is well-formed but unusable"},
        401: {"model": Error, "description": "no valid credentials"},
        403: {"model": Error, "description": "the role does not allow it, or a proxy header from elsewhere"},
        404: {"model": Error, "description": "no such framework, control or record"},
        503: {"model": Error, "description": "the access log cannot be written: the response is withheld"},
    },
)

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$"
_MAX_PERIOD = timedelta(days=3 * 366)
Status = Literal["fresh", "at_risk", "stale", "missing"]
Coverage = Literal["automated", "attested", "attestable", "uncovered"]
Result = Literal["pass", "fail", "error", "not_applicable"]


class ControlRow(BaseModel):
    framework: str
    control: str
    title: str
    status: Status
    red: bool = Field(description="stale, missing, or a subject fails one of its checks")
    age_seconds: float | None
    ttl_seconds: float
    newest_observed_at: datetime | None
    expires_at: datetime | None
    evidence_kinds: list[str]
    failures: int = Field(description="subjects whose latest record fails a check mapped to the control")
    failing_checks: list[str]
    coverage: Coverage


class ControlList(BaseModel):
    generated_at: datetime
    controls: list[ControlRow]
    counts: dict[str, int] = Field(description="controls per freshness status")


class Subject(BaseModel):
    type: str
    id: str


class CheckResult(BaseModel):
    id: str
    result: Result
    message: str
    details: Any = None


class ChainPosition(BaseModel):
    seq: int
    head_seq: int
    records_after: int


class EvidenceRecord(BaseModel):
    id: str
    seq: int
    kind: str
    subject: Subject
    observed_at: datetime
    collected_at: datetime
    stored_at: datetime
    valid_until: datetime | None
    connector: str
    instance: str
    connector_version: str
    run_id: str
    source: str
    controls: list[str]
    checks: list[CheckResult]
    content_sha256: str
    prev_hash: str
    chain_hash: str
    payload: Any = Field(default=None, description="only with payload=true (always on one record)")
    chain: ChainPosition | None = None


class EvidencePage(BaseModel):
    records: list[EvidenceRecord]
    next_cursor: str | None = Field(description="pass as cursor= for the next (older) page; null at the end")


class Gap(BaseModel):
    start: datetime
    end: datetime
    seconds: float


class HistoryPoint(BaseModel):
    kind: str
    observed_at: datetime
    failing: int


class Period(BaseModel):
    since: datetime
    until: datetime


class ControlDetail(BaseModel):
    framework: str
    control: str
    title: str
    group: str | None
    status: Status
    age_seconds: float | None
    ttl_seconds: float | None
    failures: int
    failing_checks: list[str]
    coverage: Coverage
    evidence_kinds: list[str]
    checks: list[str]
    latest_records: list[EvidenceRecord]
    period: Period
    gaps: list[Gap]
    history: list[HistoryPoint]


class Connector(BaseModel):
    name: str
    type: str
    configured: bool
    last_success: datetime | None
    last_finished: datetime | None
    last_status: str | None
    last_error: str | None
    consecutive_failures: int
    last_duration_seconds: float | None
    problems_total: int
    runs: dict[str, int]
    next_run: datetime | None


class Problem(BaseModel):
    source: str
    reason: str


class Run(BaseModel):
    id: str
    instance: str
    connector: str
    started_at: datetime
    finished_at: datetime
    status: str
    observations: int
    problems: list[Problem]
    error: str | None


class AccessEntryOut(BaseModel):
    seq: int
    at: datetime
    principal: str
    role: str
    via: str
    client: str
    method: str
    target: str
    status: int
    chain_hash: str


class AccessLogPage(BaseModel):
    entries: list[AccessEntryOut]
    next_cursor: str | None
    chain_intact: bool | None = Field(default=None, description="with verify=true: the whole chain checked")
    chain_checked: int | None = None


class Me(BaseModel):
    principal: str
    role: str
    via: str


Ctx = Annotated[WebContext, Depends(context_of)]
Viewer = Annotated[Identity, Depends(require("viewer"))]
Admin = Annotated[Identity, Depends(require("admin"))]
Framework = Annotated[str | None, Query(max_length=50, pattern=r"^[a-z0-9_]+$")]
Name = Annotated[str | None, Query(max_length=200, pattern=_NAME)]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]{1,19}$")]


def _framework(ctx: WebContext, framework: str | None) -> str | None:
    if framework is not None and framework not in ctx.sources.loaded.mappings.catalogs:
        raise HTTPException(404, f"unknown framework {framework!r}")
    return framework


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    seq = int(value)
    if seq > 2**62:
        raise HTTPException(400, "cursor out of range")
    return seq


def _period(
    ctx: WebContext, since: datetime | None, until: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(400, f"{name} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    now = ctx.clock()
    end = until or now
    start = since or end - default
    if start >= end:
        raise HTTPException(400, "since must be before until")
    if end - start > _MAX_PERIOD:
        raise HTTPException(400, "the period may span at most 3 years")
    return start, end


@router.get("/me", response_model=Me, summary="Who the API takes you for")
def me(who: Viewer) -> Any:
    return {"principal": who.principal, "role": who.role, "via": who.via}


@router.get("/controls", response_model=ControlList, summary="Controls with status, age, TTL, failures, coverage")
async def controls(
    ctx: Ctx,
    _who: Viewer,
    framework: Framework = None,
    status: Annotated[Status | None, Query()] = None,
    red: Annotated[bool | None, Query(description="only red (true) or only not red (false)")] = None,
) -> Any:
    now = ctx.clock()
    rows = await run_in_threadpool(control_rows, ctx.sources, now, _framework(ctx, framework))
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    if red is not None:
        rows = [r for r in rows if r["red"] == red]
    counts = {s.value: sum(1 for r in rows if r["status"] == s.value) for s in Freshness}
    return {"generated_at": now, "controls": rows, "counts": counts}


@router.get(
    "/controls/{framework}/{control}",
    response_model=ControlDetail,
    summary="One control: its kinds and checks, latest records, history and gaps over a period",
    responses={404: {"description": "unknown framework or control"}},
)
async def control(
    ctx: Ctx,
    _who: Viewer,
    framework: str,
    control: str,
    since: Annotated[datetime | None, Query(description="default: 30 days before until")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    limit: Limit = 20,
) -> Any:
    if framework not in ctx.sources.loaded.mappings.catalogs or len(control) > 100:
        raise HTTPException(404, "unknown framework or control")
    ref = ControlRef(framework, control)
    try:
        ctx.sources.loaded.mappings.control(ref)
    except (KeyError, LookupError):
        raise HTTPException(404, f"unknown control {framework}:{control}") from None
    start, end = _period(ctx, since, until, timedelta(days=30))
    return await run_in_threadpool(control_detail, ctx.sources, ref, ctx.clock(), start, end, limit)


@router.get("/evidence", response_model=EvidencePage, summary="Evidence records, newest first, cursor-paginated")
async def evidence(
    ctx: Ctx,
    _who: Viewer,
    kind: Name = None,
    subject: Annotated[str | None, Query(max_length=1000, description="subject id, or type:id")] = None,
    control: Annotated[str | None, Query(max_length=200, description="framework:id")] = None,
    check: Name = None,
    result: Annotated[Result | None, Query()] = None,
    instance: Name = None,
    since: Annotated[datetime | None, Query(description="observed at or after")] = None,
    until: Annotated[datetime | None, Query(description="observed before")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    payload: bool = False,
) -> Any:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(400, f"{name} needs a UTC offset (e.g. 2026-01-01T00:00:00Z)")
    filt = EvidenceFilter(kind=kind, subject=subject, control=control, check=check, result=result, instance=instance)
    page = await run_in_threadpool(
        lambda: evidence_page(
            ctx.sources.store,
            filt,
            limit=limit,
            before=_cursor(cursor),
            since=since,
            until=until,
            with_payload=payload,
        )
    )
    return {
        "records": [record_document(r) for r in page.records],
        "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
    }


@router.get(
    "/evidence/{record_id}",
    response_model=EvidenceRecord,
    summary="One record with its payload, hashes and place in the chain",
    responses={404: {"description": "no such record"}},
)
async def evidence_record(ctx: Ctx, _who: Viewer, record_id: str) -> Any:
    if len(record_id) > 36:
        raise HTTPException(404, "no such record")
    doc = await run_in_threadpool(one_record, ctx.sources, record_id)
    if doc is None:
        raise HTTPException(404, "no such record")
    return doc


@router.get("/connectors", response_model=list[Connector], summary="Connector instances: health, problems, next run")
def connectors(ctx: Ctx, _who: Viewer) -> Any:
    return connector_rows(ctx.sources)


@router.get("/runs", response_model=list[Run], summary="Collection runs, newest first")
async def runs(ctx: Ctx, _who: Viewer, instance: Name = None, limit: Limit = 50) -> Any:
    return await run_in_threadpool(run_rows, ctx.sources, instance, limit)


@router.get("/coverage", summary="Coverage: automated, attested, attestable, uncovered")
async def coverage(ctx: Ctx, _who: Viewer, framework: Framework = None) -> dict[str, Any]:
    fw = _framework(ctx, framework)
    return await run_in_threadpool(coverage_document, ctx.sources, ctx.clock(), fw)


@router.get("/access-log", response_model=AccessLogPage, summary="Who read what (admins only)")
async def access_log(ctx: Ctx, _who: Admin, limit: Limit = 100, cursor: Cursor = None, verify: bool = False) -> Any:
    entries = await run_in_threadpool(ctx.access_log.page, limit, _cursor(cursor))
    doc: dict[str, Any] = {
        "entries": [
            {
                "seq": e.seq,
                **{k: getattr(e.entry, k) for k in AccessEntryOut.model_fields if hasattr(e.entry, k)},
                "chain_hash": e.chain_hash,
            }
            for e in entries
        ],
        "next_cursor": str(entries[-1].seq) if len(entries) == limit else None,
    }
    if verify:
        checked, broken = await run_in_threadpool(ctx.access_log.verify)
        doc["chain_intact"], doc["chain_checked"] = broken is None, checked
    return doc
