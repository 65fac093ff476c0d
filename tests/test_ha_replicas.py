"""Real daemon processes sharing the real PostgreSQL: once per interval, SIGKILL mid-run, migrations."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from collector.store import Store
from tests.test_daemon import free_port, get, samples, wait_for
from tests.test_ha_coordination import MigrationLock

ROOT = Path(__file__).resolve().parent.parent
HA_DATA = ROOT / "tests" / "data" / "ha"
INTERVAL_SECONDS = 4


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """Registers the test-only ``ha_slow`` connector for the daemon processes (an entry point, as a plugin would)."""
    dist = tmp_path / "plugins" / "ha_slow_test-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ha-slow-test\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[evidence_collector.connectors]\nha_slow = ha_slow_connector:SlowConnector\n"
    )
    return os.pathsep.join([str(dist.parent), str(HA_DATA), str(ROOT)])


def _config(tmp_path: Path, db_url: str, port: int) -> Path:
    path = tmp_path / f"replica-{port}.yaml"
    path.write_text(
        f"""
database: {{url: "{db_url}"}}
http: {{listen: "127.0.0.1:{port}"}}
shutdown_grace: 5s
log: {{format: json}}
connectors:
  - name: slow
    type: ha_slow
    schedule: {{interval: {INTERVAL_SECONDS}s}}
    settings: {{run_seconds: 2.4, subjects: 4}}
  - name: scans
    type: container_scan
    schedule: {{interval: {INTERVAL_SECONDS}s}}
    settings: {{paths: ["{ROOT}/deploy/demo/reports/*.json"]}}
