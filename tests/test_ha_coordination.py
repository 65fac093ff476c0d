"""Replicas sharing PostgreSQL: one run per job per interval, dead runs taken over, migrations serialised."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from collector import coordination
from collector.config import LoadedConfig, ResolvedInstance, Schedule, load_and_resolve
from collector.coordination import (
    DatabaseInUse,
    PostgresCoordination,
    SchemaMigrationBusy,
    SingleReplica,
    catch_up_slot,
    coordination_for,
    job_lock_key,
    slot_of,
)
from collector.runner import Runner, RunOutcome
from collector.state import State
from collector.store import RunRecord, Store
from tests.helpers import stored_runs, tamper

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 26, 12, 0, 0, 500000, tzinfo=UTC)


def _config(tmp_path: Path, db_url: str) -> LoadedConfig:
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    for f in (ROOT / "deploy" / "demo" / "reports").glob("*.json"):
        shutil.copy(f, reports / f.name)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
database: {{url: "{db_url}"}}
connectors:
  - name: scans
    type: container_scan
    schedule: {{interval: 10s}}
    settings: {{paths: ["{reports}/*.json"]}}
"""
    )
    return load_and_resolve(path)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def loaded(tmp_path: Path, postgres_url: str) -> LoadedConfig:
    return _config(tmp_path, postgres_url)


@pytest.fixture
def store(loaded: LoadedConfig) -> Iterator[Store]:
    s = Store(loaded.app.database.url)
    s.upgrade()
    yield s
    s.dispose()


@pytest.fixture
def instance(loaded: LoadedConfig) -> ResolvedInstance:
    return loaded.instance("scans")


def replica(store: Store, loaded: LoadedConfig, holder: str, clock: Clock, **kw: Any) -> PostgresCoordination:
    runner = Runner(store, State(), loaded.mappings, clock=clock)
    return PostgresCoordination(store, kw.pop("run_fn", runner.run), clock=clock, holder=holder, **kw)


def statuses(store: Store) -> list[str]:
    return sorted(r.status for r in stored_runs(store, "scans"))


