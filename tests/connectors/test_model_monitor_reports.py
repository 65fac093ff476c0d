"""Report parsing (Evidently, SageMaker Model Monitor, Clarify) and Prometheus bodies against real recorded files."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.canonical import canonical_json
from collector.connector import CollectContext, Problem
from collector.model import Observation, Outcome
from connectors.model_monitor import (
    BIAS_WITHIN_BOUNDS,
    DATA_QUALITY,
    DRIFT_FREE,
    ModelMonitorConnector,
    ModelMonitorSettings,
)
from connectors.model_monitor.prometheus import PrometheusError, Window, evaluate, parse_range_response
from connectors.model_monitor.reports import ReportError, parse_document
from connectors.model_monitor.settings import Bound
from connectors.model_monitor.sources import decode_json

DATA = Path(__file__).parents[1] / "data" / "model_monitor"


def now() -> datetime:
    """The wall clock at each collection and judgement: these reports are dated by the mtime of files the tests
    copy, so a ``now`` taken once at import lags behind them in a long test session (and reads as "future")."""
    return datetime.now(UTC)


BY_MTIME = " (dated by the file's modification time: the report carries no time of its own)"


def parse_file(path: Path, format: str = "auto") -> list[Any]:
    return parse_document(decode_json(path.read_bytes()), str(path), format)


def collect(*paths: Path | str, **settings: Any) -> tuple[list[Observation], list[Problem]]:
    raw = {"reports": [{"path": str(p)} for p in paths], **settings}
    connector = ModelMonitorConnector(ModelMonitorSettings.model_validate(raw))
    ctx = CollectContext(instance="reports", run_id="r1", now=now())
    return list(connector.collect(ctx)), ctx.problems


def judge(observation: Observation, **settings: Any) -> tuple[Outcome, str]:
    checks = {"monitor.drift_report": DRIFT_FREE, "monitor.quality_report": DATA_QUALITY}
    check = checks.get(observation.kind, BIAS_WITHIN_BOUNDS)
    result = check.run(observation, ModelMonitorSettings(reports=[{"path": "unused"}], **settings), now())
    return result.result, result.message


# ------------------------------------------------------------------------------------- every shared file


def test_every_shared_evidently_and_sagemaker_file_parses_or_is_a_known_non_report(shared_fixtures: Path) -> None:
    files = sorted((shared_fixtures / "evidently").glob("*")) + sorted((shared_fixtures / "aws-sagemaker").glob("*"))
    files = [f for f in files if f.suffix == ".json"]
    assert len(files) >= 8
    for path in files:
        reports = parse_file(path)
        for report in reports:
            canonical_json(report.summary)  # NaN in the source never reaches the payload
        name = path.name
        if name.startswith(("constraints", "statistics")):
            assert reports == [], f"{name} is a baseline, not a result"
        else:
            assert reports, f"{name} gave no reports"


def test_evidently_0_6_report_keeps_evidentlys_dataset_verdict(shared_fixtures: Path) -> None:
    observations, problems = collect(shared_fixtures / "evidently" / "report-v0.6.7-data-drift.json")
    assert problems == []
    [obs] = observations
    assert obs.kind == "monitor.drift_report"
    assert obs.observed_at == datetime(2025, 9, 14, 14, 6, 27, 946071, tzinfo=UTC)
    assert obs.payload["observed_at_source"] == "report"
    assert obs.payload["tool_version"] == "0.6.7"
    assert obs.payload["dataset_drift"] is False
    assert obs.payload["number_of_drifted_columns"] == 5
    assert obs.payload["drift_share_threshold"] == 0.5
    assert len(obs.payload["drifted_columns"]) == 5
    assert judge(obs) == (
        Outcome.PASS,
        "no drift in the evidently_report report (5 columns drifted, below the dataset threshold)",
    )
    outcome, message = judge(obs, drift_fail_on="any_column")
    assert outcome is Outcome.FAIL
    assert message.startswith("drifted columns: ")


def test_evidently_0_3_test_suite_splits_drift_and_quality_tests(shared_fixtures: Path) -> None:
    observations, _ = collect(shared_fixtures / "evidently" / "test-suite-v0.3.3-with-failures.json")
    by_kind = {o.kind: o for o in observations}
    quality, drift = by_kind["monitor.quality_report"], by_kind["monitor.drift_report"]
    assert quality.payload["test_count"] == 38
    assert quality.payload["failing_test_count"] == 4
    assert drift.payload["test_count"] == 2
    assert quality.payload["test_count"] + drift.payload["test_count"] == 40  # summary.total_tests
    outcome, message = judge(quality)
    assert outcome is Outcome.FAIL
    assert message.startswith("4 of 38 tests failing: Share of Out-of-Range Values (FAIL)")
    assert judge(drift)[0] is Outcome.PASS


def test_evidently_workspace_snapshot_reads_dataset_and_column_drift(shared_fixtures: Path) -> None:
    [obs] = collect(shared_fixtures / "evidently" / "workspace-snapshot-report.json")[0]
    assert obs.observed_at == datetime(2023, 1, 30, tzinfo=UTC)
    assert obs.payload["format"] == "evidently_snapshot"
    assert obs.payload["snapshot"]["id"] == "0193ca06-ff9c-7d29-871a-bd1e2275e628"
    assert obs.payload["number_of_drifted_columns"] == 3
    assert {c["column"] for c in obs.payload["drifted_columns"]} == {
        "cnt",
        "prediction",
        "temp",
        "atemp",
        "hum",
        "windspeed",
    }
    assert judge(obs)[0] is Outcome.PASS
    assert judge(obs, drift_fail_on="any_column")[0] is Outcome.FAIL


def test_sagemaker_violations_fail_data_quality(shared_fixtures: Path) -> None:
    [obs] = collect(shared_fixtures / "aws-sagemaker" / "constraint_violations-data-quality.json")[0]
    assert obs.kind == "monitor.quality_report"
    assert obs.payload["violation_count"] == 7
    assert obs.payload["violations_by_check"] == {
        "categorical_values_check": 1,
        "completeness_check": 1,
        "data_type_check": 5,
    }
    assert obs.payload["observed_at_source"] == "file_mtime"
    outcome, message = judge(obs)
    assert outcome is Outcome.FAIL
    assert message.startswith("7 constraint violations: store_and_fwd_flag: categorical_values_check")


def test_clarify_bias_analysis_is_judged_against_bias_bounds(shared_fixtures: Path) -> None:
    [obs] = collect(shared_fixtures / "aws-sagemaker" / "clarify-bias-analysis.json")[0]
    assert obs.kind == "monitor.bias_report"
    [group] = obs.payload["facet_groups"]
    assert group["facet"] == "F1"
    assert group["facet_value"] == "(0.5, 0.9936148802477393]"
    dpl = next(m for m in group["metrics"] if m["name"] == "DPL")
    assert dpl["value"] == pytest.approx(0.0153, abs=1e-4)
    assert judge(obs) == (Outcome.PASS, "all 1 bounded bias metrics within bounds" + BY_MTIME)
    outcome, message = judge(obs, bias_bounds={"CI": {"min": -0.05, "max": 0.05}})
    assert outcome is Outcome.FAIL
    assert "CI for F1=(0.5, 0.9936148802477393] (pre_training) = -0.08, expected between -0.05 and 0.05" in message


def test_shared_prometheus_range_responses_parse_with_string_values(shared_fixtures: Path) -> None:
    folder = shared_fixtures / "prometheus"
    series, annotations = parse_range_response(json.loads((folder / "range-two-series-fractional-ts.json").read_text()))
    assert not annotations
    assert [s.labels["code"] for s in series] == ["200", "400"]
    assert series[0].values[0] == (1641889530.123, "21")
    assert len(series[1].values) == 2  # gaps are real: no point per step
    nan_series, _ = parse_range_response(json.loads((folder / "range-nan-values.json").read_text()))
    assert nan_series[0].labels == {"handler": "/api/v1/query_range", "job": "prometheus"}  # no __name__
    start = datetime.fromtimestamp(1641889530, UTC)
    window = Window(start, datetime.fromtimestamp(1641889532, UTC), timedelta(seconds=1))
    figures = evaluate(nan_series, Bound(max=1), window)
    assert figures["nan_count"] == 3
    assert figures["steps_within_bounds"] == 0
    assert figures["worst_value"] == "NaN"


def test_openapi_golden_examples_parse_or_are_refused_clearly(shared_fixtures: Path) -> None:
    spec = yaml.safe_load((shared_fixtures / "prometheus" / "prometheus-api-openapi-3.1.yaml").read_text())
    responses = spec["paths"]["/query_range"]["get"]["responses"]
    examples = {
        name: ex["value"]
        for r in responses.values()
        for c in r["content"].values()
        for name, ex in c["examples"].items()
    }
    series, _ = parse_range_response(examples["matrixResult"])
    assert series[0].values == [(1767433020.0, "1"), (1767434820.0, "1"), (1767436620.0, "1")]
    with pytest.raises(PrometheusError, match="native histograms"):
        parse_range_response(examples["histogramResult"])
    with pytest.raises(PrometheusError, match="internal: TSDB not ready"):
        parse_range_response(examples["tsdbNotReady"], status=500)


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "explainability-analysis.json",
            "unknown report shape (top-level keys: explanations, version); expected an Evidently",
        ),
        ("array.json", "top level is a JSON list; expected an object"),
        ("violations-without-check.json", "violations[0] has no constraint_check_type"),
        ("truncated.json", "not valid JSON: Expecting value at line 1 column 17"),
    ],
)
def test_unreadable_reports_are_problems_naming_the_file(name: str, reason: str) -> None:
    observations, problems = collect(DATA / "bad" / name)
    assert observations == []
    [problem] = problems
    assert problem.source == str(DATA / "bad" / name)
    assert reason in problem.reason


def test_a_report_of_another_format_than_configured_is_refused(shared_fixtures: Path) -> None:
    path = shared_fixtures / "evidently" / "report-v0.6.7-data-drift.json"
    with pytest.raises(
        ReportError, match="this is a evidently report but the source is configured as format sagemaker"
    ):
        parse_file(path, "sagemaker")


def test_a_report_without_anything_to_judge_says_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "quality-only.json"
    path.write_text(
        json.dumps(
            {
                "version": "0.6.7",
                "timestamp": "2025-01-01 00:00:00",
                "metrics": [{"metric": "DatasetSummaryMetric", "result": {}}],
            }
        )
    )
    _, [problem] = collect(path)
    assert "has no drift results or tests to judge (expected DatasetDriftMetric" in problem.reason


def test_an_empty_glob_is_a_problem(tmp_path: Path) -> None:
    observations, [problem] = collect(tmp_path / "*.json")
    assert observations == []
    assert problem.reason == "no files match"


# ------------------------------------------------------------------------------------- own results


def test_clarify_metrics_out_of_bounds_or_not_computed_fail() -> None:
    [obs] = collect(DATA / "results" / "clarify-out-of-bounds.json")[0]
    outcome, message = judge(obs)
    assert outcome is Outcome.FAIL
    assert "2 of 2 bias metrics out of bounds" in message
    assert "DPL for gender=F (pre_training) = 0.27, expected between -0.1 and 0.1" in message
    assert "DI for gender=F (post_training) not computed" in message


def test_clarify_report_without_bounded_metrics_is_not_applicable() -> None:
    [obs] = collect(DATA / "results" / "clarify-out-of-bounds.json")[0]
    outcome, message = judge(obs, bias_bounds={"KL": {"max": 0.1}})
    assert outcome is Outcome.NOT_APPLICABLE
    assert message == "the report has none of the metrics with bias_bounds (KL)" + BY_MTIME


def test_a_sagemaker_execution_without_violations_file_has_no_violations(tmp_path: Path) -> None:
    execution = tmp_path / "fraud-endpoint" / "2024" / "03" / "01" / "11"
    baseline = tmp_path / "baseline"
    execution.mkdir(parents=True)
    baseline.mkdir()
    shutil.copy(
        DATA / "reports" / "sagemaker" / "fraud-endpoint" / "2024" / "03" / "01" / "11" / "statistics.json", execution
    )
    (baseline / "statistics.json").write_text(json.dumps({"version": 0.0, "dataset": {"item_count": 1}}))
    (baseline / "constraints.json").write_text(json.dumps({"version": 0.0, "features": []}))
    observations, problems = collect(tmp_path / "**" / "*.json")
    assert problems == []
    [obs] = observations
    assert obs.source == str(execution / "statistics.json")
    assert obs.payload["violation_count"] == 0
    assert judge(obs) == (Outcome.PASS, "no constraint violations in the latest monitoring execution" + BY_MTIME)


def test_reports_of_a_named_model_share_its_subject() -> None:
    connector = ModelMonitorConnector(
        ModelMonitorSettings.model_validate(
            {"reports": [{"path": str(DATA / "reports" / "**" / "*.json"), "model": "fraud"}]}
        )
    )
    observations = list(connector.collect(CollectContext(instance="r", run_id="r", now=now())))
    assert {str(o.subject) for o in observations} == {"model:fraud"}
    assert {o.kind for o in observations} == {"monitor.drift_report", "monitor.quality_report", "monitor.bias_report"}
