"""What MLflow says about a run, a model version and a logged model, read from client entities or from JSON.

The JSON readers accept the REST shape (``info``/``data`` with key-value lists) and the mlflow-export-import
shape (``{"system": ..., "mlflow": {...}}`` with params, metrics and tags flattened to objects), so stored
exports and live servers go through the same evidence code.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

__all__ = [
    "CONTEXT_TAG",
    "DatasetFacts",
    "ExportError",
    "LoggedModelFacts",
    "RegisteredModelFacts",
    "RunFacts",
    "VersionFacts",
    "logged_model_from_entity",
    "registered_model_from_entity",
    "registered_model_from_json",
    "run_from_entity",
    "run_from_json",
    "version_from_entity",
    "versions_from_json",
]

CONTEXT_TAG = "mlflow.data.context"


class ExportError(ValueError):
    """A JSON document is not an MLflow run or model in a shape this connector reads."""


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    name: str
    digest: str | None
    source_type: str | None
    source: str | None
    context: str | None
    """``mlflow.data.context`` of the input: ``training``, ``validation``, ``eval``… or ``None``."""


@dataclass(frozen=True, slots=True)
class RunFacts:
    run_id: str
    experiment_id: str
    run_name: str | None
    user_id: str | None
    status: str | None
    lifecycle_stage: str | None
    start_time_ms: int | None
    end_time_ms: int | None
    artifact_uri: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    """The latest value of each metric (at the largest step), as the search APIs return it."""
    tags: dict[str, str] = field(default_factory=dict)
    datasets: tuple[DatasetFacts, ...] = ()
    model_outputs: tuple[str, ...] = ()

    @property
    def touched_ms(self) -> int:
        """The latest time the run is known to have changed: its end, else its start."""
        return max(t for t in (self.start_time_ms, self.end_time_ms, 0) if t is not None)


@dataclass(frozen=True, slots=True)
class RegisteredModelFacts:
    name: str
    description: str | None
    aliases: dict[str, str]
    """alias -> version"""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionFacts:
    name: str
    version: str
    status: str | None
    current_stage: str | None
    description: str | None
    user_id: str | None
    creation_ms: int | None
    last_updated_ms: int | None
    source: str | None
    run_id: str | None
    model_id: str | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoggedModelFacts:
    model_id: str
    name: str | None
    experiment_id: str | None
    source_run_id: str | None
    status: str | None
    model_type: str | None
    creation_ms: int | None
    last_updated_ms: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- small readers

Getter = Callable[[str], Any]
"""Reads one named field: ``partial(getattr, entity)`` for a client entity, ``mapping.get`` for JSON."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _millis(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _pairs(value: Any, where: str) -> dict[str, str]:
    """``[{"key", "value"}]`` (REST) or ``{key: value}`` (export) as a dict of strings."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or "key" not in item:
                raise ExportError(f"{where}[{i}] is not a key/value pair")
            out[str(item["key"])] = "" if item.get("value") is None else str(item["value"])
        return out
    raise ExportError(f"{where} is neither a list of key/value pairs nor an object")


def _latest_metric(entries: Any, where: str) -> float:
    """The value at the largest (step, timestamp): what ``Run.data.metrics`` holds."""
    if isinstance(entries, int | float) and not isinstance(entries, bool):
        return float(entries)
    if not isinstance(entries, list) or not entries:
        raise ExportError(f"{where} has no values")
    best = max(entries, key=lambda e: (_millis(e.get("step")) or 0, _millis(e.get("timestamp")) or 0))
    return float(best["value"])


def _metrics(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): _latest_metric(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        grouped: dict[str, list[Any]] = {}
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or "key" not in item or "value" not in item:
                raise ExportError(f"{where}[{i}] is not a metric with a key and a value")
            grouped.setdefault(str(item["key"]), []).append(item)
        return {k: _latest_metric(v, f"{where}.{k}") for k, v in grouped.items()}
    raise ExportError(f"{where} is neither a list of metrics nor an object")


def _object_or(value: Any, fallback: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else fallback


def _unwrap(document: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise ExportError(f"an MLflow {what} must be a JSON object")
    inner = document.get("mlflow")
    return inner if isinstance(inner, Mapping) else document


# ------------------------------------------------------------------------------------------- runs


def _dataset(get: Getter, tags: Mapping[str, str]) -> DatasetFacts:
    return DatasetFacts(
        name=str(get("name") or ""),
        digest=_text(get("digest")),
        source_type=_text(get("source_type")),
        source=_text(get("source")),
        context=_text(tags.get(CONTEXT_TAG)),
    )


def _run(info: Getter, run_id: str, experiment_id: str) -> RunFacts:
    """The fields a client ``RunInfo`` and a JSON ``info`` object name alike; params, metrics, tags,
    datasets and outputs are left empty for the caller to fill in."""
    return RunFacts(
        run_id=run_id,
        experiment_id=experiment_id,
        run_name=_text(info("run_name")),
        user_id=_text(info("user_id")),
        status=_text(info("status")),
        lifecycle_stage=_text(info("lifecycle_stage")),
        start_time_ms=_millis(info("start_time")),
        end_time_ms=_millis(info("end_time")),
        artifact_uri=_text(info("artifact_uri")),
    )


def run_from_entity(run: Any) -> RunFacts:
    """From an ``mlflow.entities.Run`` as the client returns it."""
    info, data = run.info, run.data
    inputs = run.inputs.dataset_inputs if run.inputs is not None else []
    outputs = run.outputs.model_outputs if run.outputs is not None else []
    return replace(
        _run(partial(getattr, info), info.run_id, str(info.experiment_id)),
        params=dict(data.params),
        metrics={k: float(v) for k, v in data.metrics.items()},
        tags=dict(data.tags),
        datasets=tuple(_dataset(partial(getattr, i.dataset), {t.key: t.value for t in i.tags}) for i in inputs),
        model_outputs=tuple(sorted(o.model_id for o in outputs)),
    )


def _dataset_from_json(raw: Any, where: str) -> DatasetFacts:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("dataset"), Mapping):
        raise ExportError(f"{where} has no dataset object")
    return _dataset(raw["dataset"].get, _pairs(raw.get("tags"), f"{where}.tags"))


def run_from_json(document: Any) -> RunFacts:
    """From a REST ``runs/get`` body, one element of ``runs/search``, or an mlflow-export-import run."""
    body = _unwrap(document, "run")
    body = body["run"] if isinstance(body.get("run"), Mapping) else body
    info = body.get("info")
    if not isinstance(info, Mapping) or not (_text(info.get("run_id")) or _text(info.get("run_uuid"))):
        raise ExportError("an MLflow run needs info.run_id")
    data = _object_or(body.get("data"), body)
    inputs = _object_or(body.get("inputs"), {})
    outputs = _object_or(body.get("outputs"), {})
    return replace(
        _run(info.get, str(info.get("run_id") or info.get("run_uuid")), str(info.get("experiment_id") or "")),
        params=_pairs(data.get("params"), "params"),
        metrics=_metrics(data.get("metrics"), "metrics"),
        tags=_pairs(data.get("tags"), "tags"),
        datasets=tuple(
            _dataset_from_json(raw, f"inputs.dataset_inputs[{i}]")
            for i, raw in enumerate(inputs.get("dataset_inputs") or [])
        ),
        model_outputs=tuple(sorted(str(o.get("model_id")) for o in outputs.get("model_outputs") or [])),
    )


# ------------------------------------------------------------------------------------------- registry


def registered_model_from_entity(model: Any) -> RegisteredModelFacts:
    return RegisteredModelFacts(
        name=model.name,
        description=_text(model.description),
        aliases={str(alias): str(version) for alias, version in (model.aliases or {}).items()},
        tags=dict(model.tags or {}),
    )


def _version(get: Getter, name: str, number: str, aliases: Iterable[str], tags: dict[str, str]) -> VersionFacts:
    """The fields a client ``ModelVersion`` and a JSON model version name alike."""
    return VersionFacts(
        name=name,
        version=number,
        status=_text(get("status")),
        current_stage=_text(get("current_stage")),
        description=_text(get("description")),
        user_id=_text(get("user_id")),
        creation_ms=_millis(get("creation_timestamp")),
        last_updated_ms=_millis(get("last_updated_timestamp")),
        source=_text(get("source")),
        run_id=_text(get("run_id")),
        model_id=_text(get("model_id")),
        aliases=tuple(sorted({*(str(a) for a in get("aliases") or []), *aliases})),
        tags=tags,
    )


def version_from_entity(version: Any, aliases: Iterable[str] = ()) -> VersionFacts:
    """From an ``mlflow.entities.model_registry.ModelVersion``; ``aliases`` from its registered model,
    because ``search_model_versions`` leaves a version's own alias list empty."""
    return _version(partial(getattr, version), version.name, str(version.version), aliases, dict(version.tags or {}))


