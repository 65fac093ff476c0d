"""Store size per million records: the SQLite file, and the PostgreSQL tables with their indexes, after seeding N
chained records (~230-byte payloads, one distinct payload per subject, two control tags, no checks) with the
summary tables. Usage: python bench/store_size.py [N] [--subjects S] [--pg URL] [--sqlite-only]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import drop_schema, pg_schema_url
from bench.seed import seed_records
from collector.store import Store

TABLES = ("evidence", "evidence_content", "evidence_latest", "evidence_counts", "collection_runs", "run_counts")


def seed(url: str, n: int, subjects: int) -> Store:
    store = Store(url)
    store.upgrade()
    seed_records(store, n, subjects=subjects, controls=["soc2:CC7.1", "iso27001:A.8.8"])
    return store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=200_000)
    parser.add_argument("--subjects", type=int, default=1_000)
    parser.add_argument(
        "--pg", default=os.environ.get("EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    per_million = 1_000_000 / args.n
    print(f"{args.n:,} records over {args.subjects:,} subjects; sizes scaled to 1M records")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.db"
        store = seed(f"sqlite:///{path}", args.n, args.subjects)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        store.dispose()
        print(f"  SQLite file: {path.stat().st_size / 2**20 * per_million:,.0f} MiB per 1M records")
    if args.sqlite_only:
        return
    url, schema = pg_schema_url(args.pg)
    try:
        store = seed(url, args.n, args.subjects)
        with store.engine.begin() as conn:
            total = 0
            for table in TABLES:
                heap, indexes = conn.execute(
                    sa.text("select pg_table_size(:t), pg_indexes_size(:t)"), {"t": f'"{schema}".{table}'}
                ).one()
                total += heap + indexes
                print(
                    f"  PostgreSQL {table:16s} table {heap / 2**20 * per_million:8,.0f} MiB   "
                    f"indexes {indexes / 2**20 * per_million:8,.0f} MiB   per 1M records"
                )
            print(f"  PostgreSQL total: {total / 2**20 * per_million:,.0f} MiB per 1M records")
        store.dispose()
    finally:
        drop_schema(args.pg, schema)


if __name__ == "__main__":
    main()
