"""The hot reads (start-up, status, `evidence`, the replicas' refresh) look rows up by key: no full scan of the
evidence table, checked with the database's own query plan (on PostgreSQL, the rows each plan node actually read)
on a store of a year's shape (many records per subject)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from collector.store import EvidenceFilter, Store, _latest_records_query, _summary_latest_query
from collector.store import summary as store_summary
from collector.store.schema import collection_runs, evidence

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECORDS = 60_000
SUBJECTS = 20
"""A subject observed hourly for a year is ~8,760 records: the realistic ratio is thousands of records per subject."""

_ROWS = {
    "postgresql": (
        "SELECT md5(g::text), 'run', 'bench', 'bench', '1', 'container.scan', 'image', 'img-' || (g % {subjects}), "
        "t, NULL, t, t, '{sha}', 'bench', '{zero}', '[\"soc2:CC7.1\"]', '[]', '{zero}', '{zero}' "
        "FROM generate_series(1, {n}) AS g, "
        "LATERAL (SELECT timestamptz '2026-01-01' + g * interval '1 second' AS t) AS x"
    ),
    "sqlite": (
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n}) "
        "SELECT printf('%036d', n), 'run', 'bench', 'bench', '1', 'container.scan', 'image', "
        "'img-' || (n % {subjects}), "
        "strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01', '+' || n || ' seconds'), NULL, "
        "strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01', '+' || n || ' seconds'), "
        "strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01', '+' || n || ' seconds'), "
        "'{sha}', 'bench', '{zero}', '[\"soc2:CC7.1\"]', '[]', '{zero}', '{zero}' FROM g"
    ),
}


@pytest.fixture
def year_store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    store.upgrade()
    sha, zero = "a" * 64, "0" * 64
    columns = [c.name for c in evidence.c if c.name != "seq"]
    rows = _ROWS[store.dialect].format(n=RECORDS, subjects=SUBJECTS, sha=sha, zero=zero)
    with store.engine.begin() as conn:
        conn.execute(
            collection_runs.insert(),
            {
                "id": "run", "connector_type": "bench", "instance": "bench", "started_at": T0,
                "finished_at": T0, "status": "succeeded", "observations": RECORDS, "problems": 0,
                "problem_details": "[]", "config_hash": zero,
            },
        )  # fmt: skip
        conn.execute(sa.text("INSERT INTO evidence_content VALUES (:sha, '{}', 2)"), {"sha": sha})
        conn.execute(sa.text(f"INSERT INTO evidence ({', '.join(columns)}) {rows}"))
        store_summary.rebuild(conn, store.dialect)
    with store.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    yield store
    store.dispose()


def _evidence_rows_read(store: Store, query: sa.Executable) -> int | None:
    """Rows the query reads from the evidence table (all loops; PostgreSQL runs it: EXPLAIN ANALYZE), or on SQLite,
    None when the plan only searches it by key and -1 when it scans it (SQLite's plan has no row counts)."""
    compiled = query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            return -1 if re.search(r"\bSCAN evidence\b(?!_)", plan) else None
        (document,) = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}").scalar_one()
    return sum(
        node["Actual Rows"] * node["Actual Loops"]
        for node in _nodes(document["Plan"])
        if node.get("Relation Name") == "evidence"
    )


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _scans_evidence(store: Store, query: sa.Executable) -> bool:
    """A pass over much of the evidence table, by a sequential scan or a whole index."""
    read = _evidence_rows_read(store, query)
    return read == -1 if store.dialect == "sqlite" else (read or 0) > RECORDS // 10


HOT_READS = {
    "start-up and status: the latest per subject": lambda: _summary_latest_query(),
    "evidence --control X": lambda: _latest_records_query(EvidenceFilter(control="soc2:CC7.1")),
    "evidence --kind K --subject S": lambda: _latest_records_query(
        EvidenceFilter(kind="container.scan", subject="image:img-7")
    ),
    "a replica's refresh: records after a seq": lambda: (
        sa.select(evidence.c.seq, evidence.c.kind).where(evidence.c.seq > RECORDS - 100).order_by(evidence.c.seq)
    ),
    "connector health: recent runs of one instance": lambda: (
        sa.select(collection_runs)
        .where(collection_runs.c.instance == "bench")
        .order_by(collection_runs.c.finished_at.desc())
        .limit(100)
    ),
}


def test_hot_reads_never_scan_the_evidence_table(year_store: Store) -> None:
    for name, build in HOT_READS.items():
        assert not _scans_evidence(year_store, build()), f"{name} reads much of the evidence table"

    # the check can fail: ranking every row, as start-up did before the summary, is a full scan
    assert _scans_evidence(year_store, store_summary.latest_query(year_store.dialect))

    # and the reads answer from the seeded store
    summary = year_store.state_summary()
    assert len(summary.latest) == SUBJECTS
    assert summary.record_counts == {("bench", "bench", "container.scan"): RECORDS}
    assert len(year_store.latest_records(EvidenceFilter(control="soc2:CC7.1"), with_payload=False)) == SUBJECTS
