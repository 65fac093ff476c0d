"""Timestamps as sources write them, read one way."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["UnreadableTimestamp", "parse_timestamp", "read_timestamp"]

_SUBMICROSECOND = re.compile(r"(\.\d{6})\d+")


class UnreadableTimestamp(ValueError):
    """A time field is present but holds no readable time; the message names the field and its value."""

    def __init__(self, field: str, value: object) -> None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        super().__init__(f"{field} {shown} is not a readable timestamp")
        self.field = field
        self.value = value


def read_timestamp(value: object, field: str) -> datetime | None:
    """ISO 8601 / RFC 3339 text (or a ``datetime``) as UTC; ``None`` only when the source wrote no time.

    No time is an absent or blank value, or Go's zero time (year 1). Anything else that is not a readable time
    raises :class:`UnreadableTimestamp` naming ``field``: a time that cannot be read is never "no time".
    Fractions finer than microseconds (Go's nanoseconds) are trimmed; a trailing ``Z`` is UTC; naive times are
    taken as UTC (SARIF's ``*Utc`` fields, Evidently's ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(_SUBMICROSECOND.sub(r"\1", value.strip()))
        except ValueError:
            raise UnreadableTimestamp(field, value) from None
    else:
        raise UnreadableTimestamp(field, value)
    if parsed.year <= 1:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_timestamp(value: object) -> datetime | None:
    """As :func:`read_timestamp`, but ``None`` also when the value is unreadable (callers that cannot tell
    "absent" from "broken" apart should move to :func:`read_timestamp`)."""
    if not isinstance(value, str):
        return None
    try:
        return read_timestamp(value, "timestamp")
    except UnreadableTimestamp:
        return None
