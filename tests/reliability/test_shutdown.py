"""SIGTERM as documented: scheduling stops, a run in progress finishes within shutdown_grace, a longer one is
recorded interrupted once the grace is over."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Daemon, plugin_path, slow_connector, write_config
from tests.test_daemon import free_port, wait_for


def _runs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT status, id FROM collection_runs ORDER BY started_at").fetchall()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("run_seconds", "grace", "status"),
    [(4.0, "10s", "succeeded"), (60.0, "2s", "interrupted")],
    ids=["finishes-within-the-grace", "interrupted-after-the-grace"],
)
def test_sigterm_lets_a_running_run_finish_within_the_grace_then_interrupts(
    tmp_path: Path, run_seconds: float, grace: str, status: str
) -> None:
    db = tmp_path / "e.db"
    started = tmp_path / "started"
    port = free_port()
    config = write_config(
        tmp_path,
        f"sqlite:///{db}",
        port,
        slow_connector(interval="1h", run_seconds=run_seconds, subjects=4, started_file=started),
    )
    config.write_text(config.read_text().replace("shutdown_grace: 10s", f"shutdown_grace: {grace}"))
    daemon = Daemon(config, port, plugin_path(tmp_path))
    wait_for(started.exists, timeout=30, what="the run to start")
    signalled = time.monotonic()
    code, events = daemon.stop()
    took = time.monotonic() - signalled
    assert code == 0, events[-5:]
    assert [s for s, _ in _runs(db)] == [status]
    assert _runs(db)[0][1] == started.read_text()
    if status == "succeeded":
        assert took >= run_seconds * 0.5, "the run was not cut short"
        assert not [e for e in events if e.get("event") == "shutdown_grace_exceeded"]
    else:
        assert took < 2 + 12, "interrupted soon after the grace"
        assert [e for e in events if e.get("event") == "shutdown_grace_exceeded"]
