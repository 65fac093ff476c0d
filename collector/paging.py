"""Token paging that yields one consistent listing: all pages of one pass, or a restart from the first page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from collector.errors import TransientError

__all__ = ["PageExpired", "collect_pages"]

T = TypeVar("T")

FetchPage = Callable[[str | None], tuple[Sequence[T], str | None]]
"""Given the continuation token (``None`` for the first page): the page's items and the next token, if any."""


class PageExpired(Exception):
    """The continuation token is no longer valid (Kubernetes 410 Expired): the listing must start over."""


def collect_pages(fetch: FetchPage[T], what: str, max_restarts: int = 3) -> list[T]:
    """Every item of one listing pass. An expired token throws the pass away and starts again from the
    first page, so pages from two passes are never mixed; after ``max_restarts`` restarts it is transient."""
    for _ in range(max_restarts + 1):
        try:
            return _one_pass(fetch, what)
        except PageExpired:
            continue
    raise TransientError(f"{what}: the continuation token expired {max_restarts + 1} times in a row")


def _one_pass(fetch: FetchPage[T], what: str) -> list[T]:
    items: list[T] = []
    seen: set[str] = set()
    token: str | None = None
    while True:
        page, token = fetch(token)
        items.extend(page)
        if not token:
            return items
        if token in seen:
            raise TransientError(f"{what}: the server repeated continuation token {token[:40]!r}")
        seen.add(token)
