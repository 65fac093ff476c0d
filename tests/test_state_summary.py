"""The summary tables start-up, status and evidence read: the state built from them equals the state built from every
stored record, the incremental upkeep equals a rebuild from the rows, and existing stores are backfilled."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.daemon import load_state
from collector.state import State
from collector.store import EvidenceFilter, PreparedRecord, RunRecord, Store
from collector.store import summary as store_summary
from collector.store.guards import archive_deletes
from collector.store.schema import evidence_counts, evidence_latest, run_counts

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KINDS = ("container.scan", "model.card")
CONTROLS = ("soc2:CC7.1", "soc2:CC8.1", "iso27001:A.8.8")
SUMMARY_TABLES = (evidence_latest, evidence_counts, run_counts)


@dataclass(frozen=True)
class Rec:
    kind: str
    subject: int
    observed_minute: int
    collected_minute: int
    valid_minutes: int | None
    results: tuple[str, ...]
    controls: tuple[str, ...]


records_strategy = st.builds(
    Rec,
    kind=st.sampled_from(KINDS),
    subject=st.integers(0, 3),
    observed_minute=st.integers(0, 40),
    collected_minute=st.integers(0, 40),
    valid_minutes=st.none() | st.integers(0, 30),
    results=st.lists(st.sampled_from(("pass", "fail", "error", "not_applicable")), max_size=2).map(tuple),
    controls=st.lists(st.sampled_from(CONTROLS), unique=True, max_size=3).map(tuple),
)
runs_strategy = st.lists(
    st.tuples(
        st.sampled_from(("alpha", "beta")),
        st.sampled_from(("succeeded", "partial", "failed", "inconclusive")),
        st.integers(0, 2),
        st.lists(records_strategy, max_size=6),
    ),
    min_size=1,
    max_size=6,
)


def _prepared(rec: Rec, run_id: str, instance: str) -> PreparedRecord:
    observed = T0 + timedelta(minutes=rec.observed_minute)
    return PreparedRecord(
        id=str(uuid.uuid4()),
        run_id=run_id,
        connector_type=f"type-{instance}",
        instance=instance,
        connector_version="1",
        kind=rec.kind,
        subject_type="thing",
        subject_id=f"s{rec.subject}",
        observed_at=observed,
        valid_until=None if rec.valid_minutes is None else observed + timedelta(minutes=rec.valid_minutes),
        collected_at=T0 + timedelta(minutes=rec.collected_minute),
        content_sha256="a" * 64,
        payload_json="{}",
        source="test",
        config_hash="0" * 64,
        controls=list(rec.controls),
        checks=[{"id": f"check.{i}", "result": r, "message": r} for i, r in enumerate(rec.results)],
    )


def _store_runs(store: Store, runs: list[tuple[str, str, int, list[Rec]]]) -> State:
    """Commit the runs; return the state a writer keeps by applying every record as it is stored."""
    folded = State()
    for n, (instance, status, problems, recs) in enumerate(runs):
        run_id = str(uuid.uuid4())
        records = [] if status == "failed" else [_prepared(r, run_id, instance) for r in recs]
        at = T0 + timedelta(hours=n + 1)
        run = RunRecord(
            id=run_id,
            connector_type=f"type-{instance}",
            instance=instance,
            started_at=at - timedelta(seconds=3),
            finished_at=at,
            status=status,
            observations=len(records),
            problems=[{"source": "x", "reason": "bad"}] * problems,
        )
        store.commit_run(run, records, now=at, return_records=False)
        folded.observe_records(records, f"type-{instance}", instance)
    return folded


def _summary_rows(store: Store) -> dict[str, set[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        return {t.name: {tuple(r) for r in conn.execute(sa.select(t))} for t in SUMMARY_TABLES}


def _from_every_record(store: Store) -> State:
    """The state as it was built before the summary: ranking every stored row."""
    state = State()
    last_seq = store.max_seq()
    head = store.chain_head()
    state.set_chain_head(head.seq, head.chain_hash)
    with store.engine.connect() as conn:
        runs = sa.text(
            "select connector_type, instance, status, count(*), sum(problems) from collection_runs group by 1, 2, 3"
        )
        grouped = conn.execute(runs).all()
    state.rebuild(
        store.latest_per_subject(last_seq),
        store.record_counts(last_seq),
        store.run_history(),
        {(r[0], r[1], r[2]): r[3] for r in grouped},
        {i: sum(int(r[4]) for r in grouped if r[1] == i) for i in {r[1] for r in grouped}},
        last_seq=last_seq,
    )
    return state


def _empty_store(store: Store) -> None:
    with store.engine.begin() as conn, archive_deletes(conn, "test: a fresh store per example"):
        for table in ("evidence_latest", "evidence_counts", "run_counts", "evidence", "evidence_content", "cursors"):
            conn.execute(sa.text(f"delete from {table}"))
        conn.execute(sa.text("delete from collection_runs"))
        conn.execute(sa.text(f"update chain_head set seq = 0, chain_hash = '{'0' * 64}'"))
        conn.execute(
            sa.text("insert into evidence_content (sha256, payload, size_bytes) values (:s, '{}', 2)"), {"s": "a" * 64}
        )


@pytest.fixture
def migrated(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    store.upgrade()
    yield store
    store.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=runs_strategy)
def test_state_from_the_summary_equals_the_state_from_every_record(
    migrated: Store, runs: list[tuple[str, str, int, list[Rec]]]
) -> None:
    _empty_store(migrated)
    folded = _store_runs(migrated, runs)
    kept = _summary_rows(migrated)
    with migrated.engine.begin() as conn:
        store_summary.rebuild(conn, migrated.dialect)
    assert _summary_rows(migrated) == kept, "the summary kept with each run differs from one rebuilt from the rows"

    from_summary = State()
    load_state(migrated, from_summary)
    fast, slow, incremental = from_summary.snapshot(), _from_every_record(migrated).snapshot(), folded.snapshot()
    assert fast == slow
    assert from_summary.last_seq == migrated.max_seq()
    assert (fast.evidence, fast.failing_by_check, fast.records_total) == (
        incremental.evidence,
        incremental.failing_by_check,
        incremental.records_total,
    )
    assert _served_latest(migrated) == _ranked_latest(migrated)


def _ranked_latest(store: Store) -> dict[tuple[str, str, str], tuple[int, list[str]]]:
    """(kind, subject) -> (seq, controls) of its latest record, ranking every stored row."""
    ranked = store_summary.latest_query(store.dialect).subquery()
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(ranked.c.kind, ranked.c.subject_type, ranked.c.subject_id, ranked.c.seq, ranked.c.controls)
        )
        return {(r[0], r[1], r[2]): (r[3], json.loads(r[4])) for r in rows}


def _served_latest(store: Store, control: str | None = None) -> dict[tuple[str, str, str], tuple[int, list[str]]]:
    records = store.latest_records(EvidenceFilter(control=control), with_payload=False)
    return {(r.kind, r.subject_type, r.subject_id): (r.seq, r.controls) for r in records}


def test_latest_records_per_control_match_ranking_every_row(migrated: Store) -> None:
    _empty_store(migrated)
    recs = [
        Rec(
            "container.scan",
            s,
            minute,
            minute,
            None,
            ("pass",) if s % 2 else ("fail",),
            CONTROLS[: 1 + (s + minute) % 3],
        )
        for minute in range(5)
        for s in range(4)
    ]
    _store_runs(migrated, [("alpha", "succeeded", 0, recs)])
    ranked = _ranked_latest(migrated)
    for control in CONTROLS:
        assert _served_latest(migrated, control) == {k: v for k, v in ranked.items() if control in v[1]}
    assert _served_latest(migrated, "soc2:CC7") == {}  # a prefix of a stored control is not that control


def test_the_migration_fills_the_summary_of_an_existing_store(migrated: Store) -> None:
    runs = [
        (
            "alpha",
            "succeeded",
            1,
            [
                Rec("container.scan", s, m, 40 - m, None, ("error",) if m == 3 else ("pass",), CONTROLS)
                for s in range(3)
                for m in range(4)
            ],
        ),
        ("beta", "failed", 0, []),
        ("beta", "partial", 2, [Rec("model.card", 1, 5, 5, 10, (), CONTROLS[:1])]),
    ]
    _empty_store(migrated)
    _store_runs(migrated, runs)
    kept = _summary_rows(migrated)
    assert len(kept["evidence_latest"]) == 4
    with migrated.engine.begin() as conn:
        command.downgrade(migrated._alembic_config(conn), "0004")
    assert migrated.current_revision() == "0004"
    migrated.upgrade()
    assert _summary_rows(migrated) == kept
