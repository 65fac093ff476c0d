"""Seed a store quickly with valid, chained evidence rows (raw executemany), for benchmarks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa

from collector.canonical import canonical_json, sha256_hex
from collector.store import Store, summary
from collector.store.records import record_link
from collector.store.schema import chain_head, collection_runs, evidence, evidence_content

__all__ = ["payload_for", "seed_records"]


def payload_for(i: int) -> dict[str, object]:
    """About 230 bytes of canonical JSON, like a small scan summary."""
    return {
        "artifact": {"name": f"registry.example.com/ml/model-{i % 997}:1.{i % 13}", "type": "container_image"},
        "scanner": {"name": "trivy", "version": "0.57.0"},
        "severity_counts": {"CRITICAL": i % 3, "HIGH": i % 5, "MEDIUM": i % 7, "LOW": i % 11, "UNKNOWN": 0},
        "vulnerability_count": i % 3 + i % 5 + i % 7 + i % 11,
    }


def seed_records(
    store: Store,
    n: int,
    *,
    subjects: int,
    kind: str = "container.scan",
    controls: list[str] | None = None,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    batch: int = 20_000,
    summarise: bool = True,
) -> None:
    """Append ``n`` chained records (one run) after whatever the store holds.

    ``summarise``: rebuild the summary tables from every row afterwards (raw rows bypass their upkeep); when seeding
    in several calls, pass it on the last one only."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    controls_json = json.dumps(controls or ["soc2:CC7.1"])
    run_id = str(uuid.uuid4())
    with store.engine.begin() as conn:
        conn.execute(
            collection_runs.insert(),
            {
                "id": run_id,
                "connector_type": "bench",
                "instance": "bench",
                "started_at": start,
                "finished_at": start + step * n,
                "status": "succeeded",
                "observations": n,
                "problems": 0,
                "problem_details": "[]",
                "error": None,
                "config_hash": "0" * 64,
            },
        )
        head = conn.execute(sa.select(chain_head.c.seq, chain_head.c.chain_hash)).one()
        prev = head.chain_hash
        for chunk in _chunks(n, batch):
            rows, contents = [], {}
            for i in chunk:
                when = start + step * i
                body = canonical_json(payload_for(i % subjects))
                digest = sha256_hex(body)
                contents[digest] = body.decode()
                rec = {
                    "id": str(uuid.uuid4()),
                    "run_id": run_id,
                    "connector_type": "bench",
                    "instance": "bench",
                    "connector_version": "1",
                    "kind": kind,
                    "subject_type": "container_image",
                    "subject_id": f"img-{i % subjects}",
                    "observed_at": when,
                    "valid_until": None,
                    "collected_at": when,
                    "stored_at": when,
                    "content_sha256": digest,
                    "source": "bench",
                    "config_hash": "0" * 64,
                    "controls": controls_json,
                    "checks": "[]",
                }
                link = record_link(prev, SimpleNamespace(**rec), when, controls_json, "[]")
                rows.append({**rec, "prev_hash": prev, "chain_hash": link})
                prev = link
            existing = set(
                conn.execute(
                    sa.select(evidence_content.c.sha256).where(evidence_content.c.sha256.in_(list(contents)))
                ).scalars()
            )
            new = [{"sha256": k, "payload": v, "size_bytes": len(v)} for k, v in contents.items() if k not in existing]
            if new:
                conn.execute(evidence_content.insert(), new)
            conn.execute(evidence.insert(), rows)
        last = conn.execute(sa.select(sa.func.max(evidence.c.seq))).scalar_one()
        conn.execute(sa.update(chain_head).values(seq=last, chain_hash=prev))
        if summarise:
            summary.rebuild(conn, store.dialect)


def _chunks(n: int, size: int) -> Iterator[range]:
    for lo in range(0, n, size):
        yield range(lo, min(lo + size, n))
