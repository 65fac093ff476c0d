"""Retries with exponential backoff and jitter for transient errors, shared by the core and connectors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from collector.errors import Disposition, classify

__all__ = ["call_with_retry", "retrying"]

T = TypeVar("T")


def _is_transient(exc: BaseException) -> bool:
    return classify(exc) is Disposition.TRANSIENT


def retrying(
    attempts: int = 3,
    initial: timedelta = timedelta(seconds=1),
    maximum: timedelta = timedelta(seconds=30),
    on_retry: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` that retries only what :func:`collector.errors.classify` calls transient."""
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(
            multiplier=initial.total_seconds(), max=maximum.total_seconds(), jitter=initial.total_seconds()
        ),
        retry=retry_if_exception(_is_transient),
        before_sleep=on_retry,
        reraise=True,
    )


def call_with_retry(fn: Callable[..., T], *args: Any, attempts: int = 3, **kwargs: Any) -> T:
    return retrying(attempts=attempts)(fn, *args, **kwargs)
