"""The HTTP face cannot be starved: the daemon, a real process, with 2,000 idle TCP connections held open still
answers /healthz and /metrics, keeps collecting, and closes the idle connections after its header timeout."""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_daemon import free_port, get, samples, wait_for
from tests.webapp import write_config

IDLE_CONNECTIONS = 2000


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_thousand_idle_connections_do_not_starve_health_metrics_or_collection(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_CONNECTIONS * 2), hard))
    port = free_port()
    config = write_config(tmp_path, port, extra_http="  header_timeout: 3s\n  max_connections: 4096")
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    held: list[socket.socket] = []
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, what="/readyz")
        for _ in range(IDLE_CONNECTIONS):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        opened = time.monotonic()
        # within the header timeout, every one of them is still open on the server's side
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        code, body = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and "evidence_collector_ready 1.0" in body
        assert time.monotonic() - opened < 3, "both answered while all idle connections were held"

        def collected() -> bool:
            runs = samples(get(f"http://127.0.0.1:{port}/metrics")[1], "evidence_collector_connector_runs_total")
            return any(lbl["outcome"] == "partial" and value >= 1 for lbl, value in runs)

        wait_for(collected, what="a collection run while the connections are held")
        # the server closes connections that never sent a request: each held socket reads end-of-file
        closed = 0
        for sock in held[:50]:
            sock.settimeout(10)
            if sock.recv(1) == b"":
                closed += 1
        assert closed == 50
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        for sock in held:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
        _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_serve_answers_the_api_read_only_and_stops_on_sigterm(tmp_path: Path) -> None:
    import json
    import urllib.request

    from tests.webapp import TOKENS, collect

    port = free_port()
    config = write_config(tmp_path, port)
    collect(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, what="/readyz")
        assert get(f"http://127.0.0.1:{port}/api/v1/controls")[0] == 401
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/controls?framework=soc2",
            headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            controls = json.load(response)["controls"]
        assert any(c["control"] == "CC7.1" for c in controls)
        assert "evidence_collector_evidence_status" in get(f"http://127.0.0.1:{port}/metrics")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
        _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    runs = [line for line in stderr.splitlines() if '"event": "run_finished"' in line]
    assert runs == [], "serve never collects"
