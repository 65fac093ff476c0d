"""The alerts connector against a real Prometheus (ALERTS history backfilled with promtool) and a real
Alertmanager (Debian's prometheus-alertmanager) holding a real silence and a real alert, plus the kit.

The history is laid out around the wall clock because Alertmanager starts every silence at the moment it is
created: a silence cannot be backdated."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from collector.conformance import ConnectorConformance
from collector.connector import CollectContext
from collector.model import Observation, Outcome
from connectors.alerts import ACKNOWLEDGED_IN_TIME, AlertsConnector, AlertsSettings
from connectors.alerts.episodes import Episode, Silence, acknowledge, episodes_from
from tests.connectors.test_model_monitor import PROMETHEUS, PROMTOOL, _free_port, _stop

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
MINUTE = 60


def _minute(at: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(at.timestamp() / MINUTE) * MINUTE, UTC)


NOW = _minute(datetime.now(UTC))
"""Read once: the history, the silence and every collection are laid out around it."""


def _episode(labels: str, first: int, last: int) -> list[str]:
    """ALERTS samples a minute apart from NOW-first to NOW-last minutes (last may be negative: past NOW)."""
    out = []
    for m in range(first, last - 1, -1):
        t = int((NOW - timedelta(minutes=m)).timestamp())
        out.append(f'ALERTS{{alertstate="firing",{labels}}} 1 {t}')
    return out


def _history() -> str:
    lines = ["# TYPE ALERTS gauge"]
    lines += _episode('alertname="ModelAccuracyLow",model="fraud",severity="page"', 300, 241)  # 60 min, none
    lines += _episode('alertname="ModelLatencyHigh",model="fraud",severity="page"', 120, 111)  # 10 min, ended
    lines += _episode('alertname="NodeDown",instance="node-1"', 180, 61)  # no model label: not judged
    lines += _episode('alertname="ModelDriftHigh",model="churn",severity="page"', 20, -5)  # still firing
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.name}: exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    _stop(process)
    raise RuntimeError(f"{url} did not become ready in 30 s")


@pytest.fixture(scope="module")
def alert_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)):
        pytest.fail("prometheus/promtool not installed (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("alerts-prometheus")
    (root / "history.om").write_text(_history())
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(root / "history.om"), str(root / "data")],
        check=True,
        capture_output=True,
    )
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n")
    port = _free_port()
    log = root / "prometheus.log"
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            "--storage.tsdb.retention.time=100y",
            # backfilled samples carry no staleness marker: a short lookback keeps an episode's end where it was
            "--query.lookback-delta=30s",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, process, log)
    yield url
    _stop(process)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.path.exists(ALERTMANAGER):
        pytest.fail("prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)")
    root = tmp_path_factory.mktemp("alertmanager")
    (root / "alertmanager.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = _free_port()
    log = root / "alertmanager.log"
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={root / 'alertmanager.yml'}",
            f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, process, log)
    silence = {
        "matchers": [{"name": "model", "value": "churn", "isRegex": False, "isEqual": True}],
        "startsAt": NOW.isoformat(),
        "endsAt": (NOW + timedelta(hours=4)).isoformat(),
        "createdBy": "oncall@example.com",
        "comment": "drift on churn: retraining scheduled",
    }
    requests.post(f"{url}/api/v2/silences", json=silence, timeout=5).raise_for_status()
    alert = {
        "labels": {"alertname": "ModelDriftHigh", "model": "churn", "severity": "page"},
        "startsAt": (NOW - timedelta(minutes=20)).isoformat(),
    }
    requests.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
    yield url
    _stop(process)


def collect(settings: dict[str, Any]) -> tuple[Observation, list[Any]]:
    connector = AlertsConnector(AlertsSettings.model_validate(settings))
    # the wall clock, as Alertmanager's: its silences start when they are created
    ctx = CollectContext(instance="alerts", run_id="r1", now=datetime.now(UTC))
    [obs] = list(connector.collect(ctx))
    return obs, ctx.problems


def judge(obs: Observation, **settings: Any) -> tuple[Outcome, str]:
    parsed = AlertsSettings.model_validate({"prometheus_url": "http://x", **settings})
    result = ACKNOWLEDGED_IN_TIME.run(obs, parsed, NOW + timedelta(seconds=30))
    return result.result, result.message


def episodes_by_name(obs: Observation) -> dict[str, dict[str, Any]]:
    return {e["labels"]["alertname"]: e for e in obs.payload["monitored_episodes"] + obs.payload["other_episodes"]}


def test_episodes_come_from_the_alerts_history_with_their_start_end_and_labels(
    alert_prometheus: str, alertmanager: str
) -> None:
    obs, problems = collect({"prometheus_url": alert_prometheus, "alertmanager_url": alertmanager, "window": "6h"})
    assert problems == []
    found = episodes_by_name(obs)
    accuracy = found["ModelAccuracyLow"]
    assert accuracy["start"] == (NOW - timedelta(minutes=300)).isoformat()
    assert accuracy["end"] == (NOW - timedelta(minutes=240)).isoformat()
    assert accuracy["labels"] == {"alertname": "ModelAccuracyLow", "model": "fraud", "severity": "page"}
    assert accuracy["acknowledged"] is False and accuracy["unacknowledged_seconds"] == 3600
    drift = found["ModelDriftHigh"]
    assert drift["still_firing"] is True and drift["end"] is None
    assert found["NodeDown"] in obs.payload["other_episodes"]
    assert obs.payload["monitored_episode_count"] == 3


def test_a_silence_in_alertmanager_acknowledges_the_episode_it_matches(
    alert_prometheus: str, alertmanager: str
) -> None:
    obs, _ = collect({"prometheus_url": alert_prometheus, "alertmanager_url": alertmanager, "window": "6h"})
    drift = episodes_by_name(obs)["ModelDriftHigh"]
    [silence] = obs.payload["silences"]
    assert drift["acknowledged"] is True and drift["silences"] == [silence["id"]]
    assert silence["created_by"] == "oncall@example.com" and silence["state"] == "active"
    # acknowledged when the silence started (when it was created, at least 20 minutes after the alert started)
    assert drift["acknowledged_at"] == silence["starts_at"]
    started = datetime.fromisoformat(drift["start"])
    assert drift["unacknowledged_seconds"] == (datetime.fromisoformat(silence["starts_at"]) - started).total_seconds()
    assert drift["unacknowledged_seconds"] >= 20 * 60
    assert drift["alertmanager_state"] == "suppressed"
    assert episodes_by_name(obs)["ModelLatencyHigh"]["acknowledged"] is False


def test_an_alert_on_a_monitored_model_unacknowledged_past_the_limit_fails(
    alert_prometheus: str, alertmanager: str
) -> None:
    obs, _ = collect({"prometheus_url": alert_prometheus, "alertmanager_url": alertmanager, "window": "6h"})
    outcome, message = judge(obs, max_unacknowledged="30m")
    assert outcome is Outcome.FAIL
    assert "1 alert(s) fired longer than 30m unacknowledged" in message and "ModelAccuracyLow on fraud" in message


def test_within_the_limit_or_outside_the_watched_models_passes(alert_prometheus: str, alertmanager: str) -> None:
    obs, _ = collect({"prometheus_url": alert_prometheus, "alertmanager_url": alertmanager, "window": "6h"})
    assert judge(obs, max_unacknowledged="2h")[0] is Outcome.PASS
    only_churn, _ = collect(
        {"prometheus_url": alert_prometheus, "alertmanager_url": alertmanager, "window": "6h", "models": ["churn"]}
    )
    outcome, message = judge(only_churn, max_unacknowledged="30m")
    assert outcome is Outcome.PASS and "all 1 alert episode(s)" in message


def test_without_alertmanager_no_alert_counts_as_acknowledged(alert_prometheus: str) -> None:
    obs, _ = collect({"prometheus_url": alert_prometheus, "window": "6h"})
    outcome, message = judge(obs, max_unacknowledged="15m")
    assert outcome is Outcome.FAIL
    assert "no Alertmanager configured" in message and "ModelDriftHigh on churn" in message


def test_an_unreachable_alertmanager_is_an_error_never_a_pass(alert_prometheus: str) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    obs, problems = collect({"prometheus_url": alert_prometheus, "alertmanager_url": dead, "attempts": 1})
    assert obs.payload["status"] == "error" and problems
    assert judge(obs)[0] is Outcome.ERROR


def test_a_promql_error_is_an_error_with_the_servers_words(alert_prometheus: str) -> None:
    obs, _ = collect({"prometheus_url": alert_prometheus, "query": "ALERTS{", "attempts": 1})
    assert obs.payload["status"] == "error"
    assert "parse error" in obs.payload["error"]
    assert judge(obs)[0] is Outcome.ERROR


def test_no_alert_in_the_window_passes_and_says_so(alert_prometheus: str) -> None:
    obs, _ = collect({"prometheus_url": alert_prometheus, "query": 'ALERTS{alertname="Never"}'})
    outcome, message = judge(obs)
    assert outcome is Outcome.PASS and "no alert on a monitored model fired" in message


# ---------------------------------------------------------------------------------------- pure logic


def test_an_episode_firing_at_the_window_start_is_marked_as_begun_before_it() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=1)
    times = [start.timestamp() + 60 * i for i in range(0, 10)] + [start.timestamp() + 60 * i for i in range(30, 33)]
    first, second = episodes_from([({"alertname": "A", "alertstate": "firing"}, times)], 60, start, end)
    assert first.began_before_window and first.end == start + timedelta(minutes=10)
    assert not second.began_before_window and second.start == start + timedelta(minutes=30)
    assert first.labels == {"alertname": "A"}


@dataclass
class _M:
    name: str
    value: str
    regex: bool = False
    equal: bool = True


def _silence(*matchers: _M, start: datetime, end: datetime) -> Silence:
    return Silence("s", tuple((m.name, m.value, m.regex, m.equal) for m in matchers), start, end, "me", "", "active")


def test_silence_matchers_follow_alertmanager_semantics() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    ep = Episode({"alertname": "A", "model": "fraud-v2"}, t, t + timedelta(minutes=30), False)
    cases = [
        (_M("model", "fraud-.*", regex=True), True),
        (_M("model", "fraud", regex=True), False),  # anchored, as in Alertmanager
        (_M("model", "churn", equal=False), True),
        (_M("model", "fraud-v2", equal=False), False),
        (_M("team", ""), True),  # an absent label matches the empty value
    ]
    for matcher, acknowledged in cases:
        [out] = acknowledge([ep], [_silence(matcher, start=t + timedelta(minutes=5), end=t + timedelta(hours=1))], t)
        assert (out.acknowledged_at is not None) is acknowledged, matcher
    late = _silence(_M("model", "fraud-v2"), start=t + timedelta(hours=2), end=t + timedelta(hours=3))
    assert acknowledge([ep], [late], t)[0].acknowledged_at is None


# ---------------------------------------------------------------------------------------- conformance


class TestAlertsConformance(ConnectorConformance):
    connector_cls = AlertsConnector
    now = NOW + timedelta(seconds=30)
    secret_values: ClassVar[dict[str, str]] = {"bearer_token": "al3rt-t0ken"}
    invalid_settings: ClassVar[list[dict[str, Any]]] = [
        {},
        {"prometheus_url": "ftp://x"},
        {"prometheus_url": "http://x", "bearer_token": "t", "bearer_token_env": "T"},
        {"prometheus_url": "http://x", "window": "30d", "step": "1m"},
        {"prometheus_url": "http://x", "step": "2h", "window": "1h"},
        {"prometheus_url": "http://x", "max_unacknowledged": "0s"},
        {"prometheus_url": "http://x", "unknown": 1},
    ]

    @pytest.fixture(autouse=True)
    def _servers(self, alert_prometheus: str, alertmanager: str) -> None:
        self.urls = (alert_prometheus, alertmanager)

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"prometheus_url": self.urls[0], "alertmanager_url": self.urls[1], "window": "6h", "attempts": 1}
