"""What every request handler reaches: the data sources, who is asking (resolved once per request), the access log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import HTTPException, Request

from collector.store.access_log import AccessLog
from collector.web.auth import SESSION_COOKIE, Authenticator, Denied, Identity, allows
from collector.web.views import Sources

__all__ = ["LoginRequired", "WebContext", "context_of", "identify", "require", "require_page"]


@dataclass
class WebContext:
    sources: Sources
    auth: Authenticator
    access_log: AccessLog
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class LoginRequired(Exception):
    """A console page without a session: go to the sign-in page."""


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.web
    return ctx


def identify(request: Request) -> Identity:
    """Raises :class:`Denied`; the result (or the refusal) is kept on the request for the access log."""
    cached = getattr(request.state, "identity", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    ctx = context_of(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    client = request.client.host if request.client else None
    who = ctx.auth.identify(client, headers, request.cookies.get(SESSION_COOKIE))
    request.state.identity = who
    return who


def require(role: str) -> Callable[[Request], Identity]:
    """An API dependency: 401 without valid credentials, 403 when the role is not enough."""

    def dependency(request: Request) -> Identity:
        try:
            who = identify(request)
        except Denied as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise HTTPException(exc.status, exc.reason, headers=headers) from None
        if not allows(who.role, role):
            raise HTTPException(403, f"role {who.role!r} may not do this; it needs {role!r}")
        return who

    return dependency


def require_page(role: str) -> Callable[[Request], Identity]:
    """A console dependency: to the sign-in page without credentials, 403 when the role is not enough."""

    def dependency(request: Request) -> Identity:
        try:
            who = identify(request)
        except Denied as exc:
            if exc.status == 401:
                raise LoginRequired from None
            raise HTTPException(exc.status, exc.reason) from None
        if not allows(who.role, role):
            raise HTTPException(403, f"role {who.role!r} may not see this; it needs {role!r}")
        return who

    return dependency
