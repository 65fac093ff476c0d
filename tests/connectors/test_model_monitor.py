"""The model_monitor connector against a real Prometheus with backfilled history (promtool), plus the kit."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import yaml
from pydantic import SecretStr, ValidationError

from collector.canonical import canonical_json, content_sha256
from collector.config import ConnectorInstance, ResolvedInstance, Schedule
from collector.connector import CollectContext, Problem
from collector.mappings import load_mappings
from collector.model import Observation, Outcome
from collector.runner import Runner
from collector.sdk.testing import ConnectorConformance
from collector.state import State
from collector.store import EvidenceFilter, Store
from connectors.model_monitor import METRIC_WITHIN_BOUNDS, ModelMonitorConnector, ModelMonitorSettings
from connectors.model_monitor.prometheus import MAX_POINTS_PER_QUERY, PrometheusClient, Window
from connectors.model_monitor.settings import PrometheusSettings

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DATA = Path(__file__).parents[1] / "data" / "model_monitor"
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
HISTORY_START = NOW - timedelta(hours=2)
MINUTES = 121
"""One sample a minute from 10:00 to 12:00 inclusive."""
PASSWORD = "s3cret-prom-password"


def _history() -> str:
    """Deterministic series: within bounds, breaching, NaN/+Inf, and one with a gap."""
    lines = ["# TYPE model_accuracy gauge"]
    for i in range(MINUTES):
        t = int(HISTORY_START.timestamp()) + 60 * i
        lines.append(f'model_accuracy{{model="fraud"}} {"0.84" if i == 100 else "0.9"} {t}')
        lines.append(f'model_accuracy{{model="churn"}} {"0.8" if i >= 70 else "0.9"} {t}')
    lines.append("# TYPE feature_psi gauge")
    for i in range(MINUTES):
        t = int(HISTORY_START.timestamp()) + 60 * i
        value = {90: "NaN", 91: "NaN", 92: "NaN", 110: "+Inf"}.get(i, "0.1")
        lines.append(f'feature_psi{{model="fraud"}} {value} {t}')
    lines.append("# TYPE latency_p99 gauge")
    for i in range(60, 90):  # 11:00 .. 11:29, then nothing
        t = int(HISTORY_START.timestamp()) + 60 * i
        lines.append(f'latency_p99{{model="fraud"}} 0.2 {t}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _start_prometheus(
    root: Path, web_config: str | None = None, extra_config: str = ""
) -> tuple[subprocess.Popen[bytes], str]:
    data = root / "data"
    history = root / "history.om"
    history.write_text(_history())
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(history), str(data)],
        check=True,
        capture_output=True,
    )
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n" + extra_config)
    port = _free_port()
    args = [
        PROMETHEUS,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    if web_config:
        (root / "web.yml").write_text(web_config)
        args.append(f"--web.config.file={root / 'web.yml'}")
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(root / 'prometheus.log').read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code in (200, 401):
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    _stop(process)
    raise RuntimeError("prometheus did not become ready in 30 s")


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)):
        pytest.skip("prometheus/promtool not installed (apt-get install prometheus)")
    process, url = _start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield url
    _stop(process)


@pytest.fixture(scope="session")
def secured_prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    bcrypt = pytest.importorskip("bcrypt")
    if not (os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)):
        pytest.skip("prometheus/promtool not installed")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    process, url = _start_prometheus(
        tmp_path_factory.mktemp("prometheus-auth"), f"basic_auth_users:\n  auditor: {hashed}\n"
    )
    yield url
    _stop(process)


@pytest.fixture(scope="session")
def warning_prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same history, plus a remote_read endpoint nobody listens on: every answer carries Prometheus' own
    ``warnings`` entry ("remote_read: error sending request ... connection refused") beside the local data."""
    if not (os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)):
        pytest.skip("prometheus/promtool not installed")
    remote_read = f"remote_read:\n  - url: http://127.0.0.1:{_free_port()}/api/v1/read\n    read_recent: true\n"
    process, url = _start_prometheus(tmp_path_factory.mktemp("prometheus-warn"), extra_config=remote_read)
    yield url
    _stop(process)


