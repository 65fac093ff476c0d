"""The reads an export makes, over the store's tables. Point in time is by ``stored_at``; big reads stream.

Scope is a list of control-tag prefixes (``soc2:`` for a framework, ``soc2:CC7.1"`` for one control) matched
with LIKE against the JSON ``controls`` column: a cheap superset that callers narrow exactly in Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, String, case, func, null, or_, select, type_coerce, union_all

from collector.store.expressions import counts_for_freshness, fresh_from
from collector.store.schema import UTCDateTime, evidence, evidence_content

__all__ = [
    "RECORD_COLUMNS",
    "ChainAnchor",
    "chain_anchor",
    "count_records",
    "first_stored_at",
    "iso_utc",
    "iter_arrivals",
    "iter_latest_per_subject",
    "iter_newest_per_kind",
    "iter_records_stored_between",
    "scope_prefixes",
    "to_utc",
]

PAGE_ROWS = 5000

_TIMES: tuple[str, ...] = tuple(c.name for c in evidence.columns if isinstance(c.type, UTCDateTime))
_PLAIN: tuple[str, ...] = tuple(c.name for c in evidence.columns if c.name not in _TIMES)
RECORD_COLUMNS: tuple[str, ...] = (*_PLAIN, *_TIMES)
"""Column order of record rows (then ``payload``, when asked for): the evidence table's columns in table order,
times last. Times come back raw (a string on SQLite) for speed: use :func:`iso_utc`."""


@dataclass(frozen=True, slots=True)
class ChainAnchor:
    seq: int
    chain_hash: str


@lru_cache(maxsize=4096)
def to_utc(value: str | datetime) -> datetime:
    """A stored time as an aware UTC datetime, whether the driver gave a string (SQLite) or a datetime.

    Cached: the records of one run share their stored and collected times."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@lru_cache(maxsize=4096)
