"""A small GitHub REST client: Link-header paging, rate limits honoured, 403 (missing scope) told from 404."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from collector.sdk import ConfigurationError, TransientError, call_with_retry, collect_pages, redact_url

from .settings import GitHubSettings

__all__ = ["Forbidden", "GitHubClient", "NotFound"]

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_RATE_LIMIT_ATTEMPTS = 3

sleep: Callable[[float], None] = time.sleep
"""Replaced in tests to record rate-limit waits instead of sleeping."""


class Forbidden(Exception):
    """HTTP 403 that is not a rate limit: the token lacks a scope or permission. The message names it."""


class NotFound(Exception):
    """HTTP 404: the resource does not exist, or the token may not see it (GitHub hides private resources)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.message = message


class GitHubClient:
    def __init__(self, settings: GitHubSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.base = settings.api_url.rstrip("/")
        self.now = now
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
        )

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, **params: Any) -> Any:
        body, _ = call_with_retry(self._get, self.base + path, params)
        return body

    def pages(
        self, path: str, *, key: str | None = None, stop: Callable[[list[Any]], bool] | None = None, **params: Any
    ) -> list[Any]:
        """Every item of a listing, following ``Link: rel="next"``; ``key`` names the array in an object answer
        (``environments``, ``workflow_runs``); ``stop`` ends the paging once a page holds what is needed."""

        def fetch(url: str | None) -> tuple[list[Any], str | None]:
            body, link = call_with_retry(self._get, url or self.base + path, {} if url else {"per_page": 100, **params})
            items = body.get(key) if key is not None and isinstance(body, dict) else body
            if not isinstance(items, list):
                raise TransientError(f"GitHub {path}: the answer holds no list" + (f" {key!r}" if key else ""))
            following = _next_link(link)
            if following is not None and stop is not None and stop(items):
                following = None
            return items, following

        return collect_pages(fetch, f"GitHub {path}")

    def _get(self, url: str, params: dict[str, Any]) -> tuple[Any, str | None]:
        for _ in range(_RATE_LIMIT_ATTEMPTS):
            try:
                response = self.session.get(url, params=params, timeout=self.settings.timeout_seconds)
            except requests.RequestException as exc:
                raise TransientError(f"GitHub GET {redact_url(url)}: {type(exc).__name__}") from None
            wait = self._rate_limit_wait(response)
            if wait is None:
                return self._answer(response, url), response.headers.get("Link")
            if wait > self.settings.max_rate_limit_wait.total_seconds():
                raise TransientError(f"GitHub rate limit: {wait:.0f}s to wait, above max_rate_limit_wait")
            sleep(wait)
        raise TransientError(f"GitHub rate limit: still limited after {_RATE_LIMIT_ATTEMPTS} waits")

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        """Seconds to wait for a rate-limited answer (``Retry-After``, else ``X-RateLimit-Reset``); ``None`` for
        one that is not rate-limited."""
        if response.status_code not in (403, 429):
            return None
        headers = response.headers
        retry_after = headers.get("Retry-After")
        if retry_after is not None and retry_after.strip().isdigit():
            return float(retry_after)
        if headers.get("X-RateLimit-Remaining") == "0" and (reset := headers.get("X-RateLimit-Reset", "")).isdigit():
            return max(0.0, int(reset) - self.now().timestamp()) + 1
        if response.status_code == 429 or "rate limit" in _message(response).lower():
            return 60.0  # GitHub's advice for a secondary limit without headers: wait at least a minute
        return None

    def _answer(self, response: requests.Response, url: str) -> Any:
        status, path = response.status_code, url[len(self.base) :] if url.startswith(self.base) else redact_url(url)
        if status == 200:
            try:
                return response.json()
            except ValueError:
                raise TransientError(f"GitHub {path}: the answer is not JSON") from None
        if status == 401:
            raise ConfigurationError(f"GitHub {path}: HTTP 401: the token was rejected ({_message(response)})")
        if status == 403:
            raise Forbidden(_forbidden(path, response))
        if status == 404:
            raise NotFound(path, _message(response))
        if status >= 500:
            raise TransientError(f"GitHub {path}: HTTP {status}")
        raise ConfigurationError(f"GitHub {path}: HTTP {status}: {_message(response)}")


def _next_link(link: str | None) -> str | None:
    if not link:
        return None
    match = _NEXT.search(link)
    return match.group(1) if match else None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no detail"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message) if message else (response.reason or "no detail")


def _forbidden(path: str, response: requests.Response) -> str:
    """What the token lacks: GitHub says which OAuth scopes the endpoint accepts and which the token has (classic
    tokens), or which fine-grained permissions it needs."""
    headers = response.headers
    parts = [f"GitHub {path}: HTTP 403: {_message(response)}"]
    accepted = headers.get("X-Accepted-OAuth-Scopes")
    if accepted is not None:
        has = headers.get("X-OAuth-Scopes") or "none"
        parts.append(f"the token lacks a scope (the endpoint accepts: {accepted or 'any'}; the token has: {has})")
    if permissions := headers.get("X-Accepted-GitHub-Permissions"):
        parts.append(f"the token needs the permission {permissions}")
    if len(parts) == 1:
        parts.append("the token lacks a scope or permission for it")
    return "; ".join(parts)
