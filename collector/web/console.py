"""The console: server-rendered pages (Jinja2, no script at all), signed in with a token kept in an HttpOnly,
SameSite=Strict cookie; forms carry a CSRF token checked against a cookie of its own (double submit)."""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from collector.freshness import Freshness
from collector.model import ControlRef
from collector.web.auth import SESSION_COOKIE, Denied, Identity
from collector.web.context import WebContext, context_of, require_page
from collector.web.views import connector_rows, control_detail, control_rows, coverage_document, one_record, run_rows

__all__ = ["router"]

CSRF_COOKIE = "ec_csrf"
router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
templates = Jinja2Templates(directory=str(files("collector.web") / "templates"))
templates.env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
templates.env.filters["age"] = lambda s: _age(s)

Ctx = Annotated[WebContext, Depends(context_of)]
Viewer = Annotated[Identity, Depends(require_page("viewer"))]
Admin = Annotated[Identity, Depends(require_page("admin"))]


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def _page(request: Request, name: str, who: Identity | None, **context: Any) -> Response:
    token = _csrf(request)
    response = templates.TemplateResponse(request, name, {"who": who, "csrf": token, **context})
    _set_cookie(request, response, CSRF_COOKIE, token)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/", max_age=43200
    )


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > 16_384:
        raise HTTPException(413, "form too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, fields.get("csrf", "")):
        raise HTTPException(403, "the form's CSRF token does not match: reload the page and try again")
    return fields


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _page(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request, ctx: Ctx) -> Response:
    fields = await _form(request)
    token = fields.get("token", "").strip()
    target = _safe_next(fields.get("next"))
    try:
        who = ctx.auth.identify(None, {"authorization": f"Bearer {token}"}, None) if token else None
    except Denied:
        who = None
    if who is None:
        response = _page(request, "login.html", None, next=target, error="That token is not valid.")
        response.status_code = 401
        return response
    request.state.identity = who
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _form(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
async def overview(request: Request, ctx: Ctx, who: Viewer, framework: str | None = None) -> Response:
    m = ctx.sources.loaded.mappings
    if framework is not None and framework not in m.catalogs:
        raise HTTPException(404, f"unknown framework {framework!r}")
    rows = await run_in_threadpool(control_rows, ctx.sources, ctx.clock(), framework)
    summary = []
    for fw in m.frameworks():
        mine = [r for r in rows if r["framework"] == fw]
        counts = {s.value: sum(1 for r in mine if r["status"] == s.value) for s in Freshness}
        summary.append({"framework": fw, "counts": counts, "red": sum(r["red"] for r in mine), "total": len(mine)})
    return _page(request, "overview.html", who, rows=rows, summary=summary, framework=framework)


@router.get("/controls/{framework}/{control}")
async def control_page(request: Request, ctx: Ctx, who: Viewer, framework: str, control: str) -> Response:
    m = ctx.sources.loaded.mappings
    ref = ControlRef(framework, control)
    if framework not in m.catalogs:
        raise HTTPException(404, "unknown framework")
    try:
        m.control(ref)
    except (KeyError, LookupError):
        raise HTTPException(404, f"unknown control {framework}:{control}") from None
    now = ctx.clock()
    detail = await run_in_threadpool(control_detail, ctx.sources, ref, now, now - timedelta(days=30), now, 20)
    return _page(request, "control.html", who, c=detail, timeline=_timeline(detail))


def _timeline(detail: dict[str, Any]) -> dict[str, Any]:
    """Positions (percent of the period) of the gaps and of each record, for a server-drawn SVG."""
    start = datetime.fromisoformat(detail["period"]["since"])
    end = datetime.fromisoformat(detail["period"]["until"])
    span = (end - start).total_seconds() or 1.0

    def at(text: str) -> float:
        return round(100 * (datetime.fromisoformat(text) - start).total_seconds() / span, 2)

    gaps = [{"x": at(g["start"]), "w": max(round(at(g["end"]) - at(g["start"]), 2), 0.3)} for g in detail["gaps"]]
    points = [{"x": at(h["observed_at"]), "failing": h["failing"] > 0} for h in detail["history"]]
    return {"gaps": gaps, "points": points}


@router.get("/evidence/{record_id}")
async def record_page(request: Request, ctx: Ctx, who: Viewer, record_id: str) -> Response:
    doc = await run_in_threadpool(one_record, ctx.sources, record_id[:64])
    if doc is None:
        raise HTTPException(404, "no such record")
    return _page(request, "record.html", who, r=doc)


@router.get("/connectors")
async def connectors_page(request: Request, ctx: Ctx, who: Viewer) -> Response:
    recent = await run_in_threadpool(run_rows, ctx.sources, None, 50)
    return _page(request, "connectors.html", who, connectors=connector_rows(ctx.sources), runs=recent)


@router.get("/coverage")
async def coverage_page(request: Request, ctx: Ctx, who: Viewer, framework: str | None = None) -> Response:
    if framework is not None and framework not in ctx.sources.loaded.mappings.catalogs:
        raise HTTPException(404, f"unknown framework {framework!r}")
    doc = await run_in_threadpool(coverage_document, ctx.sources, ctx.clock(), framework)
    return _page(request, "coverage.html", who, cov=doc, framework=framework)


@router.get("/access-log")
async def access_log_page(request: Request, ctx: Ctx, who: Admin) -> Response:
    entries = await run_in_threadpool(ctx.access_log.page, 200, None)
    checked, broken = await run_in_threadpool(ctx.access_log.verify)
    return _page(request, "access_log.html", who, entries=entries, checked=checked, broken=broken)