def iso_utc(value: str | datetime | None) -> str | None:
    """The same text :func:`collector.store.records.iso` gives, without the type decorator's per-row cost."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 26 and value[10] == " " and value[19] == ".":
        fraction = value[20:]
        return f"{value[:10]}T{value[11:19]}{'' if fraction == '000000' else '.' + fraction}+00:00"
    return to_utc(value).isoformat()


def scope_prefixes(framework: str, controls: Sequence[str]) -> list[str]:
    return [f'{c}"' for c in controls] if controls else [f"{framework}:"]


def _in_scope(prefixes: Sequence[str]) -> ColumnElement[bool]:
    return or_(*[evidence.c.controls.like(f'%"{prefix}%') for prefix in prefixes])


def _raw_times(*names: str) -> list[Any]:
    return [type_coerce(evidence.c[name], String).label(name) for name in names]


def _fresh_from() -> ColumnElement[Any]:
    return fresh_from(evidence.c.observed_at, evidence.c.collected_at)


def _raw_fresh_from() -> Any:
    return type_coerce(_fresh_from(), String).label("fresh_from")


def _timed_subject() -> Any:
    """The subject of a record with a ``valid_until`` (a subject's newer one replaces it), else null."""
    subject = evidence.c.subject_type + ":" + evidence.c.subject_id
    return case((evidence.c.valid_until.is_(None), null()), else_=subject).label("subject")


def _counts(conn: Connection) -> ColumnElement[bool]:
    return counts_for_freshness(evidence.c.checks, conn.dialect.name)


def _record_columns(with_payload: bool) -> list[Any]:
    cols: list[Any] = [evidence.c[name] for name in _PLAIN]
    cols += _raw_times(*_TIMES)
    if with_payload:
        cols.append(evidence_content.c.payload)
    return cols


def first_stored_at(conn: Connection) -> datetime | None:
    value = conn.execute(select(func.min(evidence.c.stored_at))).scalar()
    return None if value is None else to_utc(value)


def count_records(conn: Connection, prefixes: Sequence[str], after: datetime | None, until: datetime) -> int:
    query = select(func.count()).select_from(evidence).where(_in_scope(prefixes), evidence.c.stored_at <= until)
    if after is not None:
        query = query.where(evidence.c.stored_at > after)
    return int(conn.execute(query).scalar_one())


def chain_anchor(conn: Connection, until: datetime) -> ChainAnchor | None:
    """The last link of the whole chain stored at or before ``until``: compare it with the live store later."""
    last = select(func.max(evidence.c.seq)).where(evidence.c.stored_at <= until).scalar_subquery()
    row = conn.execute(select(evidence.c.seq, evidence.c.chain_hash).where(evidence.c.seq == last)).first()
    return None if row is None else ChainAnchor(int(row.seq), str(row.chain_hash))


def iter_records_stored_between(
    conn: Connection, prefixes: Sequence[str], after: datetime, until: datetime, page_rows: int = PAGE_ROWS
) -> Iterator[Any]:
    """Records in scope with ``after < stored_at <= until``, with payload, by seq (keyset paging on seq)."""
    first = conn.execute(
        select(func.min(evidence.c.seq)).where(evidence.c.stored_at > after, evidence.c.stored_at <= until)
    ).scalar()
    if first is None:
        return
    last_seq = int(first) - 1
    while True:
        query = (
            select(*_record_columns(True))
            .join(evidence_content, evidence_content.c.sha256 == evidence.c.content_sha256, isouter=True)
            .where(
                evidence.c.seq > last_seq,
                evidence.c.stored_at > after,
                evidence.c.stored_at <= until,
                _in_scope(prefixes),
            )
            .order_by(evidence.c.seq)
            .limit(page_rows)
        )
        rows = conn.execute(query).all()
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq


def _stream(conn: Connection, query: Select[Any]) -> Iterator[Any]:
    result = conn.execution_options(stream_results=True, yield_per=PAGE_ROWS).execute(query)
    try:
        for partition in result.partitions():
            yield from partition
    finally:
        result.close()


def iter_latest_per_subject(
    conn: Connection, prefixes: Sequence[str], as_of: datetime, *, with_payload: bool
) -> Iterator[Any]:
    """Per (kind, subject), the latest record (by freshness time, then seq) among those stored by ``as_of``, in seq
    order: the store's own rule (:meth:`collector.store.Store.latest_records`)."""
    ranked = (
        select(
            evidence.c.seq,
            func.row_number()
            .over(
                partition_by=(evidence.c.kind, evidence.c.subject_type, evidence.c.subject_id),
                order_by=(_fresh_from().desc(), evidence.c.seq.desc()),
            )
            .label("rank"),
        )
        .where(evidence.c.stored_at <= as_of)
        .subquery()
    )
    query = (
        select(*_record_columns(with_payload))
        .join(ranked, ranked.c.seq == evidence.c.seq)
        .where(ranked.c.rank == 1, _in_scope(prefixes))
        .order_by(evidence.c.seq)
    )
    if with_payload:
        query = query.join(evidence_content, evidence_content.c.sha256 == evidence.c.content_sha256, isouter=True)
    return _stream(conn, query)


def iter_newest_per_kind(conn: Connection, prefixes: Sequence[str], as_of: datetime) -> Iterator[Any]:
    """The state at a time, as arrivals (see :func:`iter_arrivals`) of the records stored by ``as_of`` that count for
    freshness: per (kind, control tags) the newest one without a ``valid_until``, and per (kind, subject) the latest
    one with a ``valid_until``."""
    counted = select(
        evidence.c.seq,
        *_raw_times("stored_at", "valid_until"),
        _raw_fresh_from(),
        evidence.c.kind,
        evidence.c.controls,
        _timed_subject(),
        evidence.c.subject_type,
        evidence.c.subject_id,
        _fresh_from().label("fresh_at"),
        evidence.c.stored_at.label("stored_time"),
    ).where(evidence.c.stored_at <= as_of, _in_scope(prefixes), _counts(conn))
    rows = counted.subquery()
    untimed = select(
        rows,
        func.row_number()
        .over(
            partition_by=(rows.c.kind, rows.c.controls),
            order_by=(rows.c.fresh_at.desc(), rows.c.stored_time.desc(), rows.c.seq.desc()),
        )
        .label("rank"),
    ).where(rows.c.subject.is_(None))
    timed = select(
        rows,
        func.row_number()
        .over(
            partition_by=(rows.c.kind, rows.c.subject_type, rows.c.subject_id),
            order_by=(rows.c.fresh_at.desc(), rows.c.seq.desc()),
        )
        .label("rank"),
    ).where(rows.c.subject.is_not(None))
    ranked = union_all(untimed, timed).subquery()
    query = (
        select(
            ranked.c.stored_at,
            ranked.c.fresh_from,
            ranked.c.valid_until,
            ranked.c.kind,
            ranked.c.controls,
            ranked.c.subject,
        )
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.stored_time, ranked.c.seq)
    )
    return _stream(conn, query)


def iter_arrivals(conn: Connection, prefixes: Sequence[str], after: datetime, until: datetime) -> Iterator[Any]:
    """What coverage needs of the records stored in ``(after, until]`` that count for freshness, in stored_at order:
    their freshness time (``fresh_from``), ``valid_until``, kind, control tags, and the subject of those with a
    ``valid_until``.

    Records of one commit with the same kind, tags and times are one arrival (a run stores many subjects at once);
    within a commit, arrivals come in the order of their last record, so the last one stored wins ties as it would
    record by record."""
    times = _raw_times("stored_at", "valid_until")
    fresh = type_coerce(_fresh_from(), String)
    subject = case(
        (evidence.c.valid_until.is_(None), null()), else_=evidence.c.subject_type + ":" + evidence.c.subject_id
    )
    columns = (*times, fresh.label("fresh_from"), evidence.c.kind, evidence.c.controls, subject.label("subject"))
    query = (
        select(*columns)
        .where(evidence.c.stored_at > after, evidence.c.stored_at <= until, _in_scope(prefixes), _counts(conn))
        .group_by(*times, fresh, evidence.c.kind, evidence.c.controls, subject)
        .order_by(times[0], func.max(evidence.c.seq))
    )
    return _stream(conn, query)
