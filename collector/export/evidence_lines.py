"""One evidence record as one JSON line, and the checks ``verify-bundle`` runs on such a line.

A line carries every field the store's chain hash covers, so each record's content hash and chain link
can be recomputed from the bundle alone. ``controls``, ``checks`` and ``payload`` are the stored JSON text,
embedded as is (the payload is the canonical JSON its SHA-256 was taken over).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring as _quote
from typing import Any

from collector.canonical import canonical_json, sha256_hex
from collector.export.queries import iso_utc
from collector.store.records import record_link

__all__ = ["control_file_name", "record_line", "record_problem"]

_FILE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


@lru_cache(maxsize=1024)
def control_file_name(framework: str, control: str) -> str:
    safe = "".join(ch if ch in _FILE_SAFE else "_" for ch in control)
    return f"evidence/{framework}/{safe}.jsonl"


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def record_line(row: Any) -> str:
    """The bundle line of a row from :mod:`collector.export.queries` (columns in ``RECORD_COLUMNS`` order, then
    the payload). Built by hand rather than through ``json.dumps``: this runs once per exported record."""
    (
        seq, record_id, run_id, connector_type, instance, connector_version, kind, subject_type, subject_id,
        content_sha256, source, config_hash, controls, checks, prev_hash, chain, observed_at, valid_until,
        collected_at, stored_at, payload,
    ) = row  # fmt: skip
    return (
        f'{{"seq":{int(seq)},"id":{_quote(record_id)},"run_id":{_quote(run_id)},'
        f'"connector_type":{_quote(connector_type)},"instance":{_quote(instance)},'
        f'"connector_version":{_quote(connector_version)},"kind":{_quote(kind)},'
        f'"subject_type":{_quote(subject_type)},"subject_id":{_quote(subject_id)},'
        f'"observed_at":{_text(iso_utc(observed_at))},"valid_until":{_text(iso_utc(valid_until))},'
        f'"collected_at":{_text(iso_utc(collected_at))},"stored_at":{_text(iso_utc(stored_at))},'
        f'"source":{_quote(source)},"config_hash":{_quote(config_hash)},"content_sha256":{_quote(content_sha256)},'
        f'"prev_hash":{_quote(prev_hash)},"chain_hash":{_quote(chain)},'
        f'"controls":{controls},"checks":{checks},"payload":{"null" if payload is None else payload}}}\n'
    )


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO time, got {value!r}")
    return datetime.fromisoformat(value)


class _Fields:
    """A bundle line's fields as the attributes :func:`record_link` reads; a missing one is a ``KeyError``."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__ = fields

    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


def record_problem(record: dict[str, Any]) -> str | None:
    """Why a bundle line does not match its own hashes, or None when its content and chain link hold."""
    if record.get("payload") is None:
        return "payload is missing"
    if sha256_hex(canonical_json(record["payload"])) != record["content_sha256"]:
        return "payload does not match its content SHA-256"
    valid_until = record["valid_until"]
    fields = _Fields(
        {
            **record,
            "observed_at": _time(record["observed_at"]),
            "valid_until": None if valid_until is None else _time(valid_until),
            "collected_at": _time(record["collected_at"]),
        }
    )
    expected = record_link(
        record["prev_hash"],
        fields,
        _time(record["stored_at"]),
        json.dumps(record["controls"]),
        json.dumps(record["checks"], sort_keys=True),
    )
    if expected != record["chain_hash"]:
        return "fields do not match the record's chain hash"
    return None
