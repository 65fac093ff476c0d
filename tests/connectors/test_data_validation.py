"""The data_validation connector against results of a real Great Expectations checkpoint run in the test, and
against malformed, truncated and hand-broken result files."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collector.connector import CollectContext, load_connector
from collector.model import Observation, Outcome, Subject
from collector.sdk.testing import ConnectorConformance
from connectors.data_validation import (
    CHECKS,
    DataValidationConnector,
    DataValidationSettings,
    read_results,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _run_gx_checkpoint() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One real checkpoint over a small DataFrame: suite ``features_quality`` passes, suite ``labels_quality``
    fails. Returns each suite result's ``to_json_dict()`` and the checkpoint result as 0.x/1.x stores write it."""
    import great_expectations as gx
    import pandas as pd

    frame = pd.DataFrame({"age": [31, 45, 27, 60], "label": ["yes", "no", "maybe", "no"]})
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("warehouse").add_dataframe_asset("training_features")
    batch = asset.add_batch_definition_whole_dataframe("all rows")
    passing = context.suites.add(gx.ExpectationSuite(name="features_quality"))
    passing.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="age"))
    passing.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="age", min_value=18, max_value=99))
    failing = context.suites.add(gx.ExpectationSuite(name="labels_quality"))
    failing.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=["yes", "no"]))
    failing.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="label"))
    definitions = [
        context.validation_definitions.add(gx.ValidationDefinition(name=suite.name, data=batch, suite=suite))
        for suite in (passing, failing)
    ]
    checkpoint = context.checkpoints.add(gx.Checkpoint(name="nightly", validation_definitions=definitions))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    suite_results = [r.to_json_dict() for r in result.run_results.values()]
    checkpoint_json = {
        "success": result.success,
        "run_id": result.run_id.to_json_dict(),
        "run_results": {str(key): value.to_json_dict() for key, value in result.run_results.items()},
    }
    return suite_results, checkpoint_json


def _write(directory: Path, name: str, document: Any) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def _suite(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in results if r["suite_name"] == name)


