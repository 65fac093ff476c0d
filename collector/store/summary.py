"""The summary tables (``evidence_latest``, ``evidence_counts``, ``run_counts``): kept in the transaction that appends
each run, so what the in-memory state, ``status`` and ``evidence`` need is read in O(subjects + instances) rows,
whatever the number of stored records.

``rebuild`` derives them from the evidence and run tables (the migration that adds them, and seeding tools that
write raw rows); :func:`latest_query` is the ranking it uses, the definition the incremental upkeep follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, literal, select

from collector import freshness
from collector.store.expressions import counts_for_freshness, fresh_from
from collector.store.schema import collection_runs, evidence, evidence_counts, evidence_latest, run_counts

__all__ = ["add_records", "add_run", "latest_query", "rebuild"]


def latest_query(
    dialect: str, max_seq: int | None = None, *, counted_only: bool = False, key_only: bool = False
) -> Any:
    """The latest record per (kind, subject): the newest by freshness time (see
    :func:`collector.freshness.fresh_from`), the last stored on a tie; ``counted_only``: among the records that count
    for freshness; ``key_only``: only seq, kind, subject and freshness time (what the summary keeps: a narrow sort).
    Ranks every stored row: for rebuilding the summary and for checking it, not for serving reads."""
    columns = (
        (evidence.c.seq, evidence.c.kind, evidence.c.subject_type, evidence.c.subject_id)
        if key_only
        else tuple(evidence.c)
    )
    source = select(*columns, fresh_from(evidence.c.observed_at, evidence.c.collected_at).label("fresh_from"))
    if max_seq is not None:
        source = source.where(evidence.c.seq <= max_seq)
    if counted_only:
        source = source.where(counts_for_freshness(evidence.c.checks, dialect))
    rows = source.subquery()
    ranked = select(
        rows,
        func.row_number()
        .over(
            partition_by=(rows.c.kind, rows.c.subject_type, rows.c.subject_id),
            order_by=(rows.c.fresh_from.desc(), rows.c.seq.desc()),
        )
        .label("rank"),
    ).subquery()
    return select(ranked).where(ranked.c.rank == 1)


def rebuild(conn: Connection, dialect: str) -> None:
    """Replace the summary tables with what the evidence and run tables say."""
    for table in (evidence_latest, evidence_counts, run_counts):
        conn.execute(delete(table))
    latest = latest_query(dialect, key_only=True).subquery()
    counted = latest_query(dialect, counted_only=True, key_only=True).subquery()
    key = ("kind", "subject_type", "subject_id")
    joined = latest.outerjoin(counted, and_(*(latest.c[k] == counted.c[k] for k in key)))
    conn.execute(
        insert(evidence_latest).from_select(
            [*key, "latest_seq", "latest_fresh_from", "counted_seq", "counted_fresh_from"],
            select(
                *(latest.c[k] for k in key), latest.c.seq, latest.c.fresh_from, counted.c.seq, counted.c.fresh_from
            ).select_from(joined),
        )
    )
    groups = (evidence.c.connector_type, evidence.c.instance, evidence.c.kind)
    conn.execute(
        insert(evidence_counts).from_select(
            ["connector_type", "instance", "kind", "records"], select(*groups, func.count()).group_by(*groups)
        )
    )
    runs = (collection_runs.c.connector_type, collection_runs.c.instance, collection_runs.c.status)
    conn.execute(
        insert(run_counts).from_select(
            ["connector_type", "instance", "status", "runs", "problems"],
            select(*runs, func.count(), func.coalesce(func.sum(collection_runs.c.problems), literal(0))).group_by(
                *runs
            ),
        )
    )


def _marks(dialect: str, n: int) -> str:
    return ", ".join(["?" if dialect == "sqlite" else "%s"] * n)


def _newer(column: str) -> str:
    """The stored value or the incoming one: the incoming wins a tie, as it was stored later."""
    return f"excluded.{column} >= evidence_latest.{column}"


_PG_ARRAYS = {
    "evidence_latest": "varchar[], varchar[], varchar[], bigint[], timestamptz[], bigint[], timestamptz[]",
    "evidence_counts": "varchar[], varchar[], varchar[], bigint[]",
}


def _rows_in(dialect: str, table: str, n: int) -> str:
    """Where an upsert's rows come from: one parameter row each (SQLite executemany), or on PostgreSQL one array
    per column unnested server-side, so a run's summary rows are one statement and one round trip."""
    if dialect == "postgresql":
        arrays = ", ".join(f"%s::{t}" for t in _PG_ARRAYS[table].split(", "))
        return f"SELECT * FROM unnest({arrays})"
    return f"VALUES ({_marks(dialect, n)})"


