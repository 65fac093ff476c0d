"""The one ASGI app the daemon and ``serve`` run: /metrics, /healthz and /readyz (unauthenticated, as before, each
with threads of its own so a busy API cannot delay them), the read API under /api/v1 and the console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

import anyio
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client.exposition import _bake_output
from prometheus_client.registry import CollectorRegistry

from collector import __version__
from collector.store.access_log import AccessEntry
from collector.web.context import LoginRequired, WebContext
from collector.web.views import Coalesced

__all__ = ["SECURITY_HEADERS", "build_app"]

log = structlog.get_logger("collector.web")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
_UNLOGGED_PREFIXES = ("/static/",)


async def _plain(send: Send, status: int, body: str, content_type: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body.encode()})


def build_app(
    registry: CollectorRegistry,
    readiness: Callable[[], tuple[bool, str]],
    web: WebContext | None = None,
) -> ASGIApp:
    """Without ``web`` only /metrics, /healthz and /readyz are served."""
    # their own small thread budgets: a flood of API requests queues on the API's, not on these
    metrics_threads = anyio.CapacityLimiter(4)
    scrapes = Coalesced(seconds=1.0)
    """Simultaneous scrapes share one collection of the state (200 at once cost one)."""
    ready_threads = anyio.CapacityLimiter(4)
    inner = _build_fastapi(web) if web is not None else None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path == "/metrics":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            accept, encoding = headers.get("accept", ""), headers.get("accept-encoding", "")
            key = (accept, encoding, tuple(sorted((k, tuple(v)) for k, v in query.items())))
            status, head, body = await anyio.to_thread.run_sync(
                scrapes.get,
                key,
                lambda: _bake_output(registry, accept, encoding, query, False),  # type: ignore[no-untyped-call]
                limiter=metrics_threads,
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": int(status.split(" ")[0]),
                    "headers": [(k.encode(), v.encode()) for k, v in head],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if path == "/healthz":
            await _plain(send, 200, "ok\n")
            return
        if path == "/readyz":
            ok, detail = await anyio.to_thread.run_sync(readiness, limiter=ready_threads)
            await _plain(send, 200 if ok else 503, f"{detail}\n")
            return
        if inner is None:
            await _plain(send, 404, "not found: try /metrics, /healthz or /readyz\n")
            return
        await inner(scope, receive, send)

    return app


def _build_fastapi(web: WebContext) -> FastAPI:
    from collector.web.api import router
    from collector.web.console import router as console_router

    api = FastAPI(
        title="evidence-collector",
        version=__version__,
        description="Read API: controls, evidence, connectors, runs, coverage, the access log.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api.state.web = web
    api.include_router(router)
    api.include_router(console_router)
    api.mount("/static", StaticFiles(directory=str(files("collector.web") / "static")), name="static")

    @api.exception_handler(LoginRequired)
    async def _to_login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)

    @api.middleware("http")
    async def _log_and_harden(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Security headers on every response; every request but static files in the access log, committed
        before the response leaves (no response without its entry: when the log cannot be written, 503)."""
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        path = request.url.path
        if path.startswith(_UNLOGGED_PREFIXES):
            return response
        who = getattr(request.state, "identity", None)
        target = path + (f"?{request.url.query}" if request.url.query else "")
        entry = AccessEntry(
            at=web.clock(),
            principal=who.principal if who else "-",
            role=who.role if who else "-",
            via=who.via if who else "none",
            client=request.client.host if request.client else "-",
            method=request.method,
            target=target,
            status=response.status_code,
        )
        try:
            await anyio.to_thread.run_sync(web.access_log.append, [entry])
        except Exception as exc:  # noqa: BLE001 - the response is withheld and the reason logged
            log.error("access_log_write_failed", error=f"{type(exc).__name__}: {exc}", target=path)
            failed = JSONResponse({"detail": "the access log cannot be written: response withheld"}, status_code=503)
            for name, value in SECURITY_HEADERS.items():
                failed.headers[name] = value
            return failed
        return response

    @api.get("/favicon.ico", include_in_schema=False)
    def _favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    return api


def _quote(target: str) -> str:
    from urllib.parse import quote

    return quote(target, safe="/")