def monitor(name: str, query: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "model": "fraud-detector", "query": query, "bound": {"min": 0.85}, **extra}


def collect(settings: dict[str, Any], now: datetime = NOW) -> tuple[dict[str, Observation], list[Problem]]:
    connector = ModelMonitorConnector(ModelMonitorSettings.model_validate(settings))
    ctx = CollectContext(instance="monitors", run_id="r1", now=now)
    observations = list(connector.collect(ctx))
    return {o.payload.get("monitor", o.kind): o for o in observations}, ctx.problems


def judge(observation: Observation) -> tuple[Outcome, str]:
    settings = ModelMonitorSettings(monitors=[], reports=[{"path": "unused"}])
    result = METRIC_WITHIN_BOUNDS.run(observation, settings, NOW)
    return result.result, result.message


# ---------------------------------------------------------------------------------------- conformance


class TestModelMonitorConformance(ConnectorConformance):
    connector_cls = ModelMonitorConnector
    now = NOW
    secret_values: ClassVar[dict[str, str]] = {
        "prometheus.password": "pr0m-pa55word",
        "prometheus.bearer_token": "pr0m-bearer-t0ken",
    }
    secret_companions: ClassVar[dict[str, dict[str, Any]]] = {"prometheus.password": {"prometheus.username": "u"}}
    invalid_settings = [
        {},
        {"monitors": [{"name": "m", "query": "up", "bound": {"min": 1}}]},
        {"prometheus": {"url": "http://x"}, "monitors": [{"name": "m", "query": "up", "bound": {}}]},
        {"prometheus": {"url": "http://x"}, "monitors": [{"name": "m", "query": "up", "bound": {"min": 2, "max": 1}}]},
        {"prometheus": {"url": "http://x", "username": "u"}, "monitors": []},
        {"prometheus": {"url": "http://x", "bearer_token": "t", "bearer_token_env": "T"}, "reports": [{"path": "x"}]},
        {"reports": [{"path": "x", "s3": "s3://b/p"}]},
        {"reports": [{"s3": "not-a-uri"}]},
        {"sagemaker_schedules": {"enabled": True}},
        {"prometheus": {"url": "http://x"}, "monitors": [monitor("a", "up"), monitor("a", "up")]},
        {"prometheus": {"url": "http://x"}, "monitors": [monitor("a", "up", window="1m", step="5m")]},
    ]

    @pytest.fixture(autouse=True)
    def _prometheus(self, prometheus_url: str) -> None:
        self.url = prometheus_url

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "prometheus": {"url": self.url, "attempts": 1},
            "monitors": [
                monitor("fraud-accuracy", 'model_accuracy{model="fraud"}', min_coverage=0.95),
                monitor("fraud-drift", 'max(feature_psi{model="fraud"})', bound={"max": 0.2}, min_coverage=0.9),
            ],
            "reports": [{"path": str(DATA / "reports" / "**" / "*.json"), "model": "fraud-detector"}],
        }



# ---------------------------------------------------------------------------------------- outcomes


def test_a_series_within_bounds_passes_with_its_worst_value_recorded(prometheus_url: str) -> None:
    observations, problems = collect(
        {
            "prometheus": {"url": prometheus_url},
            "monitors": [monitor("fraud-accuracy", 'model_accuracy{model="fraud"}', min_coverage=0.95)],
        }
    )
    assert problems == []
    obs = observations["fraud-accuracy"]
    payload = obs.payload
    assert obs.kind == "monitor.metric"
    assert str(obs.subject) == "monitor:fraud-detector/fraud-accuracy"
    assert obs.observed_at == NOW
    assert payload["status"] == "ok"
    assert payload["steps_expected"] == 61
    assert payload["sample_count"] == 61
    assert payload["steps_within_bounds"] == 60
    assert payload["worst_value"] == "0.84"
    assert payload["share_within_bounds"] == round(60 / 61, 6)
    assert payload["series"][0]["labels"] == {"__name__": "model_accuracy", "model": "fraud"}
    assert payload["series"][0]["values"][0] == [NOW.timestamp() - 3600, "0.9"]
    outcome, message = judge(obs)
    assert outcome is Outcome.PASS, message
    assert "98.4% of the last 1h within bounds (>= 0.85)" in message


