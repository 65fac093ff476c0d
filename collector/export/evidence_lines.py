"""One evidence record as one JSON line, and the checks ``verify-bundle`` runs on such a line.

A line carries every field the store's chain hash covers, so each record's content hash and chain link
can be recomputed from the bundle alone. ``controls``, ``checks`` and ``payload`` are the stored JSON text,
embedded as is (the payload is the canonical JSON its SHA-256 was taken over).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from collector.canonical import canonical_json, sha256_hex
from collector.export.queries import iso_utc
from collector.store.records import chain_hash

__all__ = ["control_file_name", "record_line", "record_problem"]

_FILE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def control_file_name(framework: str, control: str) -> str:
    safe = "".join(ch if ch in _FILE_SAFE else "_" for ch in control)
    return f"evidence/{framework}/{safe}.jsonl"


def record_line(row: Any) -> str:
    """The bundle line of a row from :mod:`collector.export.queries` (with payload)."""
    m = row._mapping
    head = json.dumps(
        {
            "seq": m["seq"],
            "id": m["id"],
            "run_id": m["run_id"],
            "connector_type": m["connector_type"],
            "instance": m["instance"],
            "connector_version": m["connector_version"],
            "kind": m["kind"],
            "subject_type": m["subject_type"],
            "subject_id": m["subject_id"],
            "observed_at": iso_utc(m["observed_at"]),
            "valid_until": iso_utc(m["valid_until"]),
            "collected_at": iso_utc(m["collected_at"]),
            "stored_at": iso_utc(m["stored_at"]),
            "source": m["source"],
            "config_hash": m["config_hash"],
            "content_sha256": m["content_sha256"],
            "prev_hash": m["prev_hash"],
            "chain_hash": m["chain_hash"],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    payload = m["payload"] if m["payload"] is not None else "null"
    return f'{head[:-1]},"controls":{m["controls"]},"checks":{m["checks"]},"payload":{payload}}}\n'


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO time, got {value!r}")
    return datetime.fromisoformat(value)


def record_problem(record: dict[str, Any]) -> str | None:
    """Why a bundle line does not match its own hashes, or None when its content and chain link hold."""
    if record.get("payload") is None:
        return "payload is missing"
    if sha256_hex(canonical_json(record["payload"])) != record["content_sha256"]:
        return "payload does not match its content SHA-256"
    valid_until = record["valid_until"]
    expected = chain_hash(
        record["prev_hash"],
        id=record["id"],
        run_id=record["run_id"],
        connector_type=record["connector_type"],
        instance=record["instance"],
        connector_version=record["connector_version"],
        kind=record["kind"],
        subject_type=record["subject_type"],
        subject_id=record["subject_id"],
        observed_at=_time(record["observed_at"]),
        valid_until=None if valid_until is None else _time(valid_until),
        collected_at=_time(record["collected_at"]),
        stored_at=_time(record["stored_at"]),
        content_sha256=record["content_sha256"],
        source=record["source"],
        config_hash=record["config_hash"],
        controls_json=json.dumps(record["controls"]),
        checks_json=json.dumps(record["checks"], sort_keys=True),
    )
    if expected != record["chain_hash"]:
        return "fields do not match the record's chain hash"
    return None
