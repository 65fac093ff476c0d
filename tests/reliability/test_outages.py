"""Outages lose nothing and are loud: PostgreSQL stopped mid-collection, a SQLite file deleted or full."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    Cluster,
    Daemon,
    evidence_per_run,
    plugin_path,
    slow_connector,
    write_config,
)
from tests.test_daemon import free_port, wait_for

OUTAGE_SECONDS = int(os.environ.get("EVIDENCE_RELIABILITY_OUTAGE_SECONDS", "15"))
"""15 s in CI; the reliability page's figures were measured with 60."""
LIMIT = 1_000_000
SUBJECTS = 4


def _spooled_and_finished(events: list[dict[str, object]]) -> tuple[set[str], set[str]]:
    spooled = {str(e["run_id"]) for e in events if e.get("event") == "run_spooled"}
    finished = {str(e["run_id"]) for e in events if e.get("event") == "run_finished"}
    return spooled, finished


@pytest.mark.timeout(OUTAGE_SECONDS + 90)
def test_a_postgresql_outage_loses_no_evidence_and_is_loud_while_it_lasts(tmp_path: Path, pg_cluster: Cluster) -> None:
    port = free_port()
    config = write_config(tmp_path, pg_cluster.url, port, slow_connector(interval="2s"))
    daemon = Daemon(config, port, plugin_path(tmp_path))
    try:
        wait_for(lambda: daemon.readyz()[0] == 200, timeout=30, what="/readyz")
        wait_for(lambda: (daemon.value("evidence_collector_connector_runs_total", outcome="succeeded") or 0) >= 2,
                 timeout=30, what="two stored runs")  # fmt: skip
        assert daemon.value("evidence_collector_ready") == 1

        pg_cluster.stop()
        stopped = time.monotonic()
        wait_for(lambda: daemon.readyz()[0] == 503, timeout=10, what="/readyz to fail")
        assert daemon.value("evidence_collector_ready") == 0, "the ready metric says what /readyz says"
        wait_for(lambda: (daemon.value("evidence_collector_connector_consecutive_failures") or 0) >= 2,
                 timeout=OUTAGE_SECONDS, what="failed slots counted")  # fmt: skip
        assert (daemon.value("evidence_collector_spool_runs") or 0) >= 1
        failed_during = daemon.value("evidence_collector_connector_runs_total", outcome="failed") or 0
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        spooled_at_peak = daemon.value("evidence_collector_spool_runs") or 0
        assert daemon.readyz()[0] == 503

        pg_cluster.start()
        back = time.monotonic()
        wait_for(lambda: daemon.value("evidence_collector_spool_runs") == 0, timeout=30, what="the spool to drain")
        drained_seconds = time.monotonic() - back
        wait_for(lambda: daemon.readyz()[0] == 200, timeout=15, what="/readyz again")
        assert daemon.value("evidence_collector_ready") == 1
        failed_after = daemon.value("evidence_collector_connector_runs_total", outcome="failed") or 0
        assert failed_after >= failed_during >= 2, "a reload from the database does not forget the outage's failures"
    finally:
        code, events = daemon.stop()
    assert code == 0, events[-5:]
    spooled, finished = _spooled_and_finished(events)
    stored = evidence_per_run(pg_cluster.url)
    assert len(spooled) >= spooled_at_peak >= OUTAGE_SECONDS // 2 - 2, (len(spooled), spooled_at_peak)
    lost = {run: stored.get(run) for run in finished if stored.get(run) != SUBJECTS}
    assert lost == {}, "every run the daemon finished is stored with all its evidence"
    assert not [e for e in events if e.get("event") == "spooled_run_refused"]
    records = sum(stored.get(run, 0) for run in spooled)
    print(
        f"\nFIGURE outage={OUTAGE_SECONDS}s runs={len(finished)} spooled_runs={len(spooled)} spooled_records={records} "
        f"failed_counted={failed_after:g} drained_in={drained_seconds:.1f}s lost=0"
    )


