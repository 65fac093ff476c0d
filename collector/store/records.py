"""What the store writes and reads: records ready to commit, runs, and the chain hash."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from collector.canonical import sha256_hex

__all__ = [
    "FIELD_SEPARATOR",
    "GENESIS_HASH",
    "PreparedRecord",
    "RunRecord",
    "StoredRecord",
    "iso",
    "record_link",
]

GENESIS_HASH = "0" * 64
FIELD_SEPARATOR = "\x1f"


def iso(value: datetime) -> str:
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat()


@dataclass(slots=True, kw_only=True)
class _ChainedFields:
    """The fields a record's chain hash covers (with its stored time and the controls/checks JSON)."""

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
    controls: list[str]
    checks: list[dict[str, Any]]


@dataclass(slots=True, kw_only=True)
class PreparedRecord(_ChainedFields):
    """An observation after the core added ids, hashes, tags and check results; not yet stored."""

    payload_json: str
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


_CHAINED = tuple(f.name for f in fields(_ChainedFields))
_JSON_COLUMNS = ("controls", "checks")


@dataclass(slots=True, kw_only=True)
class StoredRecord(_ChainedFields):
    seq: int
    stored_at: datetime
    prev_hash: str
    chain_hash: str
    payload: Any = None

    @classmethod
    def from_row(cls, row: Any, payload: Any = None) -> StoredRecord:
        m = row._mapping
        plain = {name: m[name] for name in _CHAINED if name not in _JSON_COLUMNS}
        return cls(
            **plain,
            controls=json.loads(m["controls"]),
            checks=json.loads(m["checks"]),
            seq=m["seq"],
            stored_at=m["stored_at"],
            prev_hash=m["prev_hash"],
            chain_hash=m["chain_hash"],
            payload=payload,
        )

    @classmethod
    def from_prepared(
        cls, rec: PreparedRecord, *, seq: int, stored_at: datetime, prev_hash: str, chain_hash: str
    ) -> StoredRecord:
        return cls(
            **{name: getattr(rec, name) for name in _CHAINED},
            seq=seq,
            stored_at=stored_at,
            prev_hash=prev_hash,
            chain_hash=chain_hash,
        )


class _RecordFields(Protocol):
    """What :func:`record_link` reads: a prepared or stored record, or a bundle line's fields."""

    @property
    def id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def connector_type(self) -> str: ...
    @property
    def instance(self) -> str: ...
    @property
    def connector_version(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject_type(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def observed_at(self) -> datetime: ...
    @property
    def valid_until(self) -> datetime | None: ...
    @property
    def collected_at(self) -> datetime: ...
    @property
    def content_sha256(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def config_hash(self) -> str: ...


def record_link(prev_hash: str, rec: _RecordFields, stored_at: datetime, controls_json: str, checks_json: str) -> str:
    """The chain hash: SHA-256 over the previous link and every stored field of the row, joined by U+001F (UNIT
    SEPARATOR). No field can contain U+001F: identifiers are validated at the observation, JSON fields escape it."""
    return sha256_hex(
        FIELD_SEPARATOR.join(
            (
                prev_hash,
                rec.id,
                rec.run_id,
                rec.connector_type,
                rec.instance,
                rec.connector_version,
                rec.kind,
                rec.subject_type,
                rec.subject_id,
                iso(rec.observed_at),
                iso(rec.valid_until) if rec.valid_until is not None else "",
                iso(rec.collected_at),
                iso(stored_at),
                rec.content_sha256,
                rec.source,
                rec.config_hash,
                controls_json,
                checks_json,
            )
        ).encode("utf-8")
    )
