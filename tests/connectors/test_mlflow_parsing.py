"""Reading MLflow JSON (real mlflow-export-import exports, REST bodies) into evidence, and the checks over it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.canonical import canonical_json
from collector.model import Observation, Outcome, Subject
from connectors.mlflow import CHECKS, VERSION_KIND, MlflowSettings
from connectors.mlflow.checks import parse_approval_time
from connectors.mlflow.facts import (
    DatasetFacts,
    ExportError,
    RegisteredModelFacts,
    RunFacts,
    VersionFacts,
    registered_model_from_json,
    run_from_json,
    versions_from_json,
)
from connectors.mlflow.payloads import run_payload, truncate, version_payload
from connectors.mlflow.settings import Bounds

DATA = Path(__file__).parents[1] / "data" / "mlflow"
NOW = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
SETTINGS = MlflowSettings(tracking_uri="http://mlflow.example:5000")
P, F, NA = Outcome.PASS, Outcome.FAIL, Outcome.NOT_APPLICABLE
CARD_NOT_LISTED = {"listed": False, "found": [], "error": None}


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def observation(
    version: VersionFacts,
    run: RunFacts | None,
    card: dict[str, Any] | None = None,
    settings: MlflowSettings = SETTINGS,
    model_description: str | None = None,
) -> Observation:
    model = RegisteredModelFacts(version.name, model_description, {})
    payload = version_payload(version, model, run, card or CARD_NOT_LISTED, settings)
    canonical_json(payload)
    return Observation(VERSION_KIND, Subject("model_version", f"{version.name}/{version.version}"), NOW, payload)


def outcomes(obs: Observation, settings: MlflowSettings = SETTINGS) -> dict[str, Outcome]:
    return {check.id: check.run(obs, settings, NOW).result for check in CHECKS}


def results(obs: Observation, settings: MlflowSettings = SETTINGS) -> dict[str, Any]:
    return {check.id: check.run(obs, settings, NOW) for check in CHECKS}


# ------------------------------------------------------------------------------------------- real exports


def test_exported_oss_run_keeps_both_users_and_its_git_commit(shared_fixtures: Path) -> None:
    run = run_from_json(load(shared_fixtures / "mlflow" / "run-oss-git-commit-tags.json"))
    assert run.run_id == "4b0ce88fd34e45fc8ca08876127299ce"
    assert (run.experiment_id, run.status, run.lifecycle_stage) == ("1", "FINISHED", "active")
    assert (run.start_time_ms, run.end_time_ms) == (1684698373736, 1684698373846)
    payload = run_payload(run, SETTINGS, None)
    assert payload["user"] == {"user_id": "unknown", "mlflow_user": "andre"}
    assert payload["code_version"] == {
        "commit": "1f76cec7520dbc05dc93f8d3faea757fa3a4f703",
        "recorded_in": "mlflow.source.git.commit",
        "repo_url": None,
        "branch": None,
        "dirty": None,
    }
    assert payload["source"] == {
        "name": "/Users/andre/git/andre/mlflow-examples/python/sklearn/wine_quality/train.py",
        "type": "LOCAL",
    }
    assert payload["params"] == {"max_depth": "4", "max_leaf_nodes": "32"}
    assert payload["metrics"] == {"mae": 0.5877424565761121, "r2": 0.28100217442439346, "rmse": 0.7367947360663162}
    assert payload["datasets"] == []
    assert payload["started_at"] == "2023-05-21T19:46:13.736000+00:00"
    assert "mlflow.log-model.history" not in payload["tags"], "system tags are not copied as user tags"
    assert payload["tags"]["registered_model_version_stage"] == "Production"
    # the exporter's copy of the model history is a long user tag: cut, marked, and listed
    history = payload["tags"]["mlflow_exim.mlflow_tag.log-model.history"]
    assert history.endswith("…[truncated: 1062 chars]")
    assert payload["truncated"] == ["tags.mlflow_exim.mlflow_tag.log-model.history"]
    canonical_json(payload)


def test_exported_registered_model_reads_stages_and_aliases_from_the_repr_tag(shared_fixtures: Path) -> None:
    document = load(shared_fixtures / "mlflow" / "registered-model-stages-and-aliases.json")
    model = registered_model_from_json(document)
    assert model.name == "sklearn_wine"
    assert model.description == "Skearn Wine Quality model"
    assert model.aliases == {"about-ready": "2", "good-to-go": "1", "just-in-case": "3"}
    versions = versions_from_json(document)
    assert [(v.version, v.current_stage, v.aliases, v.user_id, v.status) for v in versions] == [
        ("1", "Production", ("good-to-go",), None, "READY"),
        ("2", "Staging", ("about-ready",), None, "READY"),
        ("3", "None", ("just-in-case",), None, "READY"),
    ]
    assert versions[0].run_id == "79426d89d3a34eb89d64343e322c449d"
    assert versions[0].creation_ms == 1684717756975


def test_exported_production_version_without_its_run_fails_lineage_approval_and_metrics(
    shared_fixtures: Path,
) -> None:
    document = load(shared_fixtures / "mlflow" / "registered-model-stages-and-aliases.json")
    production, staging, _ = versions_from_json(document)
    obs = observation(production, None)
    assert obs.payload["source_run"] == {"run_id": "79426d89d3a34eb89d64343e322c449d", "state": "missing"}
    assert outcomes(obs) == {
        "mlflow.lineage_complete": F,
        "mlflow.approval_recorded": F,
        "mlflow.documented": P,  # "v1 Production - wine"
        "mlflow.evaluated": F,
        "mlflow.fairness_within_bounds": F,
    }
    checked = results(obs)
    assert "which the server does not have" in checked["mlflow.lineage_complete"].message
    assert checked["mlflow.documented"].details["descriptions"] == ["version description"]
    assert checked["mlflow.evaluated"].message.endswith("its source run is missing")
    assert set(outcomes(observation(staging, None)).values()) == {NA}


def test_experiment_export_is_not_a_run(shared_fixtures: Path) -> None:
    with pytest.raises(ExportError, match=r"needs info\.run_id"):
        run_from_json(load(shared_fixtures / "mlflow" / "experiment-oss.json"))


# ------------------------------------------------------------------------------------------- REST bodies


@pytest.fixture
def churn_run() -> RunFacts:
    return run_from_json(load(DATA / "runs-search-databricks.json")["runs"][0])


@pytest.fixture
def churn_versions() -> list[VersionFacts]:
    return versions_from_json(load(DATA / "model-versions-search.json"))


def test_rest_run_reads_databricks_commit_datasets_and_the_latest_metric_step(churn_run: RunFacts) -> None:
    payload = run_payload(churn_run, SETTINGS, None)
    assert payload["user"] == {"user_id": "svc-training@example.com", "mlflow_user": "priya.nair@example.com"}
    assert payload["code_version"]["commit"] == "4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d"
    assert payload["code_version"]["recorded_in"] == "mlflow.databricks.gitRepoCommit"
    assert payload["code_version"]["repo_url"] == "https://github.com/example/churn"
    assert payload["datasets"] == [
        {
            "name": "main.churn.features_v7",
            "digest": "7d1c9a20",
            "source_type": "uc_table",
            "source": '{"table_name": "main.churn.features_v7"}',
            "context": "training",
        },
        {
            "name": "main.churn.holdout_v7",
            "digest": "e02b44f1",
            "source_type": "uc_table",
            "source": None,
            "context": "validation",
        },
    ]
    assert payload["metrics"] == {"equalized_odds_difference": "NaN", "roc_auc": 0.86}
    assert payload["tags"] == {"owner": "growth-analytics"}


def test_params_and_metrics_are_selected_by_globs(churn_run: RunFacts) -> None:
    settings = MlflowSettings(tracking_uri="http://x", params=["learning_*"], metrics=["roc_*"])
    payload = run_payload(churn_run, settings, ["model_card.md"])
    assert payload["params"] == {"learning_rate": "0.05"}
    assert payload["metrics"] == {"roc_auc": 0.86}
    assert payload["documentation"] == ["model_card.md"]


def test_rest_champion_version_with_its_run(churn_run: RunFacts, churn_versions: list[VersionFacts]) -> None:
    champion, archived = churn_versions
    obs = observation(champion, churn_run, {"listed": True, "found": [], "error": None})
    assert obs.payload["aliases"] == ["champion"]
    assert obs.payload["model_id"] == "m-5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
    checked = results(obs)
    assert {k: r.result for k, r in checked.items()} == {
        "mlflow.lineage_complete": P,
        "mlflow.approval_recorded": P,
        "mlflow.documented": F,
        "mlflow.evaluated": P,
        "mlflow.fairness_within_bounds": F,
    }
    assert checked["mlflow.approval_recorded"].details["approved_at"] == "2026-01-01T11:00:00+00:00"
    assert checked["mlflow.approval_recorded"].details["approval_before_deployment"] is True
    assert checked["mlflow.fairness_within_bounds"].details["reason"] == "out_of_bounds"
    assert (
        "equalized_odds_difference=NaN (not a finite number; must be <= 0.1)"
        in checked["mlflow.fairness_within_bounds"].message
    )
    described = observation(champion, churn_run, model_description="Churn model, see wiki")
    assert results(described)["mlflow.documented"].details["descriptions"] == ["registered model description"]
    assert set(outcomes(observation(archived, None)).values()) == {NA}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "must be a JSON object"),
        ({"info": {}}, r"needs info\.run_id"),
        ({"info": {"run_id": "r"}, "data": {"params": [{"value": "x"}]}}, r"params\[0\] is not a key/value pair"),
        ({"info": {"run_id": "r"}, "data": {"metrics": "x"}}, "metrics is neither"),
        ({"info": {"run_id": "r"}, "inputs": {"dataset_inputs": [{}]}}, "has no dataset object"),
    ],
)
def test_malformed_runs_say_what_is_wrong(document: Any, reason: str) -> None:
    with pytest.raises(ExportError, match=reason):
        run_from_json(document)


def test_malformed_versions_say_what_is_wrong() -> None:
    with pytest.raises(ExportError, match="no list of model versions"):
        versions_from_json({"model_versions": {}})
    with pytest.raises(ExportError, match=r"versions\[0\] needs a name and a version"):
        versions_from_json({"model_versions": [{"name": "m"}]})


# ------------------------------------------------------------------------------------------- checks in detail


def run_facts(**given: Any) -> RunFacts:
    base: dict[str, Any] = {
        "run_id": "r1",
        "experiment_id": "1",
        "run_name": "r",
        "user_id": "u",
        "status": "FINISHED",
        "lifecycle_stage": "active",
        "start_time_ms": 1,
        "end_time_ms": 2,
        "artifact_uri": None,
    }
    return RunFacts(**{**base, **given})


def version_facts(**given: Any) -> VersionFacts:
    base: dict[str, Any] = {
        "name": "m",
        "version": "1",
        "status": "READY",
        "current_stage": None,
        "description": None,
        "user_id": "registrar",
        "creation_ms": 1,
        "last_updated_ms": 1,
        "source": None,
        "run_id": "r1",
        "model_id": None,
        "aliases": ("production",),
        "tags": {"approved_by": "a", "approved_at": "2026-01-01T00:00:00Z"},
    }
    return VersionFacts(**{**base, **given})


def judged(check_id: str, version: VersionFacts, run: RunFacts | None, settings: MlflowSettings = SETTINGS) -> Any:
    return results(observation(version, run, settings=settings), settings)[check_id]


def test_lineage_counts_training_or_unlabelled_datasets_with_a_digest() -> None:
    commit = {"mlflow.source.git.commit": "abc"}
    eval_only = run_facts(tags=commit, datasets=(DatasetFacts("h", "d1", None, None, "eval"),))
    no_digest = run_facts(tags=commit, datasets=(DatasetFacts("t", None, None, None, "training"),))
    unlabelled = run_facts(tags=commit, datasets=(DatasetFacts("t", "d2", None, None, None),))
    assert judged("mlflow.lineage_complete", version_facts(), eval_only).result is F
    assert judged("mlflow.lineage_complete", version_facts(), no_digest).result is F
    assert judged("mlflow.lineage_complete", version_facts(), unlabelled).result is P
    assert judged("mlflow.lineage_complete", version_facts(run_id=None), None).message == "m v1 records no source run"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00:00Z", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T12:00:00+02:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01 10:00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("1767261600000", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("1767261600", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("last tuesday", None),
        ("", None),
        (None, None),
    ],
)
def test_approval_times_are_read_in_the_usual_forms(text: str | None, expected: datetime | None) -> None:
    assert parse_approval_time(text) == expected


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"approved_at": "2026-01-01T00:00:00Z"}, "no approver (tags approved_by, approved_at)"),
        ({"approved_by": "a", "approved_at": "soon"}, "approval time 'soon' is not a time"),
        ({"approved_by": "a", "approved_at": "2026-03-01T00:00:00Z"}, ", in the future ("),
        (
            {"approved_by": "a", "approved_at": "2026-01-01T00:00:00Z", "deployed_at": "yesterday"},
            "tag deployed_at='yesterday' is not a time",
        ),
    ],
)
def test_approval_failures_name_the_problem(tags: dict[str, str], message: str) -> None:
    result = judged("mlflow.approval_recorded", version_facts(tags=tags), run_facts())
    assert result.result is F
    assert message in result.message


def test_approval_tags_are_configurable_and_order_is_unchecked_without_a_deployment_time() -> None:
    settings = MlflowSettings(tracking_uri="http://x", approval_tags={"by": "signoff", "at": "signoff_time"})
    version = version_facts(tags={"signoff": "registrar", "signoff_time": "1767225600000"})
    result = judged("mlflow.approval_recorded", version, run_facts(), settings)
    assert result.result is P
    assert "deployment time not recorded" in result.message
    assert result.details["approval_before_deployment"] is None
    assert result.details["approver_is_registrar"] is True


def test_fairness_bounds_are_inclusive_and_configurable() -> None:
    run = run_facts(metrics={"disparate_impact": 0.8, "demographic_parity_difference": 0.1})
    assert judged("mlflow.fairness_within_bounds", version_facts(), run).result is P
    strict = MlflowSettings(tracking_uri="http://x", fairness_bounds={"disparate_impact": {"min": 0.9}})
    result = judged("mlflow.fairness_within_bounds", version_facts(), run, strict)
    assert result.result is F
    assert result.message.endswith("disparate_impact=0.8 (must be >= 0.9)")
    assert Bounds(min=0.8, max=1.25).describe() == "in [0.8, 1.25]"


def test_a_non_finite_evaluation_metric_does_not_count() -> None:
    result = judged("mlflow.evaluated", version_facts(), run_facts(metrics={"accuracy": float("nan")}))
    assert result.result is F
    assert judged("mlflow.evaluated", version_facts(), run_facts(metrics={"rmse": 0.3})).result is P


def test_checks_on_a_broken_payload_are_errors_not_passes() -> None:
    broken = Observation(VERSION_KIND, Subject("model_version", "m/1"), NOW, {"aliases": ["production"]})
    assert {check.run(broken, SETTINGS, NOW).result for check in CHECKS} == {Outcome.ERROR}


def test_truncation_is_marked_and_short_values_are_untouched() -> None:
    assert truncate("abc", 3) == ("abc", False)
    assert truncate("abcd", 3) == ("abc…[truncated: 4 chars]", True)


def test_deployed_aliases_match_case_insensitively() -> None:
    version = version_facts(aliases=("Production",))
    assert judged("mlflow.documented", version, run_facts()).result is F
    not_deployed = version_facts(aliases=("shadow",), current_stage="Staging")
    result = judged("mlflow.documented", not_deployed, run_facts())
    assert result.result is NA
    assert result.message == "m version 1 is not deployed (aliases: shadow; stage: Staging)"


def test_settings_default_to_the_documented_values() -> None:
    settings = MlflowSettings(tracking_uri="https://mlflow.example/")
    assert settings.tracking_uri == "https://mlflow.example"
    assert settings.deployed_aliases == ["production", "champion"]
    assert (settings.approval_tags.by, settings.approval_tags.at) == ("approved_by", "approved_at")
    assert settings.model_card_paths == ["model_card.md", "README.md"]
    assert settings.evaluation_metrics == ["accuracy", "roc_auc", "f1", "rmse"]
    assert settings.fairness_bounds == {
        "demographic_parity_difference": Bounds(max=0.1),
        "equalized_odds_difference": Bounds(max=0.1),
        "disparate_impact": Bounds(min=0.8, max=1.25),
    }
    assert settings.backfill == timedelta(days=90)
    assert settings.experiments == []


# ------------------------------------------------------------------------------------------- never a pass

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_a_nan_evaluation_metric_fails_even_beside_a_finite_one() -> None:
    document = load(FIXTURES / "mlflow" / "run-oss-git-commit-tags.json")
    settings = MlflowSettings(tracking_uri="http://x", evaluation_metrics=["rmse", "mae"])
    assert judged("mlflow.evaluated", version_facts(), run_from_json(document), settings).result is P
    document["mlflow"]["metrics"]["rmse"][0]["value"] = float("nan")
    result = judged("mlflow.evaluated", version_facts(), run_from_json(document), settings)
    assert result.result is F
    assert result.message == "m v1: evaluation metrics that are not finite numbers: rmse=NaN"


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_fairness_metric_is_never_within_bounds(value: float) -> None:
    run = run_facts(metrics={"disparate_impact": value, "demographic_parity_difference": 0.05})
    result = judged("mlflow.fairness_within_bounds", version_facts(), run)
    assert result.result is F
    assert "(not a finite number; must be in [0.8, 1.25])" in result.message
    assert not Bounds(max=0.1).holds(float("-inf"))


def test_infinite_bound_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="bound limits must be finite numbers"):
        Bounds(min=float("-inf"), max=0.1)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (
            {"approved_by": "a", "approved_at": "2026-01-02T09:30:00Z"},
            "approval time 2026-01-02T09:30:00+00:00, in the future "
            "(collected at 2026-01-02T09:00:00+00:00, clock_skew_tolerance 5m)",
        ),
        (
            {"approved_by": "a", "approved_at": "2026-01-01T00:00:00Z", "deployed_at": "2099-01-01T00:00:00Z"},
            "deployment time (tag deployed_at) 2099-01-01T00:00:00+00:00, in the future",
        ),
        ({"approved_by": "a", "approved_at": "99999999999999999999"}, "approval time '99999999999999999999' is not"),
    ],
)
def test_approval_and_deployment_times_in_the_future_fail(tags: dict[str, str], message: str) -> None:
    result = judged("mlflow.approval_recorded", version_facts(tags=tags), run_facts())
    assert result.result is F
    assert message in result.message


def test_a_clock_a_little_ahead_is_within_the_skew_tolerance() -> None:
    tags = {"approved_by": "a", "approved_at": "2026-01-02T09:04:00Z"}
    assert judged("mlflow.approval_recorded", version_facts(tags=tags), run_facts()).result is P
    strict = MlflowSettings(tracking_uri="http://x", clock_skew_tolerance="1m")
    assert judged("mlflow.approval_recorded", version_facts(tags=tags), run_facts(), strict).result is F


def test_a_payload_holding_a_non_finite_float_is_not_evidence_for_any_check() -> None:
    """Stored metrics read "NaN"; a float NaN can only be a payload nobody stored (what a property test feeds)."""
    obs = observation(version_facts(), run_facts(metrics={"accuracy": 0.9}))
    assert outcomes(obs)["mlflow.evaluated"] is P
    payload = {**obs.payload, "source_run": {**obs.payload["source_run"], "metrics": {"accuracy": float("inf")}}}
    tampered = Observation(obs.kind, obs.subject, obs.observed_at, payload)
    assert set(outcomes(tampered).values()) == {Outcome.ERROR}
    assert results(tampered)["mlflow.lineage_complete"].message == (
        "not evidence: non-finite numbers at source_run.metrics.accuracy (stored metrics read 'NaN')"
    )


@pytest.mark.parametrize(
    ("status", "outcome", "says"),
    [
        ("FAILED", F, "ended FAILED"),
        ("KILLED", F, "ended KILLED"),
        ("RUNNING", Outcome.ERROR, "has not finished (status RUNNING)"),
        (None, Outcome.ERROR, "has not finished (status not recorded)"),
    ],
)
def test_what_an_unfinished_source_run_logged_is_never_a_pass(status: str | None, outcome: Outcome, says: str) -> None:
    finished = outcomes(observation(version_facts(), run_facts(metrics={"accuracy": 0.9})))
    assert finished["mlflow.evaluated"] is P
    judged_now = results(observation(version_facts(), run_facts(metrics={"accuracy": 0.9}, status=status)))
    for check_id in ("mlflow.lineage_complete", "mlflow.evaluated", "mlflow.fairness_within_bounds"):
        assert judged_now[check_id].result is outcome
        assert says in judged_now[check_id].message
    for check_id in ("mlflow.approval_recorded", "mlflow.documented"):
        assert judged_now[check_id].result is finished[check_id]