def test_a_breaching_series_fails_as_a_breach(prometheus_url: str) -> None:
    observations, _ = collect(
        {
            "prometheus": {"url": prometheus_url},
            "monitors": [monitor("churn-accuracy", 'model_accuracy{model="churn"}', min_coverage=0.95)],
        }
    )
    obs = observations["churn-accuracy"]
    assert obs.payload["steps_within_bounds"] == 10  # 11:00 .. 11:09, then 0.8 from 11:10
    assert obs.payload["worst_value"] == "0.8"
    outcome, message = judge(obs)
    assert outcome is Outcome.FAIL
    assert message.startswith("breach: monitor churn-accuracy: 16.4% of the last 1h")


def test_a_query_with_no_data_fails_as_no_data_not_as_a_breach(prometheus_url: str) -> None:
    observations, problems = collect(
        {"prometheus": {"url": prometheus_url}, "monitors": [monitor("absent", 'model_accuracy{model="absent"}')]}
    )
    assert problems == []
    obs = observations["absent"]
    assert obs.payload["status"] == "no_data"
    assert obs.payload["sample_count"] == 0
    assert obs.payload["worst_value"] is None
    outcome, message = judge(obs)
    assert outcome is Outcome.FAIL
    assert message == "fail: no data for monitor absent over the last 1h"


def test_nan_and_inf_samples_are_not_measurements_and_fail_the_monitor(prometheus_url: str) -> None:
    settings = {
        "prometheus": {"url": prometheus_url},
        "monitors": [monitor("psi", 'feature_psi{model="fraud"}', bound={"max": 0.2}, min_coverage=0.9)],
    }
    obs = collect(settings)[0]["psi"]
    values = [v for _, v in obs.payload["series"][0]["values"]]
    assert values.count("NaN") == 3
    assert "+Inf" in values
    assert obs.payload["nan_count"] == 3
    assert obs.payload["non_finite_values"] == {"+Inf": 1, "NaN": 3}
    assert obs.payload["worst_value"] == "+Inf"
    assert obs.payload["steps_within_bounds"] == 61 - 4
    assert obs.payload["steps_with_data"] == 61 - 4
    canonical_json(obs.payload)  # strings, so the payload stays canonical JSON
    outcome, message = judge(obs)
    assert outcome is Outcome.FAIL
    assert message.startswith("non-finite values (+Inf x1, NaN x3): monitor psi: 93.4% of the last 1h")


@pytest.mark.parametrize(
    ("query", "bound", "shown"),
    [("vector(1) / 0", {"min": 0.85}, "+Inf x61"), ("vector(-1) / 0", {"max": 0.2}, "-Inf x61")],
)
def test_an_infinite_series_is_an_error_never_a_pass(
    prometheus_url: str, query: str, bound: dict[str, float], shown: str
) -> None:
    obs = collect({"prometheus": {"url": prometheus_url}, "monitors": [monitor("inf", query, bound=bound)]})[0]["inf"]
    assert obs.payload["status"] == "ok"
    assert obs.payload["steps_within_bounds"] == 0
    assert obs.payload["steps_with_data"] == 0
    outcome, message = judge(obs)
    assert outcome is Outcome.ERROR
    assert message == f"monitor inf: no sample over the last 1h is a finite number ({shown})"


