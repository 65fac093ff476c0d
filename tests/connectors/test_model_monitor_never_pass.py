"""Real reports with one field changed: a failed source, a non-finite value or a bad time is never a pass.

The originals are in tests/fixtures/ (see SOURCES.md there); each test names the field it changes.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.connector import CollectContext, Problem
from collector.model import Observation, Outcome
from connectors.model_monitor import CHECKS, ModelMonitorConnector, ModelMonitorSettings
from connectors.model_monitor.prometheus import PrometheusClient, Series, Window, parse_range_response

FIXTURES = Path(__file__).parents[1] / "fixtures"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REPORT_MTIME = NOW - timedelta(hours=1)


def fixture(source: str, name: str) -> Any:
    return json.loads((FIXTURES / source / name).read_text())


def write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    os.utime(path, (REPORT_MTIME.timestamp(), REPORT_MTIME.timestamp()))
    return path


def collect(settings: dict[str, Any]) -> tuple[list[Observation], list[Problem]]:
    connector = ModelMonitorConnector(ModelMonitorSettings.model_validate(settings))
    ctx = CollectContext(instance="never-pass", run_id="r1", now=NOW)
    return list(connector.collect(ctx)), ctx.problems


def collect_reports(path: Path) -> tuple[dict[str, Observation], list[Problem]]:
    observations, problems = collect({"reports": [{"path": str(path)}]})
    return {o.kind: o for o in observations}, problems


def judge(observation: Observation, **settings: Any) -> tuple[Outcome, str]:
    [check] = [c for c in CHECKS if c.kind == observation.kind]
    merged = {"reports": [{"path": "unused"}], **settings}
    result = check.run(observation, ModelMonitorSettings.model_validate(merged), NOW)
    return result.result, result.message


# ------------------------------------------------------------------------------------------- Evidently


def test_an_evidently_drift_score_of_nan_is_not_a_measurement(tmp_path: Path) -> None:
    report = fixture("evidently", "report-v0.6.7-data-drift.json")
    assert judge(collect_reports(write(tmp_path, "unchanged.json", report))[0]["monitor.drift_report"])[0] is (
        Outcome.PASS
    )
    column = report["metrics"][1]["result"]["drift_by_columns"]["class"]
    column["drift_score"] = float("nan")  # Evidently writes a bare NaN; drift_detected stays false
    observations, problems = collect_reports(write(tmp_path, "nan.json", report))
    assert problems == []
    outcome, message = judge(observations["monitor.drift_report"])
    assert outcome is Outcome.FAIL
    assert message == "non-finite values: class.drift_score = NaN"


def test_a_stored_observation_holding_a_non_finite_number_is_never_a_pass(tmp_path: Path) -> None:
    """What a property test feeds the checks: the parsed payload of a real report with one number made NaN."""
    drift = collect_reports(write(tmp_path, "drift.json", fixture("evidently", "report-v0.6.7-data-drift.json")))[0][
        "monitor.drift_report"
    ]
    payload = {**drift.payload, "share_of_drifted_columns": float("nan")}
    tampered = Observation(drift.kind, drift.subject, drift.observed_at, payload, source=drift.source)
    assert judge(tampered) == (Outcome.FAIL, "non-finite values in the report: share_of_drifted_columns")


def test_an_evidently_test_that_errored_is_an_error_with_evidentlys_message(tmp_path: Path) -> None:
    suite = fixture("evidently", "test-suite-v0.3.3-with-failures.json")
    drift_test = suite["tests"][7]
    assert (drift_test["group"], drift_test["name"]) == ("data_drift", "Drift per Column")
    drift_test["status"] = "ERROR"
    observations, _ = collect_reports(write(tmp_path, "suite.json", suite))
    drift = observations["monitor.drift_report"]
    assert drift.payload["errored_test_count"] == 1
    outcome, message = judge(drift)
    assert outcome is Outcome.ERROR
    assert message.startswith("drift tests that Evidently could not run: Drift per Column: The drift score for")


def test_an_unparseable_report_time_is_a_problem_and_an_error_not_the_files_mtime(tmp_path: Path) -> None:
    report = fixture("evidently", "report-v0.6.7-data-drift.json")
    report["timestamp"] = "not-a-date"
    path = write(tmp_path, "drift.json", report)
    observations, problems = collect_reports(path)
    assert [(p.source, p.reason) for p in problems] == [
        (str(path), "field timestamp = 'not-a-date' is not a timestamp; the report's age is unknown")
    ]
    drift = observations["monitor.drift_report"]
    assert drift.payload["time_error"] == "field timestamp = 'not-a-date' is not a timestamp"
    assert judge(drift) == (
        Outcome.ERROR,
        "field timestamp = 'not-a-date' is not a timestamp: the report's age is unknown",
    )


def test_a_report_without_a_time_is_dated_by_its_file_and_says_so(tmp_path: Path) -> None:
    report = fixture("evidently", "report-v0.6.7-data-drift.json")
    del report["timestamp"]
    observations, problems = collect_reports(write(tmp_path, "drift.json", report))
    assert problems == []
    drift = observations["monitor.drift_report"]
    assert drift.observed_at == REPORT_MTIME
    outcome, message = judge(drift)
    assert outcome is Outcome.PASS
    assert message.endswith("(dated by the file's modification time: the report carries no time of its own)")


def test_a_report_dated_in_the_future_fails_as_in_the_future(tmp_path: Path) -> None:
    report = fixture("evidently", "report-v0.6.7-data-drift.json")
    report["timestamp"] = "2099-09-14 14:06:27.946071"
    observations, _ = collect_reports(write(tmp_path, "drift.json", report))
    outcome, message = judge(observations["monitor.drift_report"])
    assert outcome is Outcome.FAIL
    assert message == (
        "the report is dated 2099-09-14T14:06:27.946071+00:00, in the future "
        "(collected at 2026-11-26T12:00:00+00:00, clock_skew_tolerance 5m)"
    )


def test_a_clock_a_little_ahead_is_within_the_skew_tolerance(tmp_path: Path) -> None:
    report = fixture("evidently", "report-v0.6.7-data-drift.json")
    report["timestamp"] = (NOW + timedelta(minutes=4)).strftime("%Y-%m-%d %H:%M:%S.%f")
    drift = collect_reports(write(tmp_path, "drift.json", report))[0]["monitor.drift_report"]
    assert judge(drift)[0] is Outcome.PASS
    assert judge(drift, clock_skew_tolerance="1m")[0] is Outcome.FAIL


# ------------------------------------------------------------------------------------------- SageMaker / Clarify


def test_model_quality_statistics_are_read_and_a_nan_metric_fails_the_execution(tmp_path: Path) -> None:
    statistics = fixture("aws-sagemaker", "statistics-model-quality-regression.json")
    clean = write(tmp_path / "clean" / "2024" / "03" / "01" / "11", "statistics.json", statistics)
    statistics["regression_metrics"]["r2"]["value"] = "NaN"
    broken = write(tmp_path / "nan" / "2024" / "03" / "01" / "11", "statistics.json", statistics)
    observations, problems = collect({"reports": [{"path": str(tmp_path / "**" / "*.json")}]})
    assert problems == []
    by_source = {o.source: o for o in observations}
    assert judge(by_source[str(clean)])[0] is Outcome.PASS
    assert by_source[str(broken)].payload["non_finite_metrics"] == ["regression_metrics.r2.value = NaN"]
    outcome, message = judge(by_source[str(broken)])
    assert outcome is Outcome.FAIL
    assert message.startswith("non-finite values in the execution's statistics: regression_metrics.r2.value = NaN")


def test_model_quality_statistics_without_a_version_are_not_an_unknown_shape(tmp_path: Path) -> None:
    statistics = fixture("aws-sagemaker", "statistics-model-quality-regression.json")
    del statistics["version"]
    write(tmp_path / "2024" / "03" / "01" / "11", "statistics.json", statistics)
    observations, problems = collect({"reports": [{"path": str(tmp_path / "**" / "*.json")}]})
    assert problems == []
    [execution] = observations
    assert judge(execution)[0] is Outcome.PASS


def test_a_non_finite_clarify_metric_says_so(tmp_path: Path) -> None:
    analysis = fixture("aws-sagemaker", "clarify-bias-analysis.json")
    dpl = analysis["pre_training_bias_metrics"]["facets"]["F1"][0]["metrics"][2]
    assert dpl["name"] == "DPL"
    dpl["value"] = float("inf")
    bias = collect_reports(write(tmp_path, "analysis.json", analysis))[0]["monitor.bias_report"]
    outcome, message = judge(bias)
    assert outcome is Outcome.FAIL
    assert "DPL for F1=(0.5, 0.9936148802477393] (pre_training): value +Inf is not a finite number" in message


# ------------------------------------------------------------------------------------------- Prometheus bodies


def _monitor_collect(
    monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], now: datetime, window: str, step: str
) -> Observation:
    series, annotations = parse_range_response(body)

    def query_range(self: PrometheusClient, query: str, window: Window) -> tuple[list[Series], Any]:
        return series, annotations

    monkeypatch.setattr(PrometheusClient, "query_range", query_range)
    settings = {
        "prometheus": {"url": "http://prometheus.invalid:9090"},
        "monitors": [{"name": "requests", "query": "q", "bound": {"max": 100}, "window": window, "step": step}],
    }
    connector = ModelMonitorConnector(ModelMonitorSettings.model_validate(settings))
    [observation] = connector.collect(CollectContext(instance="p", run_id="r", now=now))
    return observation


def test_samples_off_the_windows_steps_are_no_data_not_a_breach(monkeypatch: pytest.MonkeyPatch) -> None:
    body = fixture("prometheus", "range-two-series-fractional-ts.json")  # samples at x.123 s
    now = datetime.fromtimestamp(1641889532.5, UTC)
    observation = _monitor_collect(monkeypatch, body, now, "3s", "1s")
    assert observation.payload["status"] == "no_data"
    assert observation.payload["samples_outside_window"] == 5
    assert judge(observation) == (
        Outcome.FAIL,
        "fail: no data for monitor requests over the last 3s (5 samples fell outside the window's evaluation steps)",
    )


def test_an_answer_with_prometheus_infos_is_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    body = fixture("prometheus", "range-two-series-with-infos.json")
    observation = _monitor_collect(monkeypatch, body, datetime.fromtimestamp(1641889532.5, UTC), "3s", "1s")
    assert observation.payload["infos"] == body["infos"]
    outcome, message = judge(observation)
    assert outcome is Outcome.ERROR
    assert "PromQL info: metric might not be a counter" in message
