"""Canonical JSON and content hashing: the one place evidence bytes are defined."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

__all__ = ["canonical_json", "content_sha256", "sha256_hex"]


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_default,
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, UTF-8, no insignificant whitespace; NaN/Infinity are rejected."""
    return _ENCODER.encode(value).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_sha256(value: Any) -> str:
    return sha256_hex(canonical_json(value))