def _execute_rows(conn: Connection, dialect: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if dialect == "postgresql":
        conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*rows, strict=True)))
    else:
        conn.exec_driver_sql(sql, rows)


def _latest_upsert(dialect: str) -> str:
    take_latest = _newer("latest_fresh_from")
    take_counted = (
        "excluded.counted_seq IS NOT NULL AND (evidence_latest.counted_fresh_from IS NULL OR "
        f"{_newer('counted_fresh_from')})"
    )

    def pick(condition: str, column: str) -> str:
        return f"{column} = CASE WHEN {condition} THEN excluded.{column} ELSE evidence_latest.{column} END"

    return (
        "INSERT INTO evidence_latest (kind, subject_type, subject_id, latest_seq, latest_fresh_from, counted_seq, "
        f"counted_fresh_from) {_rows_in(dialect, 'evidence_latest', 7)} "
        "ON CONFLICT (kind, subject_type, subject_id) DO UPDATE SET "
        + ", ".join(
            (
                pick(take_latest, "latest_seq"),
                pick(take_latest, "latest_fresh_from"),
                pick(take_counted, "counted_seq"),
                pick(take_counted, "counted_fresh_from"),
            )
        )
    )


def add_records(
    conn: Connection, dialect: str, records: Sequence[Any], first_seq: int, fresh_from: Sequence[Any]
) -> None:
    """Account for records just appended with consecutive seqs from ``first_seq``, in the same transaction.

    ``fresh_from``: each record's :func:`collector.freshness.fresh_from` as the driver stores it in the evidence
    table (text on SQLite, which sorts as the time does), so the comparisons here and in SQL agree."""
    # per subject, of this batch: [latest seq, its freshness time, counted seq, its freshness time]
    best: dict[tuple[str, str, str], list[Any]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for offset, (rec, at) in enumerate(zip(records, fresh_from, strict=True)):
        seq = first_seq + offset
        key = (rec.kind, rec.subject_type, rec.subject_id)
        group = (rec.connector_type, rec.instance, rec.kind)
        counts[group] = counts.get(group, 0) + 1
        counted = not rec.checks or freshness.counts_for_freshness(rec.checks)
        entry = best.get(key)
        if entry is None:
            best[key] = [seq, at, seq, at] if counted else [seq, at, None, None]
            continue
        if at >= entry[1]:
            entry[0], entry[1] = seq, at
        if counted and (entry[3] is None or at >= entry[3]):
            entry[2], entry[3] = seq, at
    _execute_rows(conn, dialect, _latest_upsert(dialect), [(*key, *entry) for key, entry in best.items()])
    _execute_rows(
        conn,
        dialect,
        "INSERT INTO evidence_counts (connector_type, instance, kind, records) "
        f"{_rows_in(dialect, 'evidence_counts', 4)} ON CONFLICT (connector_type, instance, kind) "
        "DO UPDATE SET records = evidence_counts.records + excluded.records",
        [(*group, n) for group, n in counts.items()],
    )


def add_run(conn: Connection, dialect: str, connector_type: str, instance: str, status: str, problems: int) -> None:
    conn.exec_driver_sql(
        "INSERT INTO run_counts (connector_type, instance, status, runs, problems) "
        f"VALUES ({_marks(dialect, 5)}) ON CONFLICT (connector_type, instance, status) "
        "DO UPDATE SET runs = run_counts.runs + 1, problems = run_counts.problems + excluded.problems",
        (connector_type, instance, status, 1, problems),
    )