def _validated_at(result: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(result["meta"]["validation_time"].replace("Z", "+00:00")).astimezone(UTC)


def collect(directory: Path, now: datetime, **settings: Any) -> tuple[list[Observation], CollectContext]:
    connector = DataValidationConnector(DataValidationSettings(directory=str(directory), **settings))
    ctx = CollectContext(instance="dq", run_id="r1", now=now)
    return list(connector.collect(ctx)), ctx


def judge(observation: Observation, now: datetime, **settings: Any) -> dict[str, tuple[Outcome, str]]:
    connector = DataValidationConnector(DataValidationSettings(directory="/unused", **settings))
    return {
        check.id: (result.result, result.message)
        for check in CHECKS
        for result in [check.run(observation, connector.settings, now)]
    }


def by_suite(observations: list[Observation]) -> dict[str | None, Observation]:
    return {o.payload["suite"]: o for o in observations}


# ------------------------------------------------------------------------------------- real GX results


def test_a_real_checkpoint_passing_and_failing_suite(tmp_path: Path, gx_results: Any) -> None:
    suites, _ = gx_results
    for result in suites:
        _write(tmp_path, f"validations/{result['suite_name']}.json", result)
    now = _validated_at(suites[0]) + timedelta(minutes=5)
    observations, ctx = collect(tmp_path, now)
    assert ctx.problems == []
    found = by_suite(observations)
    assert set(found) == {"features_quality", "labels_quality"}
    good, bad = found["features_quality"], found["labels_quality"]
    assert str(good.subject) == "data_asset:warehouse/training_features/features_quality"
    assert good.payload["latest"]["statistics"]["evaluated_expectations"] == 2
    assert good.payload["latest"]["gx_version"].startswith("1.")
    assert judge(good, now)["data_validation.latest_succeeded"][0] is Outcome.PASS
    assert judge(good, now)["data_validation.recent"][0] is Outcome.PASS
    assert judge(good, now)["data_validation.asset_validated"][0] is Outcome.NOT_APPLICABLE

    verdict = judge(bad, now)["data_validation.latest_succeeded"]
    assert verdict[0] is Outcome.FAIL
    assert "expect_column_values_to_be_in_set" in verdict[1]
    failing = bad.payload["latest"]["failing_expectations"]
    assert [f["type"] for f in failing] == ["expect_column_values_to_be_in_set"]
    assert failing[0]["kwargs"]["value_set"] == ["yes", "no"]
    assert "batch_id" not in failing[0]["kwargs"]
    # the data value that failed ("maybe") is in GX's result, never in the evidence
    assert "maybe" in json.dumps(_suite(suites, "labels_quality"))
    assert "maybe" not in json.dumps(bad.payload)


def test_a_real_checkpoint_result_file_is_read_whole(tmp_path: Path, gx_results: Any) -> None:
    suites, checkpoint = gx_results
    _write(tmp_path, "checkpoint.json", checkpoint)
    now = _validated_at(suites[0]) + timedelta(minutes=5)
    observations, ctx = collect(tmp_path, now)
    assert ctx.problems == []
    found = by_suite(observations)
    assert found["features_quality"].payload["latest"]["success"] is True
    assert found["labels_quality"].payload["latest"]["success"] is False
    assert "#run_results[" in found["labels_quality"].source


def test_the_same_run_stored_twice_counts_once(tmp_path: Path, gx_results: Any) -> None:
    suites, checkpoint = gx_results
    _write(tmp_path, "checkpoint.json", checkpoint)
    for result in suites:
        _write(tmp_path, f"store/{result['suite_name']}.json", result)
    now = _validated_at(suites[0]) + timedelta(minutes=5)
    observations, _ = collect(tmp_path, now)
    assert len(observations) == 2
    assert all(o.payload["validations_in_window"] == 1 for o in observations)


def test_an_old_validation_is_not_recent_and_a_missing_asset_is_missing(tmp_path: Path, gx_results: Any) -> None:
    suites, _ = gx_results
    _write(tmp_path, "features.json", _suite(suites, "features_quality"))
    now = _validated_at(suites[0]) + timedelta(days=10)
    expected = [
        {"datasource": "warehouse", "asset": "training_features", "suites": ["features_quality"], "max_age": "12d"},
        {"datasource": "warehouse", "asset": "labels"},
    ]
    observations, ctx = collect(tmp_path, now, expected_assets=expected, max_age="1d", window="7d")
    assert ctx.problems == []
    found = {str(o.subject): o for o in observations}
    features = found["data_asset:warehouse/training_features/features_quality"]
    verdicts = judge(features, now, expected_assets=expected, max_age="1d")
    assert verdicts["data_validation.recent"][0] is Outcome.PASS  # its own max_age: 12 days
    assert verdicts["data_validation.asset_validated"][0] is Outcome.FAIL  # but not in the 7-day window
    assert judge(features, now, max_age="1d")["data_validation.recent"][0] is Outcome.FAIL

    missing = found["data_asset:warehouse/labels/*"]
    assert missing.payload["latest"] is None
    assert missing.observed_at == now
    for outcome, message in judge(missing, now, expected_assets=expected).values():
        assert outcome is Outcome.FAIL
        assert "missing" in message


def test_a_validation_dated_in_the_future_never_passes(tmp_path: Path, gx_results: Any) -> None:
    suites, _ = gx_results
    result = _suite(suites, "features_quality")
    _write(tmp_path, "features.json", result)
    now = _validated_at(result) - timedelta(hours=1)
    (observation,), _ = collect(tmp_path, now)
    verdicts = judge(observation, now)
    assert verdicts["data_validation.recent"][0] is Outcome.FAIL
    assert verdicts["data_validation.latest_succeeded"][0] is Outcome.FAIL
    assert "future" in verdicts["data_validation.latest_succeeded"][1]


def test_success_with_failed_expectations_is_an_error(gx_results: Any) -> None:
    suites, _ = gx_results
    lying = copy.deepcopy(_suite(suites, "labels_quality"))
    lying["success"] = True
    (record,) = read_results(json.dumps(lying), "lying.json")
    obs = Observation(
        "data.validation",
        Subject("data_asset", "x"),
        record.validated_at,
        {
            "datasource": "warehouse",
            "asset": "a",
            "suite": "s",
            "expected": False,
            "window": "7d",
            "latest": record.as_payload(),
            "validations_in_window": 1,
            "failed_in_window": 0,
        },
    )
    assert judge(obs, record.validated_at)["data_validation.latest_succeeded"][0] is Outcome.ERROR


# ------------------------------------------------------------------------------------- bad files


def test_malformed_and_truncated_files_are_problems_naming_the_path(tmp_path: Path, gx_results: Any) -> None:
    suites, _ = gx_results
    good = _suite(suites, "features_quality")
    text = json.dumps(good)
    no_time = copy.deepcopy(good)
    no_time["meta"].pop("validation_time")
    no_time["meta"].pop("run_id", None)
    bad_time = copy.deepcopy(good)
    bad_time["meta"]["validation_time"] = "yesterday-ish"
    no_batch = copy.deepcopy(good)
    no_batch["meta"].pop("active_batch_definition")
    bad_counts = copy.deepcopy(good)
    bad_counts["statistics"]["successful_expectations"] = 7
    nan_percent = text.replace('"success_percent": 100.0', '"success_percent": NaN')
    assert nan_percent != text
    files = {
        "truncated.json": text[: len(text) // 2],
        "empty.json": "",
        "array.json": "[]",
        "other.json": json.dumps({"hello": "world"}),
        "summary.json": json.dumps({"success": True, "validation_results": []}),
        "no_time.json": json.dumps(no_time),
        "bad_time.json": json.dumps(bad_time),
        "no_batch.json": json.dumps(no_batch),
        "bad_counts.json": json.dumps(bad_counts),
        "nan.json": nan_percent,
    }
    for name, content in files.items():
        _write(tmp_path, name, content)
    (tmp_path / "latin1.json").write_bytes(b'{"caf\xe9": 1}')
    _write(tmp_path, "good.json", good)
    observations, ctx = collect(tmp_path, _validated_at(good) + timedelta(minutes=1))
    assert [str(o.subject) for o in observations] == ["data_asset:warehouse/training_features/features_quality"]
    reasons = {Path(p.source).name: p.reason for p in ctx.problems}
    assert set(reasons) == {*files, "latin1.json"}
    for name, reason in reasons.items():
        assert str(tmp_path / name) in reason, reason
    assert "not JSON" in reasons["truncated.json"]
    assert "describe()" in reasons["summary.json"]
    assert "validation_time" in reasons["no_time.json"]
    assert "yesterday-ish" in reasons["bad_time.json"]
    assert "active_batch_definition" in reasons["no_batch.json"]
    assert "add up" in reasons["bad_counts.json"]
    assert "success_percent" in reasons["nan.json"]
    assert "not UTF-8" in reasons["latin1.json"]


def test_a_gx_0x_checkpoint_result_is_read() -> None:
    """The 0.x shape: ``expectation_type``, ``meta.expectation_suite_name``, run results wrapped in
    ``validation_result``, ``run_time`` only in ``meta.run_id``."""
    result = {
        "success": False,
        "statistics": {
            "evaluated_expectations": 1,
            "successful_expectations": 0,
            "unsuccessful_expectations": 1,
            "success_percent": 0.0,
        },
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "expectation_type": "expect_table_row_count_to_be_between",
                    "kwargs": {"min_value": 10, "batch_id": "abc"},
                    "meta": {},
                },
                "result": {"observed_value": 3},
                "exception_info": {"raised_exception": False},
            }
        ],
        "meta": {
            "great_expectations_version": "0.18.19",
            "expectation_suite_name": "rows",
            "run_id": {"run_name": "nightly", "run_time": "2026-12-01T02:00:00.000000+00:00"},
            "active_batch_definition": {
                "datasource_name": "pg",
                "data_connector_name": "default",
                "data_asset_name": "public.events",
                "batch_identifiers": {},
            },
        },
    }
    document = {"run_results": {"id-1": {"validation_result": result, "actions_results": {}}}, "success": False}
    (record,) = read_results(json.dumps(document), "cp.json")
    assert (record.datasource, record.asset, record.suite) == ("pg", "public.events", "rows")
    assert record.validated_at == datetime(2026, 12, 1, 2, tzinfo=UTC)
    assert record.failing == (
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}, "raised_exception": False},
    )
    assert "observed_value" not in json.dumps(record.as_payload())


