"""Times a source dates later than the collection: a clock a little ahead is tolerated, more is not a record."""

from __future__ import annotations

from datetime import datetime, timedelta

from collector.durations import format_duration

__all__ = ["DEFAULT_CLOCK_SKEW_TOLERANCE", "in_the_future"]

DEFAULT_CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)


def in_the_future(at: datetime, now: datetime, tolerance: timedelta) -> str | None:
    """``"<at>, in the future (collected at <now>, clock_skew_tolerance 5m)"`` when ``at`` is later than ``now``
    plus ``tolerance``; ``None`` otherwise."""
    if at <= now + tolerance:
        return None
    return (
        f"{at.isoformat()}, in the future "
        f"(collected at {now.isoformat()}, clock_skew_tolerance {format_duration(tolerance)})"
    )
