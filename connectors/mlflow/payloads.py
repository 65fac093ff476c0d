"""How MLflow facts become stored evidence: deterministic JSON, selected and truncated as the settings say."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from collector.sdk import redact_text

from .facts import DatasetFacts, LoggedModelFacts, RegisteredModelFacts, RunFacts, VersionFacts
from .settings import MlflowSettings

__all__ = [
    "CODE_VERSION_TAGS",
    "SourceRun",
    "iso_from_millis",
    "logged_model_payload",
    "run_payload",
    "truncate",
    "version_payload",
]

CODE_VERSION_TAGS = ("mlflow.source.git.commit", "mlflow.databricks.gitRepoCommit")
"""Where a run records the commit it was trained from, in order of preference."""
_REPO_TAGS = ("mlflow.source.git.repoURL", "mlflow.databricks.gitRepoUrl")


def iso_from_millis(value: int | None) -> str | None:
    if value is None or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).isoformat()


def truncate(value: str, limit: int) -> tuple[str, bool]:
    """Cut ``value`` to ``limit`` characters with a marker that says how long it was; never silently."""
    if len(value) <= limit:
        return value, False
    return f"{value[:limit]}…[truncated: {len(value)} chars]", True


def _truncated_map(values: Mapping[str, str], limit: int, prefix: str, cut: list[str]) -> dict[str, str]:
    out = {}
    for key in sorted(values):
        out[key], was_cut = truncate(redact_text(values[key]), limit)
        if was_cut:
            cut.append(f"{prefix}.{key}")
    return out


def _selected(keys: Iterable[str], globs: list[str] | None, always: Iterable[str] = ()) -> list[str]:
    wanted = set(always)
    return sorted(k for k in keys if globs is None or k in wanted or any(fnmatchcase(k, g) for g in globs))


def _number(value: float) -> float | str:
    """Metrics can be NaN or infinite, which canonical JSON refuses: those are stored as their names."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _code_version(tags: Mapping[str, str]) -> dict[str, Any] | None:
    for key in CODE_VERSION_TAGS:
        if tags.get(key, "").strip():
            return {
                "commit": tags[key].strip(),
                "recorded_in": key,
                "repo_url": redact_text(next((tags[t] for t in _REPO_TAGS if tags.get(t)), None)),
                "branch": tags.get("mlflow.source.git.branch"),
                "dirty": tags.get("mlflow.source.git.dirty"),
            }
    return None


def _datasets(datasets: Iterable[DatasetFacts], limit: int) -> list[dict[str, Any]]:
    rows = [
        {
            "name": d.name,
            "digest": d.digest,
            "source_type": d.source_type,
            "source": truncate(redact_text(d.source), limit)[0] if d.source else None,
            "context": d.context,
        }
        for d in datasets
    ]
    return sorted(rows, key=lambda r: (r["context"] or "", r["name"], r["digest"] or ""))


def _users(run: RunFacts) -> dict[str, str | None]:
    """Both: ``user_id`` and the ``mlflow.user`` tag can disagree, and an auditor wants to see that."""
    return {"user_id": run.user_id, "mlflow_user": run.tags.get("mlflow.user") or None}


def run_payload(run: RunFacts, settings: MlflowSettings, documentation: list[str] | None) -> dict[str, Any]:
    """One training run: who, when, from which code and data, with which params and final metrics."""
    limit = settings.max_value_chars
    cut: list[str] = []
    params = {k: run.params[k] for k in _selected(run.params, settings.params)}
    user_tags = {k: v for k, v in run.tags.items() if not k.startswith("mlflow.")}
    return {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "run_name": run.run_name,
        "status": run.status,
        "lifecycle_stage": run.lifecycle_stage,
        "started_at": iso_from_millis(run.start_time_ms),
        "ended_at": iso_from_millis(run.end_time_ms),
        "user": _users(run),
        "code_version": _code_version(run.tags),
        "source": {"name": redact_text(run.tags.get("mlflow.source.name")), "type": run.tags.get("mlflow.source.type")},
        "parent_run_id": run.tags.get("mlflow.parentRunId"),
        "datasets": _datasets(run.datasets, limit),
        "params": _truncated_map(params, limit, "params", cut),
        "metrics": {k: _number(run.metrics[k]) for k in _selected(run.metrics, settings.metrics)},
        "tags": _truncated_map(user_tags, limit, "tags", cut),
        "model_outputs": list(run.model_outputs),
        "documentation": sorted(documentation) if documentation is not None else None,
        "truncated": cut,
    }


class SourceRun:
    """States of a model version's source run, as recorded in ``source_run.state``."""

    FOUND = "found"
    DELETED = "deleted"
    MISSING = "missing"
    NOT_RECORDED = "not_recorded"


def _source_run(run_id: str | None, run: RunFacts | None, settings: MlflowSettings) -> dict[str, Any]:
    if run_id is None:
        return {"run_id": None, "state": SourceRun.NOT_RECORDED}
    if run is None:
        return {"run_id": run_id, "state": SourceRun.MISSING}
    judged = [*settings.evaluation_metrics, *settings.fairness_bounds]
    return {
        "run_id": run_id,
        "state": SourceRun.DELETED if run.lifecycle_stage == "deleted" else SourceRun.FOUND,
        "experiment_id": run.experiment_id,
        "status": run.status,
        "started_at": iso_from_millis(run.start_time_ms),
        "ended_at": iso_from_millis(run.end_time_ms),
        "user": _users(run),
        "code_version": _code_version(run.tags),
        "datasets": _datasets(run.datasets, settings.max_value_chars),
        "metrics": {k: _number(run.metrics[k]) for k in _selected(run.metrics, settings.metrics, judged)},
    }


def version_payload(
    version: VersionFacts,
    model: RegisteredModelFacts | None,
    run: RunFacts | None,
    model_card: Mapping[str, Any],
    settings: MlflowSettings,
) -> dict[str, Any]:
    """One registered model version with everything its checks judge: aliases and stage, approval tags,
    documentation, and a lineage summary of its source run."""
    limit = settings.max_value_chars
    cut: list[str] = []
    description = truncate(version.description, limit)[0] if version.description else None
    model_description = truncate(model.description, limit)[0] if model and model.description else None
    return {
        "name": version.name,
        "version": version.version,
        "status": version.status,
        "stage": version.current_stage,
        "aliases": list(version.aliases),
        "registered_by": version.user_id,
        "created_at": iso_from_millis(version.creation_ms),
        "last_updated_at": iso_from_millis(version.last_updated_ms),
        "source": redact_text(version.source),
        "run_id": version.run_id,
        "model_id": version.model_id,
        "description": description,
        "registered_model_description": model_description,
        "tags": _truncated_map(version.tags, limit, "tags", cut),
        "source_run": _source_run(version.run_id, run, settings),
        "model_card": dict(model_card),
        "truncated": cut,
    }


def logged_model_payload(model: LoggedModelFacts, settings: MlflowSettings) -> dict[str, Any]:
    cut: list[str] = []
    return {
        "model_id": model.model_id,
        "name": model.name,
        "experiment_id": model.experiment_id,
        "source_run_id": model.source_run_id,
        "status": model.status,
        "model_type": model.model_type,
        "created_at": iso_from_millis(model.creation_ms),
        "last_updated_at": iso_from_millis(model.last_updated_ms),
        "params": _truncated_map(model.params, settings.max_value_chars, "params", cut),
        "tags": _truncated_map(model.tags, settings.max_value_chars, "tags", cut),
        "truncated": cut,
    }
