"""Canary secrets in every place a credential can be configured never reach evidence, logs, output or bundles.

Each canary is a distinct string set in one place: a connector's secret settings, an environment variable read
by ``${ENV}`` interpolation, a URL's user info, a URL's query string, the database URL. Real collections run
against a real Prometheus (which checks the canary password), an unreachable MLflow and container scans, through
the CLI and the daemon as a user runs them; then logs, CLI output, every table of the database, /metrics and
every file of the exported bundles are searched for every canary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import make_url

from tests.connectors.test_model_monitor import _free_port, _start_prometheus, _stop

pytestmark = pytest.mark.slow

SCANS = Path(__file__).resolve().parent / "data" / "scans"
EXPORTS = (("soc2", "as-of"), ("nist_ai_rmf", "as-of"), ("nist_ai_rmf", "period"))

CANARIES = {
    "prometheus bearer_token setting, via ${ENV}": "CanaryEnvPromBearer4f1c",
    "prometheus URL user info": "CanaryPromUserinfo9b2e",
    "prometheus URL query token": "CanaryPromQueryToken61d0",
    "prometheus bearer_token setting": "CanaryPromBearerSetting3a7f",
    "unreachable prometheus URL user info": "CanaryDownUserinfo0c55",
    "unreachable prometheus URL query signature": "CanaryDownSignature8e21",
    "mlflow URL user info": "CanaryMlflowUserinfo2d94",
    "mlflow token setting": "CanaryMlflowToken7b03",
    "database URL password": "CanaryDatabasePassword5e6a",
}
PROMETHEUS_PASSWORD = "CanaryPromPasswordShared1f9"
"""The one password the secured Prometheus accepts: given once through ``${ENV}`` as the password setting and
once as URL user info."""


@pytest.fixture(scope="module")
def secured_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Any:
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(PROMETHEUS_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    process, url = _start_prometheus(
        tmp_path_factory.mktemp("canary-prometheus"), f"basic_auth_users:\n  auditor: {hashed}\n"
    )
    yield url
    _stop(process)


def _database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    password = CANARIES["database URL password"]
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'evidence.db'}?password={password}"
    base = make_url(str(request.getfixturevalue("postgres_url")))
    return base.set(password=password).render_as_string(hide_password=False)


def _config(tmp_path: Path, prometheus: str, database_url: str, http_port: int) -> Path:
    host = prometheus.removeprefix("http://")
    closed = f"127.0.0.1:{_free_port()}"

    def monitor(name: str) -> list[dict[str, Any]]:
        return [{"name": name, "query": 'model_accuracy{model="fraud"}', "bound": {"min": 0.8}}]

    once = {"attempts": 1, "initial": "1s", "max": "1s"}
    config = {
        "database": {"url": database_url},
        "http": {"listen": f"127.0.0.1:{http_port}"},
        "shutdown_grace": "5s",
        "connectors": [
            {
                "name": "prom-settings",
                "type": "model_monitor",
                "retry": once,
                "settings": {
                    "prometheus": {"url": prometheus, "username": "auditor", "password": "${CANARY_PROM_PASSWORD}"},
                    "monitors": monitor("prom-settings"),
                },
            },
            {
                "name": "prom-userinfo",
                "type": "model_monitor",
                "retry": once,
                "settings": {
                    "prometheus": {"url": f"http://auditor:{PROMETHEUS_PASSWORD}@{host}"},
                    "monitors": monitor("prom-userinfo"),
                },
            },
            {
                "name": "prom-userinfo-only-canary",
                "type": "model_monitor",
                "retry": once,
                "settings": {
                    "prometheus": {"url": f"http://auditor:{CANARIES['prometheus URL user info']}@{host}"},
                    "monitors": monitor("prom-userinfo-only-canary"),
                },
            },
            {
                "name": "prom-query",
                "type": "model_monitor",
                "retry": once,
                "settings": {
                    "prometheus": {
                        "url": f"http://{host}/?access_token={CANARIES['prometheus URL query token']}",
                        "bearer_token": "${CANARY_PROM_BEARER}",
                        "attempts": 1,
                    },
                    "monitors": monitor("prom-query"),
                },
            },
            {
                "name": "prom-down",
                "type": "model_monitor",
                "retry": once,
                "settings": {
                    "prometheus": {
                        "url": f"http://auditor:{CANARIES['unreachable prometheus URL user info']}@{closed}/prom"
                        f"?X-Amz-Signature={CANARIES['unreachable prometheus URL query signature']}",
                        "bearer_token": CANARIES["prometheus bearer_token setting"],
                        "attempts": 1,
                        "timeout": "2s",
                    },
                    "monitors": monitor("prom-down"),
                },
            },
            {
                "name": "mlflow-down",
                "type": "mlflow",
                "retry": once,
                "settings": {
                    "tracking_uri": f"http://mlflow:{CANARIES['mlflow URL user info']}@{closed}",
                    "token": CANARIES["mlflow token setting"],
                    "http_retries": 0,
                    "request_timeout": "5s",
                },
            },
            {
                "name": "scans",
                "type": "container_scan",
                "settings": {"paths": [f"{SCANS}/*.json"], "max_age": "3650d"},
            },
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "CANARY_PROM_PASSWORD": PROMETHEUS_PASSWORD,
        "CANARY_PROM_BEARER": CANARIES["prometheus bearer_token setting, via ${ENV}"],
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=300,
    )


def _metrics_of_a_running_daemon(config: Path, port: int) -> tuple[str, str]:
    """Start the daemon, wait until every instance has run once, scrape /metrics; then SIGTERM it."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
    )
    body = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    body = response.read().decode()
            except OSError:
                body = ""
            ran = "evidence_collector_connector_last_run_duration_seconds{"
            if sum(1 for line in body.splitlines() if line.startswith(ran)) >= 7:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the daemon did not run every instance within 120 s; /metrics: {body[-2000:]}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=180)
    return body, out + err


