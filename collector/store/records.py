"""What the store writes and reads: records ready to commit, runs, and the chain hash."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from collector.canonical import sha256_hex

__all__ = [
    "FIELD_SEPARATOR",
    "GENESIS_HASH",
    "PreparedRecord",
    "RunRecord",
    "StoredRecord",
    "chain_hash",
    "iso",
    "record_link",
]

GENESIS_HASH = "0" * 64
FIELD_SEPARATOR = "\x1f"


@lru_cache(maxsize=256)
def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


@dataclass(slots=True)
class PreparedRecord:
    """An observation after the core added ids, hashes, tags and check results; not yet stored."""

    id: str
    run_id: str
    connector_type: str
    instance: str
    connector_version: str
    kind: str
    subject_type: str
    subject_id: str
    observed_at: datetime
    collected_at: datetime
    content_sha256: str
    payload_json: str
    valid_until: datetime | None
    source: str
    config_hash: str
    controls: list[str]
    checks: list[dict[str, Any]]
    checks_json: str = ""

    def __post_init__(self) -> None:
        if not self.checks_json:
            self.checks_json = json.dumps(self.checks, sort_keys=True) if self.checks else "[]"


@dataclass(slots=True)
class RunRecord:
    id: str
    connector_type: str
    instance: str
    started_at: datetime
    finished_at: datetime
    status: str
    observations: int
    problems: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    config_hash: str = ""


@dataclass(slots=True)
class StoredRecord:
    seq: int
    id: str
    run_id: str
    connector_type: str
    instance: str
    connector_version: str
    kind: str
    subject_type: str
    subject_id: str
    observed_at: datetime
    valid_until: datetime | None
    collected_at: datetime
    stored_at: datetime
    content_sha256: str
    source: str
    config_hash: str
    controls: list[str]
    checks: list[dict[str, Any]]
    prev_hash: str
    chain_hash: str
    payload: Any = None

    @classmethod
    def from_row(cls, row: Any, payload: Any = None) -> StoredRecord:
        m = row._mapping
        return cls(
            seq=m["seq"],
            id=m["id"],
            run_id=m["run_id"],
            connector_type=m["connector_type"],
            instance=m["instance"],
            connector_version=m["connector_version"],
            kind=m["kind"],
            subject_type=m["subject_type"],
            subject_id=m["subject_id"],
            observed_at=m["observed_at"],
            valid_until=m["valid_until"],
            collected_at=m["collected_at"],
            stored_at=m["stored_at"],
            content_sha256=m["content_sha256"],
            source=m["source"],
            config_hash=m["config_hash"],
            controls=json.loads(m["controls"]),
            checks=json.loads(m["checks"]),
            prev_hash=m["prev_hash"],
            chain_hash=m["chain_hash"],
            payload=payload,
        )


def chain_hash(
    prev_hash: str,
    *,
    id: str,
    run_id: str,
    connector_type: str,
    instance: str,
    connector_version: str,
    kind: str,
    subject_type: str,
    subject_id: str,
    observed_at: datetime,
    valid_until: datetime | None,
    collected_at: datetime,
    stored_at: datetime,
    content_sha256: str,
    source: str,
    config_hash: str,
    controls_json: str,
    checks_json: str,
) -> str:
    """SHA-256 over the previous link and every stored field of the row, joined by U+001F (UNIT SEPARATOR).

    No field can contain U+001F: identifiers are validated at the observation, JSON fields escape it."""
    return sha256_hex(
        FIELD_SEPARATOR.join(
            (
                prev_hash,
                id,
                run_id,
                connector_type,
                instance,
                connector_version,
                kind,
                subject_type,
                subject_id,
                iso(observed_at),
                iso(valid_until) if valid_until is not None else "",
                iso(collected_at),
                iso(stored_at),
                content_sha256,
                source,
                config_hash,
                controls_json,
                checks_json,
            )
        ).encode("utf-8")
    )


class _RecordFields(Protocol):
    id: str
    run_id: str
    connector_type: str
    instance: str
    connector_version: str
    kind: str
    subject_type: str
    subject_id: str
    observed_at: datetime
    valid_until: datetime | None
    collected_at: datetime
    content_sha256: str
    source: str
    config_hash: str


def record_link(prev_hash: str, rec: _RecordFields, stored_at: datetime, controls_json: str, checks_json: str) -> str:
    """:func:`chain_hash` of a prepared or stored record."""
    return chain_hash(
        prev_hash,
        id=rec.id,
        run_id=rec.run_id,
        connector_type=rec.connector_type,
        instance=rec.instance,
        connector_version=rec.connector_version,
        kind=rec.kind,
        subject_type=rec.subject_type,
        subject_id=rec.subject_id,
        observed_at=rec.observed_at,
        valid_until=rec.valid_until,
        collected_at=rec.collected_at,
        stored_at=stored_at,
        content_sha256=rec.content_sha256,
        source=rec.source,
        config_hash=rec.config_hash,
        controls_json=controls_json,
        checks_json=checks_json,
    )
