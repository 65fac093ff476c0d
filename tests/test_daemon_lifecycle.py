"""Real processes: one daemon per SQLite file, Ctrl-C and SIGTERM during a run, a database that goes away."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests import test_ha_replicas
from tests.helpers import TcpProxy
from tests.test_daemon import free_port, get, samples, wait_for

ROOT = Path(__file__).resolve().parent.parent
plugin_path = test_ha_replicas.plugin_path


def _config(tmp_path: Path, db_url: str, port: int, connectors: str) -> Path:
    path = tmp_path / f"config-{port}.yaml"
    path.write_text(
        f"""
database: {{url: "{db_url}"}}
http: {{listen: "127.0.0.1:{port}"}}
shutdown_grace: 10s
log: {{format: json}}
connectors:
{connectors}
"""
    )
    return path


SCANS = f"""
  - name: scans
    type: container_scan
    schedule: {{interval: 5s}}
    settings: {{paths: ["{ROOT}/deploy/demo/reports/*.json"]}}
"""


def _slow(started_file: Path) -> str:
    return f"""
  - name: slow
    type: ha_slow
    schedule: {{interval: 1h}}
    settings: {{run_seconds: 60, subjects: 2, started_file: "{started_file}"}}
"""


def _start(config: Path, command: str, plugins: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": plugins or str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def _runs(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT instance, status, error FROM collection_runs ORDER BY started_at").fetchall()


def test_a_second_daemon_on_one_sqlite_database_is_refused_naming_the_first(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    url = f"sqlite:///{db}"
    first = _start(_config(tmp_path, url, free_port(), SCANS), "run")
    try:
        wait_for(lambda: Path(f"{db}.lock").exists() and first.poll() is None, what="the first daemon")
        second = _start(_config(tmp_path, url, free_port(), SCANS), "run")
        try:
            _, err = second.communicate(timeout=30)
        finally:
            second.kill()
        assert second.returncode == 3, err
        assert "another daemon already runs on this SQLite database" in err
        assert f"pid {first.pid} on host {socket.gethostname()}" in err
        assert f"{db}.lock" in err
        assert len(err.strip().splitlines()) == 1, err
        assert first.poll() is None, "the first daemon keeps running"

        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        third_port = free_port()
        third = _start(_config(tmp_path, url, third_port, SCANS), "run")
        try:
            wait_for(lambda: get(f"http://127.0.0.1:{third_port}/readyz")[0] == 200, what="a daemon after a kill")
        finally:
            code, _, err = _stop(third)
        assert code == 0, err
    finally:
        _stop(first)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_collect_records_the_run_interrupted_and_says_so(
    tmp_path: Path, plugin_path: str, sig: int, code: int
) -> None:
    db = tmp_path / "e.db"
    started = tmp_path / "started"
    config = _config(tmp_path, f"sqlite:///{db}", free_port(), _slow(started) + SCANS)
    proc = _start(config, "collect", plugin_path)
    try:
        wait_for(started.exists, timeout=60, what="the slow run to start")
        signalled = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - signalled < 10
    assert proc.returncode == code, err
    run_id = started.read_text()
    name = signal.Signals(sig).name
    assert f"stopped by {name}; recorded as interrupted: slow (run {run_id})" in err
    assert "Traceback" not in err
    assert [(i, s) for i, s, _ in _runs(db)] == [("slow", "interrupted")], "the next connector is not started"
    assert "interrupted" in out


def test_ctrl_c_stops_the_daemon_like_sigterm(tmp_path: Path, plugin_path: str) -> None:
    db = tmp_path / "e.db"
    started = tmp_path / "started"
    proc = _start(_config(tmp_path, f"sqlite:///{db}", free_port(), _slow(started)), "run", plugin_path)
    try:
        wait_for(started.exists, timeout=60, what="the slow run to start")
    finally:
        code, _, err = _stop(proc, signal.SIGINT)
    assert code == 0, err
    assert '"signal": "SIGINT"' in err
    assert '"event": "shutdown_finished"' in err
    assert [(i, s) for i, s, _ in _runs(db)] == [("slow", "interrupted")]


def _metric(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    return samples(get(f"http://127.0.0.1:{port}/metrics")[1], name)


def test_a_daemon_that_never_reached_its_database_exports_no_freshness_instead_of_everything_missing(
    tmp_path: Path,
) -> None:
    port = free_port()
    before = time.time()
    proc = _start(_config(tmp_path, f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none", port, SCANS), "run")
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, what="/healthz")
        assert _metric(port, "evidence_collector_state_current") == [({}, 0.0)]
        ((_, since),) = _metric(port, "evidence_collector_state_stale_since_timestamp_seconds")
        assert before - 1 <= since <= time.time()
        for family in (
            "evidence_collector_evidence_stale",
            "evidence_collector_evidence_status",
            "evidence_collector_control_check_failures",
        ):
            assert _metric(port, family) == [], f"{family} reported without any known state"
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_daemon_cut_off_from_its_database_keeps_its_last_state_and_says_since_when(
    tmp_path: Path, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    port = free_port()
    proc = _start(_config(tmp_path, through_proxy, port, SCANS), "run")
    try:
        wait_for(
            lambda: _metric(port, "evidence_collector_evidence_records_total"), timeout=60, what="evidence in /metrics"
        )
        assert _metric(port, "evidence_collector_state_current") == [({}, 1.0)]
        assert _metric(port, "evidence_collector_state_stale_since_timestamp_seconds") == []
        status_before = sorted(
            (tuple(sorted(lbl.items())), v) for lbl, v in _metric(port, "evidence_collector_evidence_status")
        )
        assert status_before
        assert {v for _, v in status_before} == {0.0}, "demo evidence is fresh"

        cut_at = time.time()
        proxy.cut()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        wait_for(
            lambda: _metric(port, "evidence_collector_state_current") == [({}, 0.0)],
            timeout=30,
            what="the state to be reported not current",
        )
        ((_, since),) = _metric(port, "evidence_collector_state_stale_since_timestamp_seconds")
        assert cut_at - 1 <= since <= time.time()
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 503
        status_during = sorted(
            (tuple(sorted(lbl.items())), v) for lbl, v in _metric(port, "evidence_collector_evidence_status")
        )
        assert status_during == status_before, "an unreachable database does not make evidence stale or missing"

        proxy.start()
        wait_for(
            lambda: _metric(port, "evidence_collector_state_current") == [({}, 1.0)],
            timeout=30,
            what="the state to be current again",
        )
        assert _metric(port, "evidence_collector_state_stale_since_timestamp_seconds") == []
    finally:
        proxy.cut()
        code, _, err = _stop(proc)
    assert code == 0, err
    assert "state_refresh_failed" in err