def _database_dump(database_url: str) -> str:
    engine = sa.create_engine(database_url)
    rows: list[str] = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                rows += [f"{table}: {row!r}" for row in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]
    finally:
        engine.dispose()
    return "\n".join(rows)


def _bundle_text(path: Path) -> str:
    with zipfile.ZipFile(path) as bundle:
        return "\n".join(f"{name}: {bundle.read(name).decode('utf-8', 'replace')}" for name in bundle.namelist())


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_no_canary_secret_reaches_logs_output_database_metrics_or_bundles(
    database: str, secured_prometheus: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database_url = _database_url(database, tmp_path, request)
    http_port = _free_port()
    config = _config(tmp_path, secured_prometheus, database_url, http_port)
    key = tmp_path / "signing.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

    seen: dict[str, str] = {}

    def run(label: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = _cli(config, *args)
        seen[f"`{label}` stdout"] = result.stdout
        seen[f"`{label}` stderr"] = result.stderr
        return result

    assert run("db upgrade", "db", "upgrade").returncode == 0, seen["`db upgrade` stderr"]
    checked = run("config check", "config", "check")
    collected = run("collect", "collect")
    assert collected.returncode == 1, "some instances are meant to fail (unreachable servers)"
    seen["/metrics"], seen["daemon logs"] = _metrics_of_a_running_daemon(config, http_port)
    evidence = run("evidence --format json", "evidence", "--format", "json")
    assert evidence.returncode == 0, evidence.stderr
    run("evidence", "evidence")
    run("status", "status")
    assert run("verify", "verify").returncode == 0
    now = datetime.now(UTC)
    windows = {"as-of": ("--as-of", now.isoformat())}
    windows["period"] = ("--period", f"{(now - timedelta(days=1)).isoformat()}..{now.isoformat()}")
    for framework, window in EXPORTS:
        bundle = tmp_path / f"{framework}-{window}.zip"
        label = f"export {framework} {window}"
        exported = run(label, "export", "--framework", framework, *windows[window], "--out", str(bundle), "--sign-key",
                       str(key))  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        seen[f"bundle {framework} {window}"] = _bundle_text(bundle)
    seen["database"] = _database_dump(database_url)

    secrets = {**CANARIES, "prometheus password (setting and URL)": PROMETHEUS_PASSWORD}
    hits = {
        (where, what): text.count(secret)
        for where, text in seen.items()
        for what, secret in secrets.items()
        if secret in text
    }
    assert hits == {}

    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "prom-userinfo-only-canary" in checked.stderr, "the wrong password in its URL is refused"
    assert checked.stderr.count("the URL carries credentials") == 5, "a warning per URL with credentials"
    records = json.loads(evidence.stdout)["records"]
    by_instance: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_instance.setdefault(record["instance"], []).append(record)
    # the canary credentials were really used: the server that checks the password accepted them
    for instance in ("prom-settings", "prom-userinfo"):
        assert [r["payload"]["status"] for r in by_instance[instance]] == ["no_data"], by_instance[instance]
    assert "HTTP 401" in by_instance["prom-userinfo-only-canary"][0]["payload"]["error"]
    assert "unreachable" in by_instance["prom-down"][0]["payload"]["error"]
    assert by_instance["scans"], "the container scans were stored"
    assert "mlflow-down" in seen["database"] and "unreachable" in seen["database"], "mlflow's run error is stored"
    assert secured_prometheus.removeprefix("http://") in seen["bundle nist_ai_rmf period"], "provenance kept its host"