def test_an_answer_with_prometheus_warnings_is_an_error_with_the_servers_words(warning_prometheus_url: str) -> None:
    observations, problems = collect(
        {
            "prometheus": {"url": warning_prometheus_url},
            "monitors": [monitor("fraud-accuracy", 'model_accuracy{model="fraud"}', min_coverage=0.95)],
        }
    )
    obs = observations["fraud-accuracy"]
    assert obs.payload["share_within_bounds"] == round(60 / 61, 6)  # the local data alone would pass
    [warning] = obs.payload["warnings"]
    assert warning.startswith("remote_read: error sending request")
    outcome, message = judge(obs)
    assert outcome is Outcome.ERROR
    assert message.startswith("monitor fraud-accuracy: Prometheus annotated its answer, so it is not judged: ")
    assert "connection refused" in message
    assert [p.source for p in problems] == ["monitor fraud-accuracy"]


def test_gaps_count_against_coverage(prometheus_url: str) -> None:
    settings = {
        "prometheus": {"url": prometheus_url},
        "monitors": [monitor("latency", 'latency_p99{model="fraud"}', bound={"max": 0.5}, min_coverage=0.9)],
    }
    obs = collect(settings)[0]["latency"]
    # 11:00..11:29 plus Prometheus' 5 minute lookback after the last sample
    assert obs.payload["steps_with_data"] == 35
    assert obs.payload["steps_within_bounds"] == 35
    outcome, message = judge(obs)
    assert outcome is Outcome.FAIL
    assert "57.4% of the last 1h" in message


def test_a_promql_syntax_error_is_that_monitors_error_and_others_proceed(prometheus_url: str) -> None:
    observations, problems = collect(
        {
            "prometheus": {"url": prometheus_url},
            "monitors": [
                monitor("broken", "sum(model_accuracy"),
                monitor("fraud-accuracy", 'model_accuracy{model="fraud"}', min_coverage=0.95),
            ],
        }
    )
    broken = observations["broken"]
    assert broken.payload["status"] == "error"
    assert "bad_data" in broken.payload["error"]
    assert "parse error" in broken.payload["error"]
    outcome, message = judge(broken)
    assert outcome is Outcome.ERROR
    assert message.startswith("monitor broken: bad_data: ")
    assert [p.source for p in problems] == ["monitor broken"]
    assert judge(observations["fraud-accuracy"])[0] is Outcome.PASS


def test_prometheus_down_gives_error_evidence_and_reports_still_collected() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    observations, problems = collect(
        {
            "prometheus": {"url": url, "attempts": 1, "timeout": "2s"},
            "monitors": [monitor("a", "up"), monitor("b", "up")],
            "reports": [{"path": str(DATA / "reports" / "**" / "*.json")}],
        }
    )
    for name in ("a", "b"):
        assert observations[name].payload["status"] == "error"
        assert "unreachable" in observations[name].payload["error"]
        assert judge(observations[name])[0] is Outcome.ERROR
    assert {o.kind for o in observations.values()} > {"monitor.metric"}
    assert {p.source for p in problems} == {"monitor a", "monitor b"}


def test_long_windows_are_chunked_below_the_point_limit(prometheus_url: str) -> None:
    settings = {
        "prometheus": {"url": prometheus_url},
        "monitors": [monitor("fine", 'model_accuracy{model="fraud"}', window="2h", step="0.5s", min_coverage=0.9)],
    }
    obs = collect(settings)[0]["fine"]
    steps = 2 * 3600 * 2 + 1
    assert steps > MAX_POINTS_PER_QUERY
    timestamps = [ts for ts, _ in obs.payload["series"][0]["values"]]
    assert len(timestamps) == len(set(timestamps)) == steps
    assert obs.payload["steps_with_data"] == steps


def test_window_chunks_tile_the_window_exactly() -> None:
    window = Window(NOW - timedelta(seconds=25_000), NOW, timedelta(seconds=1))
    chunks = window.chunks()
    assert [c.steps for c in chunks] == [11_000, 11_000, 3_001]
    assert chunks[0].start == window.start
    assert chunks[-1].end == window.end
    for before, after in itertools.pairwise(chunks):
        assert after.start - before.end == window.step