@pytest.mark.timeout(90)
def test_a_deleted_sqlite_file_makes_the_daemon_not_ready_and_a_new_chain_is_refused_until_accepted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "e.db"
    url = f"sqlite:///{db}"
    plugins = plugin_path(tmp_path)
    port = free_port()
    config = write_config(tmp_path, url, port, slow_connector(interval="1s"))
    daemon = Daemon(config, port, plugins)
    try:
        wait_for(lambda: daemon.readyz()[0] == 200, timeout=30, what="/readyz")
        wait_for(lambda: (daemon.value("evidence_collector_connector_runs_total", outcome="succeeded") or 0) >= 2,
                 timeout=30, what="two stored runs")  # fmt: skip
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            path.unlink(missing_ok=True)
        wait_for(lambda: daemon.readyz()[0] == 503, timeout=10, what="/readyz to fail")
        assert "was deleted" in daemon.readyz()[1]
        assert daemon.value("evidence_collector_ready") == 0
        wait_for(lambda: (daemon.value("evidence_collector_spool_runs") or 0) >= 2, timeout=15, what="spooled runs")
    finally:
        code, events = daemon.stop()
    assert code == 0
    spooled, _ = _spooled_and_finished(events)
    assert spooled, "runs after the deletion went to the spool, not into the unlinked file"

    port = free_port()
    restarted = Daemon(write_config(tmp_path, url, port, slow_connector(interval="1s")), port, plugins)
    try:
        wait_for(lambda: restarted.readyz()[0] == 503 and "does not continue" in restarted.readyz()[1],
                 timeout=30, what="the new, empty chain to be refused")  # fmt: skip
        time.sleep(2)
        assert evidence_per_run(url) == {}, "nothing is written to a chain that does not continue the known head"
    finally:
        code, events = restarted.stop()
    assert code == 0

    port = free_port()
    accepted = Daemon(write_config(tmp_path, url, port, slow_connector(interval="1s")), port, plugins,
                      "--accept-new-chain")  # fmt: skip
    try:
        wait_for(lambda: accepted.readyz()[0] == 200, timeout=30, what="/readyz once the new chain is accepted")
        wait_for(lambda: accepted.value("evidence_collector_spool_runs") == 0, timeout=30, what="the spool to drain")
    finally:
        code, events = accepted.stop()
    assert code == 0
    stored = evidence_per_run(url)
    assert spooled <= set(stored), "the runs spooled while the file was gone are in the new database"
    assert all(stored[run] == SUBJECTS for run in spooled)


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.timeout(90)
def test_a_full_disk_makes_the_daemon_not_ready_and_the_runs_wait_in_the_spool(tmp_path: Path) -> None:
    """A file-size limit on the daemon process stands in for a full disk: past it, SQLite's writes fail (EFBIG,
    which SQLite reports as a disk I/O error; a real full disk is SQLITE_FULL, "database or disk is full")."""
    db = tmp_path / "e.db"
    url = f"sqlite:///{db}"
    spool = tmp_path / "spool"
    port = free_port()
    extra = f'spool: {{directory: "{spool}"}}'
    config = write_config(tmp_path, url, port, slow_connector(interval="1s", subjects=100), extra)
    daemon = Daemon(config, port, plugin_path(tmp_path), preexec_fn=lambda: _limit_file_size(LIMIT))
    try:
        wait_for(lambda: daemon.readyz()[0] == 200, timeout=30, what="/readyz")
        wait_for(lambda: daemon.readyz()[0] == 503 and "the last write failed" in daemon.readyz()[1],
                 timeout=40, what="/readyz to report the failed writes")  # fmt: skip
        assert daemon.value("evidence_collector_ready") == 0
        wait_for(lambda: (daemon.value("evidence_collector_spool_runs") or 0) >= 1, timeout=15, what="spooled runs")
    finally:
        code, events = daemon.stop()
    assert code == 0
    assert os.path.getsize(db) <= LIMIT
    spooled, finished = _spooled_and_finished(events)
    stored = evidence_per_run(url)
    assert stored, "runs were stored until the limit"
    assert spooled and not spooled & set(stored)
    assert finished <= spooled | set(stored), "every run is stored or waits in the spool"