def test_the_entry_point_loads() -> None:
    assert load_connector("data_validation") is DataValidationConnector


def test_a_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    from collector.sdk import ConfigurationError

    with pytest.raises(ConfigurationError, match="does not exist"):
        collect(tmp_path / "nope", datetime.now(UTC))


class TestConformance(ConnectorConformance):
    connector_cls = DataValidationConnector
    invalid_settings: ClassVar[list[dict[str, Any]]] = [
        {},
        {"directory": " "},
        {"directory": "x", "max_age": "0s"},
        {"directory": "x", "expected_assets": [{"datasource": "a", "asset": "b"}, {"datasource": "a", "asset": "b"}]},
    ]
    now: ClassVar[datetime] = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        """Real GX results, re-dated to an hour before the kit's fixed ``now``."""
        suites, _ = _gx_cache()
        for result in suites:
            dated = copy.deepcopy(result)
            dated["meta"]["validation_time"] = "2026-01-01T11:00:00+00:00"
            _write(tmp_path, f"v/{result['suite_name']}.json", dated)
        return {"directory": str(tmp_path / "v")}


_CACHE: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []


def _gx_cache() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not _CACHE:
        _CACHE.append(_run_gx_checkpoint())
    return _CACHE[0]


@pytest.fixture(scope="module", name="gx_results")
def _gx_results_cached() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return _gx_cache()
