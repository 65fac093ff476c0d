"""Durations written as ``5s``, ``10m``, ``1h``, ``1d``, ``2w`` (or plain seconds)."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["MAX_DURATION", "Duration", "format_duration", "parse_duration"]

MAX_DURATION = timedelta(days=36500)
"""About a century: longer is a typo, and would overflow date arithmetic."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration must be like 30s, 10m, 1h, 7d")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a duration; use a finite number and a unit: 30s, 10m, 1h, 7d")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded(value, str(value))
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return _bounded(float(match.group(1)) * _UNITS[match.group(2)], value.strip())
    raise ValueError(f"{_short(value)} is not a duration; use a number and a unit: 30s, 10m, 1h, 7d, 2w")


def _bounded(seconds: float, given: str) -> timedelta:
    if not seconds <= MAX_DURATION.total_seconds():
        raise ValueError(
            f"{_short(given)} is longer than the longest duration accepted, {format_duration(MAX_DURATION)}"
        )
    return timedelta(seconds=seconds)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