"""
    )
    return path


class Replica:
    def __init__(self, tmp_path: Path, db_url: str, plugin_path: str) -> None:
        self.port = free_port()
        self.log = (tmp_path / f"replica-{self.port}.log").open("w+")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": plugin_path}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "--config", str(_config(tmp_path, db_url, self.port)), "run"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        return get(self.url("/readyz"))[0] == 200

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.flush()
        self.log.seek(0)
        return self.proc.returncode

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


def _slot(t: float) -> int:
    return int(t // INTERVAL_SECONDS)


def _running_slow_lease(engine: sa.Engine) -> tuple[str, str] | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT run_id, holder FROM run_leases WHERE instance = 'slow' AND state = 'running'")
        ).one_or_none()
    return None if row is None else (row.run_id, row.holder)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_three_replicas_run_each_job_once_per_interval_through_a_sigkill(
    tmp_path: Path, postgres_url: str, plugin_path: str
) -> None:
    replicas = [Replica(tmp_path, postgres_url, plugin_path) for _ in range(3)]
    engine = sa.create_engine(postgres_url)
    try:
        for r in replicas:
            wait_for(r.ready, timeout=60, what=f"replica on {r.port} ready")
        window_start = _slot(time.time()) + 2
        time.sleep(INTERVAL_SECONDS * 4)

        def mid_run() -> tuple[str, Replica] | None:
            lease = _running_slow_lease(engine)
            if lease is None:
                return None
            pid = int(lease[1].rpartition(":")[2])
            victim = next((r for r in replicas if r.proc.pid == pid), None)
            return None if victim is None else (lease[0], victim)

        killed_run_id, victim = wait_for(mid_run, timeout=3 * INTERVAL_SECONDS, what="a slow run in progress")
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        survivors = [r for r in replicas if r is not victim]
        time.sleep(INTERVAL_SECONDS * 6)

        def interrupted_everywhere() -> bool:
            for r in survivors:
                runs = samples(get(r.url("/metrics"))[1], "evidence_collector_connector_runs_total")
                if ({"connector": "ha_slow", "connector_instance": "slow", "outcome": "interrupted"}, 1.0) not in runs:
                    return False
            return True

        wait_for(interrupted_everywhere, timeout=15, what="every replica's metrics to show the interrupted run")
        window_end = _slot(time.time()) - 1
    finally:
        codes = [r.stop() for r in replicas]
    outputs = "\n".join(r.output() for r in replicas)
    assert [c for r, c in zip(replicas, codes, strict=True) if r is not victim] == [0, 0], outputs

    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT id, instance, status, started_at FROM collection_runs")).all()
    engine.dispose()
    window = range(window_start, window_end + 1)
    assert len(window) >= 8
    for instance in ("slow", "scans"):
        per_slot = Counter(_slot(r.started_at.timestamp()) for r in runs if r.instance == instance)
        duplicates = {s: n for s, n in per_slot.items() if n > 1}
        missed = [s for s in window if s not in per_slot]
        assert duplicates == {}, f"{instance}: slots run more than once: {duplicates}"
        assert missed == [], f"{instance}: slots nobody ran: {missed}"
    by_id = {r.id: r for r in runs}
    assert by_id[killed_run_id].status == "interrupted"
    in_window = [r for r in runs if _slot(r.started_at.timestamp()) in window]
    assert [r.id for r in in_window if r.status == "interrupted"] == [killed_run_id], "only the killed run"
    killed_slot = _slot(by_id[killed_run_id].started_at.timestamp())
    rerun = [r for r in runs if r.instance == "slow" and _slot(r.started_at.timestamp()) == killed_slot + 1]
    assert [r.status for r in rerun] == ["succeeded"]
    assert "run_taken_over" in outputs

    store = Store(postgres_url)
    checked, brk = store.verify()
    stored_slow_runs = sum(1 for r in runs if r.instance == "slow" and r.status == "succeeded")
    store.dispose()
    assert brk is None
    assert checked >= 4 * stored_slow_runs


@pytest.mark.postgres
def test_a_replica_on_an_older_schema_waits_for_the_migration_instead_of_crashing(
    tmp_path: Path, postgres_url: str, plugin_path: str
) -> None:
    store = Store(postgres_url)
    with store.engine.begin() as conn:
        command.upgrade(store._alembic_config(conn), "0001")
    migrating = MigrationLock(store)
    replica = Replica(tmp_path, postgres_url, plugin_path)
    try:
        wait_for(lambda: get(replica.url("/healthz"))[0] == 200, what="/healthz")
        code, body = get(replica.url("/readyz"))
        assert code == 503, body
        time.sleep(1.5)
        assert replica.proc.poll() is None, replica.output()
        assert store.current_revision() == "0001"
        migrating.release()
        wait_for(replica.ready, timeout=30, what="ready after the migration")
        assert store.current_revision() == store.head_revision()
    finally:
        migrating.release()
        code = replica.stop()
        store.dispose()
    assert code == 0, replica.output()


def _gaps(starts: list[float]) -> list[float]:
    ordered = sorted(starts)
    return [round(b - a, 2) for a, b in itertools.pairwise(ordered)]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_three_replicas_starting_late_in_a_slot_run_each_job_once_from_the_first_slot(
    tmp_path: Path, postgres_url: str, plugin_path: str
) -> None:
    """The replicas are held at start-up (another replica migrating) and let go together so that their catch-up
    runs fall late in a slot, a moment before the next slot's aligned runs."""
    store = Store(postgres_url)
    store.upgrade()
    migrating = MigrationLock(store)
    replicas = [Replica(tmp_path, postgres_url, plugin_path) for _ in range(3)]
    engine = sa.create_engine(postgres_url)
    try:
        for r in replicas:
            wait_for(lambda r=r: get(r.url("/healthz"))[0] == 200, timeout=60, what=f"replica on {r.port} up")
        time.sleep(0.5)
        phase = time.time() % INTERVAL_SECONDS
        time.sleep((2.0 - phase) % INTERVAL_SECONDS)
        released_at = time.time()
        migrating.release()
        for r in replicas:
            wait_for(r.ready, timeout=30, what=f"replica on {r.port} ready")
        time.sleep(INTERVAL_SECONDS * 4.5)
    finally:
        migrating.release()
        codes = [r.stop() for r in replicas]
        store.dispose()
    outputs = "\n".join(r.output() for r in replicas)
    assert codes == [0, 0, 0], outputs
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT instance, status, started_at FROM collection_runs")).all()
    engine.dispose()
    for instance in ("slow", "scans"):
        starts = [r.started_at.timestamp() for r in runs if r.instance == instance]
        assert starts, f"{instance} never ran"
        first = min(starts)
        assert first - released_at < 3.5, f"{instance}: no catch-up run at start-up"
        gaps = _gaps(starts)
        assert len(gaps) >= 3, (instance, gaps)
        assert all(g >= INTERVAL_SECONDS / 2 - 0.5 for g in gaps), f"{instance} ran twice within moments: {gaps}"
        assert all(g <= INTERVAL_SECONDS * 1.5 + 0.5 for g in gaps), f"{instance} skipped a slot: {gaps}"
