"""Timestamps as sources write them, read one way."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["parse_timestamp"]

_SUBMICROSECOND = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: object) -> datetime | None:
    """ISO 8601 / RFC 3339 text, as UTC; ``None`` when absent or unreadable.

    Fractions finer than microseconds (Go's nanoseconds) are trimmed; a trailing ``Z`` is UTC; naive times are
    taken as UTC (SARIF's ``*Utc`` fields, Evidently's ``YYYY-MM-DD HH:MM:SS.ffffff``); Go's zero time (year 1)
    means "not set"."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(_SUBMICROSECOND.sub(r"\1", value.strip()))
    except ValueError:
        return None
    if parsed.year <= 1:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