def test_slots_are_intervals_since_the_epoch_and_cron_slots_are_minutes() -> None:
    every_10s = Schedule(interval=timedelta(seconds=10))
    assert slot_of(every_10s, T0) == slot_of(every_10s, T0 + timedelta(seconds=9.4))
    assert slot_of(every_10s, T0 + timedelta(seconds=9.5)) == slot_of(every_10s, T0) + 1
    cron = Schedule(cron="*/5 * * * *")
    assert slot_of(cron, T0) == int(T0.timestamp() // 60)


def test_lock_keys_differ_per_job_and_per_schema() -> None:
    keys = {job_lock_key("a", "scans"), job_lock_key("b", "scans"), job_lock_key("a", "models")}
    assert len(keys) == 3
    assert all(-(2**63) <= k < 2**63 for k in keys)


def test_sqlite_is_a_single_replica(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    calls: list[str | None] = []
    coord = coordination_for(store, lambda _inst, run_id: calls.append(run_id))
    assert isinstance(coord, SingleReplica)
    assert coord.shared is False
    coord.upgrade_schema()
    assert store.current_revision() == store.head_revision()
    store.dispose()


@pytest.mark.postgres
def test_two_replicas_run_a_job_once_per_interval(
    store: Store, loaded: LoadedConfig, instance: ResolvedInstance
) -> None:
    clock = Clock(T0)
    a, b = replica(store, loaded, "a:1", clock), replica(store, loaded, "b:1", clock)
    try:
        first = a.run(instance)
        assert isinstance(first, RunOutcome)
        assert first.run.status == "partial"
        assert b.run(instance) is None
        assert a.run(instance) is None
        clock.now = T0 + timedelta(seconds=10)
        assert b.run(instance) is not None
        assert a.run(instance) is None
    finally:
        a.dispose()
        b.dispose()
    assert statuses(store) == ["partial", "partial"]
    assert store.verify()[1] is None


@pytest.mark.postgres
def test_a_job_running_on_one_replica_is_skipped_by_the_others(
    store: Store, loaded: LoadedConfig, instance: ResolvedInstance
) -> None:
    clock = Clock(T0)
    inside, release = threading.Event(), threading.Event()
    runner = Runner(store, State(), loaded.mappings, clock=clock)

    def slow_run(inst: ResolvedInstance, run_id: str | None) -> RunOutcome:
        inside.set()
        release.wait(10)
        return runner.run(inst, run_id)

    a = replica(store, loaded, "a:1", clock, run_fn=slow_run)
    b = replica(store, loaded, "b:1", clock)
    worker = threading.Thread(target=a.run, args=[instance])
    worker.start()
    try:
        assert inside.wait(10)
        clock.now = T0 + timedelta(seconds=30)
        assert b.run(instance) is None, "b ran a job a was still running"
        with store.engine.connect() as conn:
            lease = conn.execute(sa.text("SELECT holder, state FROM run_leases WHERE instance = 'scans'")).one()
        assert tuple(lease) == ("a:1", "running")
    finally:
        release.set()
        worker.join(20)
        a.dispose()
        b.dispose()
    assert statuses(store) == ["partial"]


def _dead_replica_lease(store: Store, run_id: str, started_at: datetime) -> None:
    """What a replica killed mid-run leaves: a lease still marked running, its lock gone with its connection."""
    tamper(
        store,
        "INSERT INTO run_leases (instance, run_id, slot, holder, state, started_at, heartbeat_at) "
        "VALUES ('scans', :run_id, :slot, 'dead-pod:7', 'running', :started, :started)",
        run_id=run_id,
        slot=int(started_at.timestamp() // 10),
        started=started_at,
    )


@pytest.mark.postgres
def test_a_run_left_by_a_dead_replica_is_marked_interrupted_and_run_again(
    store: Store, loaded: LoadedConfig, instance: ResolvedInstance
) -> None:
    clock = Clock(T0 + timedelta(seconds=3))
    _dead_replica_lease(store, "00000000-0000-0000-0000-00000000dead", T0)
    noticed: list[RunRecord] = []
    b = replica(store, loaded, "b:1", clock, on_interrupted=noticed.append)
    try:
        outcome = b.run(instance)
    finally:
        b.dispose()
    assert outcome is not None
    assert outcome.run.status == "partial", "the job must run again at once, in the same interval"
    dead = next(r for r in stored_runs(store, "scans") if r.id.endswith("dead"))
    assert dead.status == "interrupted"
    assert dead.started_at == T0
    assert dead.error is not None
    assert "dead-pod:7" in dead.error
    assert "b:1" in dead.error
    assert [r.id for r in noticed] == [dead.id]
    assert statuses(store) == ["interrupted", "partial"]


@pytest.mark.postgres
def test_a_run_stored_just_before_its_replica_died_is_not_marked_interrupted(
    store: Store, loaded: LoadedConfig, instance: ResolvedInstance
) -> None:
    clock = Clock(T0 + timedelta(seconds=3))
    run_id = "00000000-0000-0000-0000-0000000000ok"
    store.commit_run(
        RunRecord(run_id, "container_scan", "scans", T0, T0 + timedelta(seconds=1), "succeeded", 0, config_hash="x"),
        [],
    )
    _dead_replica_lease(store, run_id, T0)
    b = replica(store, loaded, "b:1", clock)
    try:
        assert b.run(instance) is not None
    finally:
        b.dispose()
    assert statuses(store) == ["partial", "succeeded"]


@pytest.fixture
def old_schema_store(loaded: LoadedConfig) -> Iterator[Store]:
    s = Store(loaded.app.database.url)
    with s.engine.begin() as conn:
        command.upgrade(s._alembic_config(conn), "0001")
    yield s
    s.dispose()


class MigrationLock:
    """Another replica migrating: holds the schema-migration advisory lock on its own connection."""

    def __init__(self, store: Store) -> None:
        self.engine = sa.create_engine(store.url, poolclass=sa.NullPool)
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        schema = self.conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        self.conn.execute(sa.select(sa.func.pg_advisory_lock(job_lock_key(schema, "(schema migration)"))))

    def release(self) -> None:
        self.conn.close()
        self.engine.dispose()


@pytest.mark.postgres
def test_a_replica_waits_while_another_migrates_then_migrates_itself(
    old_schema_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(coordination, "MIGRATION_WAIT_SECONDS", 0.5)
    other = MigrationLock(old_schema_store)
    coord = PostgresCoordination(old_schema_store, lambda _i, _r: None)
    try:
        with pytest.raises(SchemaMigrationBusy, match="another replica is still migrating"):
            coord.upgrade_schema()
        assert old_schema_store.current_revision() == "0001"
        other.release()
        coord.upgrade_schema()
    finally:
        other.release()
        coord.dispose()
    assert old_schema_store.current_revision() == old_schema_store.head_revision()


def test_a_catch_up_run_stands_for_the_slot_whose_start_is_nearest() -> None:
    every_10s = Schedule(interval=timedelta(seconds=10))
    slot = slot_of(every_10s, T0)
    assert catch_up_slot(every_10s, T0 + timedelta(seconds=4)) == slot
    assert catch_up_slot(every_10s, T0 + timedelta(seconds=5)) == slot + 1


@pytest.mark.postgres
def test_a_catch_up_late_in_a_slot_is_the_next_slot_run_so_the_job_does_not_run_twice_at_start(
    store: Store, loaded: LoadedConfig, instance: ResolvedInstance
) -> None:
    clock = Clock(T0 + timedelta(seconds=8.5))
    a, b = replica(store, loaded, "a:1", clock), replica(store, loaded, "b:1", clock)
    try:
        assert a.run(instance, catch_up=True) is not None, "nothing ran yet: the start-up run catches up"
        clock.now = T0 + timedelta(seconds=9.6)
        assert b.run(instance) is None, "the aligned run 1.1 s after the catch-up is the same slot"
        clock.now = T0 + timedelta(seconds=19.6)
        assert b.run(instance) is not None
    finally:
        a.dispose()
        b.dispose()
    assert statuses(store) == ["partial", "partial"]


@pytest.mark.postgres
def test_a_catch_up_early_in_a_slot_leaves_the_next_slot_to_its_aligned_run(
    store: Store, loaded: LoadedConfig, instance: ResolvedInstance
) -> None:
    clock = Clock(T0 + timedelta(seconds=1))
    a, b = replica(store, loaded, "a:1", clock), replica(store, loaded, "b:1", clock)
    try:
        assert a.run(instance, catch_up=True) is not None
        assert b.run(instance, catch_up=True) is None, "a second replica starting in the same slot"
        clock.now = T0 + timedelta(seconds=9.6)
        assert b.run(instance) is not None
    finally:
        a.dispose()
        b.dispose()
    assert statuses(store) == ["partial", "partial"]


def test_a_second_daemon_on_one_sqlite_file_is_refused_naming_the_first(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    first = SingleReplica(Store(f"sqlite:///{db}"), lambda _i, _r: None)
    second = SingleReplica(Store(f"sqlite:///{db}"), lambda _i, _r: None)
    first.acquire()
    try:
        with pytest.raises(DatabaseInUse, match=rf"pid {os.getpid()} on host {socket.gethostname()}"):
            second.acquire()
    finally:
        first.dispose()
    second.acquire()
    second.dispose()
    assert SingleReplica(Store("sqlite://"), lambda _i, _r: None).lock_path() is None