def test_window_end_is_floored_to_the_step(prometheus_url: str) -> None:
    later = NOW + timedelta(seconds=42)
    obs = collect(
        {"prometheus": {"url": prometheus_url}, "monitors": [monitor("m", 'model_accuracy{model="fraud"}')]}, later
    )[0]["m"]
    assert obs.observed_at == NOW
    assert obs.payload["window"]["end"] == NOW.isoformat()


# ---------------------------------------------------------------------------------------- auth and secrets


def test_basic_auth_against_a_secured_prometheus(secured_prometheus_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    query = monitor("fraud-accuracy", 'model_accuracy{model="fraud"}', min_coverage=0.95)
    monkeypatch.setenv("PROM_PASSWORD", PASSWORD)
    good = {"url": secured_prometheus_url, "username": "auditor", "password_env": "PROM_PASSWORD"}
    obs = collect({"prometheus": good, "monitors": [query]})[0]["fraud-accuracy"]
    assert obs.payload["status"] == "ok"
    bad = {"url": secured_prometheus_url, "username": "auditor", "password": "wrong", "attempts": 1}
    refused = collect({"prometheus": bad, "monitors": [query]})[0]["fraud-accuracy"]
    assert refused.payload["status"] == "error"
    assert "HTTP 401" in refused.payload["error"]


def test_a_missing_token_variable_is_an_error_naming_it(prometheus_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_PROM_TOKEN", raising=False)
    settings = {
        "prometheus": {"url": prometheus_url, "bearer_token_env": "NO_SUCH_PROM_TOKEN"},
        "monitors": [monitor("m", "up")],
    }
    observations, problems = collect(settings)
    assert observations["m"].payload["error"] == "environment variable NO_SUCH_PROM_TOKEN (bearer_token_env) is not set"
    assert problems[0].source == "monitor m"


def test_bearer_token_and_tls_settings_reach_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "tok-123")
    client = PrometheusClient(
        PrometheusSettings(url="https://p:9090", bearer_token_env="PROM_TOKEN", ca_file="/ca.pem")
    )
    assert client.session.headers["Authorization"] == "Bearer tok-123"
    assert client.session.verify == "/ca.pem"
    insecure = PrometheusClient(PrometheusSettings(url="https://p:9090", tls_verify=False))
    assert insecure.session.verify is False
    assert "Authorization" not in insecure.session.headers


def test_nested_secrets_never_show_in_reprs_or_dumps() -> None:
    settings = ModelMonitorSettings.model_validate(
        {
            "prometheus": {"url": "http://p", "username": "u", "password": "pw-never-shown"},
            "monitors": [monitor("m", "up")],
        }
    )
    assert isinstance(settings.prometheus and settings.prometheus.password, SecretStr)
    for text in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "pw-never-shown" not in text
    with pytest.raises(ValidationError, match="not both"):
        PrometheusSettings(url="http://p", username="u", password="a", password_env="B")


# ---------------------------------------------------------------------------------------- through the core


def test_a_run_through_the_core_stores_tagged_evidence_with_check_results(prometheus_url: str, tmp_path: Path) -> None:
    # reports without a time of their own are dated by their file's mtime: a fresh checkout's is "now", after NOW
    reports = tmp_path / "reports"
    shutil.copytree(DATA / "reports", reports)
    before_now = (NOW - timedelta(hours=1)).timestamp()
    for path in reports.rglob("*.json"):
        os.utime(path, (before_now, before_now))
    raw = {
        "prometheus": {"url": prometheus_url},
        "monitors": [
            monitor("fraud-accuracy", 'model_accuracy{model="fraud"}', min_coverage=0.95),
            monitor("absent", 'model_accuracy{model="absent"}'),
        ],
        "reports": [{"path": str(reports / "**" / "*.json"), "model": "fraud-detector"}],
    }
    config = ConnectorInstance(
        name="monitors",
        type="model_monitor",
        schedule=Schedule(interval=timedelta(minutes=15), timeout=timedelta(seconds=60)),
        settings=raw,
    )
    settings = ModelMonitorSettings.model_validate(raw)
    instance = ResolvedInstance(config, ModelMonitorConnector, settings, content_sha256(raw))
    store = Store(f"sqlite:///{tmp_path / 'evidence.db'}")
    store.upgrade()
    try:
        outcome = Runner(store, State(), load_mappings(), clock=lambda: NOW).run(instance)
        assert outcome.run.status == "succeeded", outcome.run.error
        records = {(r.kind, r.subject_id): r for r in outcome.records}
        metric = records[("monitor.metric", "fraud-detector/fraud-accuracy")]
        assert "nist_ai_rmf:MEASURE 2.4" in metric.controls
        assert "soc2:CC7.2" in metric.controls
        assert "nist_ai_rmf:MEASURE 2.11" not in metric.controls
        assert [c["result"] for c in metric.checks] == ["pass"]
        absent = records[("monitor.metric", "fraud-detector/absent")]
        assert absent.checks[0]["message"].startswith("fail: no data")
        bias = records[("monitor.bias_report", "fraud-detector")]
        assert "nist_ai_rmf:MEASURE 2.11" in bias.controls
        stored = store.latest_records(EvidenceFilter(check="monitor.metric_within_bounds", result="fail"))
        assert [r.subject_id for r in stored] == ["fraud-detector/absent"]
    finally:
        store.dispose()


ISSUE_EXAMPLE = """
prometheus: {url: "http://prometheus:9090", bearer_token_env: PROM_TOKEN}
monitors:
  - {name: fraud-accuracy, model: fraud-detector, query: 'model_accuracy{model="fraud"}',
     bound: {min: 0.85}, window: 1h, min_coverage: 0.95}
  - {name: fraud-drift, model: fraud-detector, query: 'max(feature_psi{model="fraud"})',
     bound: {max: 0.2}, window: 6h, min_coverage: 0.9}
reports:
  - {path: "/reports/evidently/**/*.json"}
  - {s3: "s3://ml-monitoring/sagemaker/fraud/", format: sagemaker}
sagemaker_schedules: {enabled: true, regions: [eu-west-1]}
"""


def test_the_documented_example_settings_validate() -> None:
    settings = ModelMonitorSettings.model_validate(yaml.safe_load(ISSUE_EXAMPLE))
    assert [m.window for m in settings.monitors] == [timedelta(hours=1), timedelta(hours=6)]
    assert settings.reports[1].s3_uri == "s3://ml-monitoring/sagemaker/fraud/"
    assert settings.prometheus is not None
    assert settings.prometheus.bearer_token_env == "PROM_TOKEN"


def _check_config(tmp_path: Path, url: str, query: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from collector.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
database: {{url: "sqlite:///{tmp_path / "e.db"}"}}
connectors:
  - name: monitors
    type: model_monitor
    settings:
      prometheus: {{url: "{url}", attempts: 1}}
      monitors:
        - {{name: fraud-accuracy, model: fraud, query: 'model_accuracy{{model="fraud"}}', bound: {{min: 0.8}}}}
        - {{name: broken, model: fraud, query: '{query}', bound: {{max: 0.2}}}}
"""
    )
    result = CliRunner().invoke(app, ["config", "check", "--config", str(config)])
    return result.exit_code, result.output


def test_config_check_reports_a_promql_syntax_error_with_the_monitor_name(prometheus_url: str, tmp_path: Path) -> None:
    code, output = _check_config(tmp_path, prometheus_url, "sum(rate(feature_psi[5m]")
    assert code == 2
    assert "monitors[broken].query" in output
    assert "bad_data" in output
    assert "fraud-accuracy" not in output

    code, output = _check_config(tmp_path, prometheus_url, "max(feature_psi)")
    assert code == 0, output


def test_config_check_passes_when_prometheus_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, output = _check_config(tmp_path, f"http://127.0.0.1:{port}", "sum(rate(feature_psi[5m]")
    assert code == 0, output