def _exported_aliases(model: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, str]:
    """REST ``aliases: [{alias, version}]``; old exports keep them only as a Python-repr string tag."""
    raw: Any = model.get("aliases")
    if raw is None and "mlflow_exim.field.aliases" in tags:
        try:
            raw = ast.literal_eval(tags["mlflow_exim.field.aliases"])
        except (ValueError, SyntaxError) as exc:
            raise ExportError(f"tag mlflow_exim.field.aliases is not a list of aliases: {exc}") from None
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(a["alias"]): str(a["version"]) for a in raw or [] if isinstance(a, Mapping) and "alias" in a}


def registered_model_from_json(document: Any) -> RegisteredModelFacts:
    """From a REST ``registered-models/get`` body or an mlflow-export-import model export."""
    body = _unwrap(document, "registered model")
    model = body.get("registered_model", body)
    if not isinstance(model, Mapping) or not _text(model.get("name")):
        raise ExportError("an MLflow registered model needs a name")
    tags = _pairs(model.get("tags"), "registered_model.tags")
    return RegisteredModelFacts(
        name=str(model["name"]),
        description=_text(model.get("description")),
        aliases=_exported_aliases(model, tags),
        tags=tags,
    )


def versions_from_json(document: Any) -> list[VersionFacts]:
    """The versions of an exported registered model (or of a REST ``model-versions/search`` body)."""
    body = _unwrap(document, "registered model")
    model = body.get("registered_model", body)
    raw_versions = model.get("versions", model.get("model_versions")) if isinstance(model, Mapping) else None
    if not isinstance(raw_versions, list):
        raise ExportError("no list of model versions (registered_model.versions or model_versions)")
    by_version: dict[str, list[str]] = {}
    if isinstance(model, Mapping) and _text(model.get("name")):
        for alias, number in registered_model_from_json(document).aliases.items():
            by_version.setdefault(number, []).append(alias)
    return [_version_from_json(raw, f"versions[{i}]", by_version) for i, raw in enumerate(raw_versions)]


def _version_from_json(raw: Any, where: str, aliases_by_version: Mapping[str, list[str]]) -> VersionFacts:
    if not isinstance(raw, Mapping) or not _text(raw.get("name")) or raw.get("version") in (None, ""):
        raise ExportError(f"{where} needs a name and a version")
    number = str(raw["version"])
    tags = _pairs(raw.get("tags"), f"{where}.tags")
    return _version(raw.get, str(raw["name"]), number, aliases_by_version.get(number, []), tags)


def logged_model_from_entity(model: Any) -> LoggedModelFacts:
    """From an MLflow 3 ``mlflow.entities.LoggedModel``."""
    return LoggedModelFacts(
        model_id=model.model_id,
        name=_text(model.name),
        experiment_id=_text(str(model.experiment_id) if model.experiment_id is not None else None),
        source_run_id=_text(model.source_run_id),
        status=_text(str(model.status) if model.status is not None else None),
        model_type=_text(model.model_type),
        creation_ms=_millis(model.creation_timestamp),
        last_updated_ms=_millis(model.last_updated_timestamp),
        tags=dict(model.tags or {}),
        params=dict(model.params or {}),
    )
