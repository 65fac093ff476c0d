"""The daemon as a user runs it: a real process, real HTTP, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.date import DateTrigger
from prometheus_client.parser import text_string_to_metric_families

from collector.config import load_and_resolve
from collector.daemon import Daemon

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def start(tmp_path: Path, db_url: str, port: int) -> subprocess.Popen[str]:
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    for f in (ROOT / "deploy" / "demo" / "reports").glob("*.json"):
        shutil.copy(f, reports / f.name)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
database: {{url: "{db_url}"}}
http: {{listen: "127.0.0.1:{port}"}}
shutdown_grace: 10s
connectors:
  - name: scans
    type: container_scan
    schedule: {{interval: 1h}}
    settings: {{paths: ["{reports}/*.json"]}}
"""
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def test_daemon_collects_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, f"sqlite:///{tmp_path / 'e.db'}", port)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, what="/readyz")
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200

        def collected() -> str | None:
            _, body = get(f"http://127.0.0.1:{port}/metrics")
            runs = samples(body, "evidence_collector_connector_runs_total")
            done = any(labels["outcome"] == "partial" and value >= 1 for labels, value in runs)
            return body if done else None

        body = wait_for(collected, what="a run in /metrics")
        status = {
            (lbl["framework"], lbl["control"]): v for lbl, v in samples(body, "evidence_collector_evidence_status")
        }
        assert status[("soc2", "CC7.1")] == 0
        events = samples(body, "evidence_collector_scheduler_events_total")
        # every scheduled job's series exists from the start (a loaded machine may really miss a slot: any count)
        labels = [lbl for lbl, _ in events]
        assert {"scheduler_job": "collect:scans", "event": "missed"} in labels, "exported before anything is missed"
        problems = samples(body, "evidence_collector_connector_input_problems_total")
        assert problems == [({"connector": "container_scan", "connector_instance": "scans"}, 1.0)]
        assert get(f"http://127.0.0.1:{port}/nope")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        finally:
            proc.kill()
        _, stderr = proc.communicate()
    assert code == 0, stderr
    assert '"event": "shutdown_finished"' in stderr
    assert '"event": "run_finished"' in stderr


def test_daemon_stays_up_when_the_database_is_down(tmp_path: Path) -> None:
    port = free_port()
    dead = free_port()
    proc = start(tmp_path, f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{dead}/none", port)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, what="/healthz")
        code, body = get(f"http://127.0.0.1:{port}/readyz")
        assert code == 503
        assert "database" in body
        _, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert samples(metrics, "evidence_collector_ready") == [({}, 0.0)]
        time.sleep(1.0)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        finally:
            proc.kill()
        _, stderr = proc.communicate()
    assert code == 0
    assert "hunter2" not in stderr, "a database password leaked into the log"
    assert "database_unavailable" in stderr


@pytest.mark.postgres
def test_daemon_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    port = free_port()
    proc = start(tmp_path, postgres_url, port)
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, what="/readyz")

        def stored() -> bool:
            _, body = get(f"http://127.0.0.1:{port}/metrics")
            return any(v >= 2 for _, v in samples(body, "evidence_collector_evidence_records_total"))

        wait_for(stored, what="records on PostgreSQL")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def _fail() -> None:
    raise RuntimeError("the job broke")


def test_missed_and_failed_scheduler_jobs_are_counted_on_metrics(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
database: {{url: "sqlite:///{tmp_path / "e.db"}"}}
http: {{listen: "127.0.0.1:0"}}
connectors:
  - name: scans
    type: container_scan
    schedule: {{interval: 1h}}
    settings: {{paths: ["{tmp_path}/none/*.json"]}}
"""
    )
    daemon = Daemon(load_and_resolve(config))
    daemon.start()
    try:
        assert daemon.http is not None
        url = f"http://127.0.0.1:{daemon.http.port}/metrics"
        long_ago = DateTrigger(datetime.now(UTC) - timedelta(minutes=5))
        daemon.scheduler.add_job(print, long_ago, id="collect:late", misfire_grace_time=1)
        daemon.scheduler.add_job(_fail, DateTrigger(datetime.now(UTC)), id="collect:broken")

        def counted() -> dict[tuple[str, str], float] | None:
            events = {
                (labels["scheduler_job"], labels["event"]): value
                for labels, value in samples(get(url)[1], "evidence_collector_scheduler_events_total")
            }
            done = events.get(("collect:late", "missed")) == 1 and events.get(("collect:broken", "error")) == 1
            return events if done else None

        events = wait_for(counted, timeout=10, what="a missed and a failed job in /metrics")
    finally:
        daemon.stop()
    assert events[("collect:scans", "missed")] == 0
    assert ("collect:late", "error") not in events
