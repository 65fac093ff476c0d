"""Ingest throughput: 100k observations through the collector's real write path (checks, tags, canonical JSON,
SHA-256, hash chain, one transaction) next to a raw DB-API executemany of the very rows it stored, into the same
database, in the same run. Usage: python bench/ingest.py [N] [--pg URL]"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed import payload_for
from collector.canonical import content_sha256
from collector.config import ConnectorInstance, ResolvedInstance, RetryPolicy, Schedule
from collector.connector import CollectContext, Connector, ConnectorSettings
from collector.mappings import load_mappings
from collector.model import Observation, Subject
from collector.runner import Runner
from collector.state import State
from collector.store import Store

COLUMNS = [
    "id", "run_id", "connector_type", "instance", "connector_version", "kind", "subject_type", "subject_id",
    "observed_at", "valid_until", "collected_at", "stored_at", "content_sha256", "source", "config_hash",
    "controls", "checks", "prev_hash", "chain_hash",
]  # fmt: skip


TARGETS = {"sqlite": 0.6, "postgresql": 0.8}
"""Ours / raw throughput wanted (issue 20); ours includes the summary tables' upkeep, raw writes no summary."""


class BenchSettings(ConnectorSettings):
    n: int = 100_000


OBSERVATIONS: list[Observation] = []


class BenchConnector(Connector[BenchSettings]):
    type = "bench"
    version = "1"
    Settings = BenchSettings
    kinds = frozenset({"container.scan"})

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        yield from OBSERVATIONS


def build_observations(n: int) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    OBSERVATIONS[:] = [
        Observation(
            kind="container.scan",
            subject=Subject("container_image", f"img-{i}"),
            observed_at=start + timedelta(seconds=i),
            payload=payload_for(i),
            source="bench",
        )
        for i in range(n)
    ]


def instance(n: int) -> ResolvedInstance:
    cfg = ConnectorInstance(
        name="bench",
        type="bench",
        schedule=Schedule(interval=timedelta(hours=1), timeout=timedelta(hours=1)),
        retry=RetryPolicy(attempts=1),
    )
    return ResolvedInstance(cfg, BenchConnector, BenchSettings(n=n), content_sha256({"bench": n}))


def ours(url: str, n: int) -> tuple[float, list[dict[str, object]], list[dict[str, object]]]:
    store = Store(url)
    store.upgrade()
    runner = Runner(store, State(), load_mappings())
    t0 = time.perf_counter()
    outcome = runner.run(instance(n))
    elapsed = time.perf_counter() - t0
    if outcome.run.status != "succeeded" or outcome.stored != n:
        raise RuntimeError(f"benchmark run did not store everything: {outcome.run}")
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("select * from evidence order by seq"))]
        contents = [dict(r._mapping) for r in conn.execute(sa.text("select * from evidence_content"))]
    store.dispose()
    return elapsed, rows, contents


def raw(url: str, rows: list[dict[str, object]], contents: list[dict[str, object]]) -> float:
    """The same rows with the driver's executemany, no ORM/Core, no hashing: the floor."""
    store = Store(url)
    store.upgrade()
    run_id = rows[0]["run_id"]
    with store.engine.begin() as conn:
        conn.execute(
            sa.text("insert into collection_runs values (:id,'bench','bench',:t,:t,'succeeded',0,0,'[]',null,'')"),
            {"id": run_id, "t": datetime.now(UTC)},
        )
    evidence_rows = [tuple(r[c] for c in COLUMNS) for r in rows]
    content_rows = [(c["sha256"], c["payload"], c["size_bytes"]) for c in contents]
    raw_conn = store.engine.raw_connection()
    marker = "?" if store.dialect == "sqlite" else "%s"
    ev_sql = f"insert into evidence ({', '.join(COLUMNS)}) values ({', '.join([marker] * len(COLUMNS))})"
    ct_sql = f"insert into evidence_content (sha256, payload, size_bytes) values ({marker}, {marker}, {marker})"
    if store.dialect == "sqlite":
        evidence_rows = [
            tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in r) for r in evidence_rows
        ]
    try:
        t0 = time.perf_counter()
        cur = raw_conn.cursor()
        cur.executemany(ct_sql, content_rows)
        cur.executemany(ev_sql, evidence_rows)
        raw_conn.commit()
        elapsed = time.perf_counter() - t0
    finally:
        raw_conn.close()
        store.dispose()
    return elapsed


def pg_schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    engine.dispose()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}", schema


def drop_schema(base: str, schema: str) -> None:
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'drop schema "{schema}" cascade'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument(
        "--pg", default=os.environ.get("EVIDENCE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    build_observations(args.n)
    print(f"ingest of {args.n:,} observations (~230-byte payloads), ours vs raw executemany of the same rows")
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("sqlite", "postgresql"):
            if label == "sqlite":
                url_ours, url_raw = f"sqlite:///{tmp}/ours.db", f"sqlite:///{tmp}/raw.db"
                cleanup: list[str] = []
            else:
                url_ours, s1 = pg_schema_url(args.pg)
                url_raw, s2 = pg_schema_url(args.pg)
                cleanup = [s1, s2]
            try:
                t_ours, rows, contents = ours(url_ours, args.n)
                t_raw = raw(url_raw, rows, contents)
            finally:
                for schema in cleanup:
                    drop_schema(args.pg, schema)
            print(
                f"  {label:10s} ours {args.n / t_ours:>9,.0f} obs/s ({t_ours:.2f}s)   "
                f"raw {args.n / t_raw:>9,.0f} rows/s ({t_raw:.2f}s)   "
                f"ours/raw throughput = {t_raw / t_ours:.0%}  (target >= {TARGETS[label]:.0%})"
            )


if __name__ == "__main__":
    main()
