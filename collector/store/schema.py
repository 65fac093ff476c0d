"""Tables. Evidence is append-only; payloads are content-addressed and stored once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "UTCDateTime",
    "access_log",
    "chain_head",
    "collection_runs",
    "cursors",
    "evidence",
    "evidence_content",
    "evidence_counts",
    "evidence_latest",
    "metadata",
    "run_counts",
    "run_leases",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as UTC, always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


BigInt = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

evidence_content = Table(
    "evidence_content",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("payload", Text, nullable=False),
    Column("size_bytes", Integer, nullable=False),
)

collection_runs = Table(
    "collection_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("connector_type", String(100), nullable=False),
    Column("instance", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("observations", Integer, nullable=False),
    Column("problems", Integer, nullable=False),
    Column("problem_details", Text, nullable=False),
    Column("error", Text),
    Column("config_hash", String(64), nullable=False),
    Index(None, "instance", "finished_at"),
)

evidence = Table(
    "evidence",
    metadata,
    Column("seq", BigInt, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("run_id", String(36), ForeignKey("collection_runs.id"), nullable=False),
    Column("connector_type", String(100), nullable=False),
    Column("instance", String(200), nullable=False),
    Column("connector_version", String(50), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("subject_type", String(100), nullable=False),
    Column("subject_id", String(1000), nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=True),
    Column("collected_at", UTCDateTime, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("content_sha256", String(64), ForeignKey("evidence_content.sha256"), nullable=False),
    Column("source", Text, nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("controls", Text, nullable=False),
    Column("checks", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Index(None, "kind", "subject_type", "subject_id", "observed_at"),
    Index(None, "stored_at"),
    Index(None, "run_id"),
)

evidence_latest = Table(
    "evidence_latest",
    metadata,
    Column("kind", String(100), primary_key=True),
    Column("subject_type", String(100), primary_key=True),
    Column("subject_id", String(1000), primary_key=True),
    Column("latest_seq", BigInt, nullable=False),
    Column("latest_fresh_from", UTCDateTime, nullable=False),
    Column("counted_seq", BigInt, nullable=True),
    Column("counted_fresh_from", UTCDateTime, nullable=True),
    sqlite_with_rowid=False,
)
"""Per (kind, subject): the seq of its latest record (newest freshness time, the last stored on a tie) and of its
latest record that counts for freshness (None while it has none). Written in the transaction that appends the
records, so it always matches the evidence up to ``chain_head.seq``; what start-up, ``status`` and ``evidence`` read
instead of ranking every stored row."""

evidence_counts = Table(
    "evidence_counts",
    metadata,
    Column("connector_type", String(100), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("kind", String(100), primary_key=True),
    Column("records", BigInt, nullable=False),
    sqlite_with_rowid=False,
)
"""Stored records per (connector type, instance, kind), kept with each append."""

run_counts = Table(
    "run_counts",
    metadata,
    Column("connector_type", String(100), primary_key=True),
    Column("instance", String(200), primary_key=True),
    Column("status", String(20), primary_key=True),
    Column("runs", BigInt, nullable=False),
    Column("problems", BigInt, nullable=False),
    sqlite_with_rowid=False,
)
"""Stored runs and the inputs they skipped as bad, per (connector type, instance, status), kept with each run."""

cursors = Table(
    "cursors",
    metadata,
    Column("instance", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInt, nullable=False),
    Column("chain_hash", String(64), nullable=False),
)

run_leases = Table(
    "run_leases",
    metadata,
    Column("instance", String(200), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("slot", BigInteger, nullable=False),
    Column("holder", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)
"""The latest claimed run of each job when several replicas share PostgreSQL (state: running | done)."""

access_log = Table(
    "access_log",
    metadata,
    Column("seq", BigInt, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("principal", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("via", String(20), nullable=False),
    Column("client", String(100), nullable=False),
    Column("method", String(10), nullable=False),
    Column("target", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Index(None, "at"),
)
"""Every API and console request: who (principal, role, how authenticated, from where), what (method and path with
query), when, and the response status; chained like evidence (:mod:`collector.store.access_log`)."""
