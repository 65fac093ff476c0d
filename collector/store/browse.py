"""Reads the API and console make: pages of records newest first with a cursor, one record with its place in the
chain, a control's evidence times over a period, an instance's runs. JSON columns are narrowed with LIKE first and
matched exactly in Python; a page stops after a bounded scan and says where to go on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from collector.store import EvidenceFilter, Store, StoredRecord
from collector.store.schema import chain_head, collection_runs, evidence, evidence_content

__all__ = ["EvidencePage", "EvidenceTimesRow", "RunRow", "control_times", "evidence_page", "record_by_id", "runs"]

_SCAN_BATCHES = 20
"""A page reads at most this many batches before it returns what it found and a cursor to go on from."""


@dataclass(frozen=True, slots=True)
class EvidencePage:
    records: list[StoredRecord]
    next_cursor: int | None
    """The seq to continue below; None when nothing older matches."""


@dataclass(frozen=True, slots=True)
class EvidenceTimesRow:
    kind: str
    observed_at: datetime
    collected_at: datetime
    valid_until: datetime | None
    checks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    instance: str
    connector_type: str
    started_at: datetime
    finished_at: datetime
    status: str
    observations: int
    problems: list[dict[str, str]]
    error: str | None


def _matches(rec: StoredRecord, filt: EvidenceFilter) -> bool:
    if filt.control and filt.control not in rec.controls:
        return False
    if filt.check or filt.result:
        return any(
            (not filt.check or c["id"] == filt.check) and (not filt.result or c["result"] == filt.result)
            for c in rec.checks
        )
    return True


def _filtered(query: Select[Any], filt: EvidenceFilter, since: datetime | None, until: datetime | None) -> Any:
    c = evidence.c
    if filt.kind:
        query = query.where(c.kind == filt.kind)
    if filt.instance:
        query = query.where(c.instance == filt.instance)
    if filt.subject:
        subject_type, sep, subject_id = filt.subject.partition(":")
        if sep and subject_id:
            query = query.where(
                (c.subject_id == filt.subject) | ((c.subject_type == subject_type) & (c.subject_id == subject_id))
            )
        else:
            query = query.where(c.subject_id == filt.subject)
    if filt.control:
        query = query.where(c.controls.like(f"%{json.dumps(filt.control)}%"))
    if filt.check:
        query = query.where(c.checks.like(f"%{json.dumps(filt.check)}%"))
    if filt.result:
        query = query.where(c.checks.like(f"%{json.dumps(filt.result)}%"))
    if since is not None:
        query = query.where(c.observed_at >= since)
    if until is not None:
        query = query.where(c.observed_at < until)
    return query


def evidence_page(
    store: Store,
    filt: EvidenceFilter,
    *,
    limit: int,
    before: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    with_payload: bool = False,
) -> EvidencePage:
    """Records matching ``filt``, newest stored first, below seq ``before``."""
    columns: list[Any] = [evidence]
    if with_payload:
        columns.append(evidence_content.c.payload)
    base = select(*columns)
    if with_payload:
        base = base.join(evidence_content, evidence_content.c.sha256 == evidence.c.content_sha256)
    base = _filtered(base, filt, since, until).order_by(evidence.c.seq.desc())
    batch = max(limit * 4, 200)
    found: list[StoredRecord] = []
    cursor = before
    with store.engine.connect() as conn:
        for _ in range(_SCAN_BATCHES):
            query = base if cursor is None else base.where(evidence.c.seq < cursor)
            rows = conn.execute(query.limit(batch)).all()
            for row in rows:
                rec = StoredRecord.from_row(row, json.loads(row.payload) if with_payload else None)
                cursor = rec.seq
                if _matches(rec, filt):
                    found.append(rec)
                    if len(found) == limit:
                        return EvidencePage(found, rec.seq)
            if len(rows) < batch:
                return EvidencePage(found, None)
    return EvidencePage(found, cursor)


def record_by_id(store: Store, record_id: str) -> tuple[StoredRecord, int] | None:
    """The record with its payload, and the chain head's seq (its position: seq of head)."""
    query = (
        select(evidence, evidence_content.c.payload)
        .join(evidence_content, evidence_content.c.sha256 == evidence.c.content_sha256, isouter=True)
        .where(evidence.c.id == record_id)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
        head = conn.execute(select(chain_head.c.seq)).scalar()
    if row is None:
        return None
    payload = json.loads(row.payload) if row.payload is not None else None
    return StoredRecord.from_row(row, payload), int(head or 0)


def control_times(
    store: Store, control: str, since: datetime, until: datetime, limit: int = 20_000
) -> Iterator[EvidenceTimesRow]:
    """Times of the records tagged with ``control`` observed in [since, until), oldest first, at most ``limit``."""
    c = evidence.c
    query = (
        select(c.kind, c.observed_at, c.collected_at, c.valid_until, c.checks, c.controls)
        .where(c.controls.like(f"%{json.dumps(control)}%"), c.observed_at >= since, c.observed_at < until)
        .order_by(c.observed_at)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        for r in conn.execute(query):
            if control in json.loads(r.controls):
                yield EvidenceTimesRow(r.kind, r.observed_at, r.collected_at, r.valid_until, json.loads(r.checks))


def runs(store: Store, instance: str | None, limit: int) -> list[RunRow]:
    """The newest runs (of one instance, or all), newest first."""
    c = collection_runs.c
    query = select(collection_runs).order_by(c.finished_at.desc(), c.id).limit(limit)
    if instance is not None:
        query = query.where(c.instance == instance)
    with store.engine.connect() as conn:
        return [
            RunRow(
                r.id,
                r.instance,
                r.connector_type,
                r.started_at,
                r.finished_at,
                r.status,
                r.observations,
                json.loads(r.problem_details),
                r.error,
            )
            for r in conn.execute(query)
        ]

