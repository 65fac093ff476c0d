"""The ``mlflow`` connector: training runs (incremental), the model registry and MLflow 3 logged models."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.sdk import (
    CollectContext,
    ConfigurationError,
    Connector,
    Observation,
    Subject,
    TransientError,
    redact_text,
)

from .checks import CHECKS
from .checks import KIND as VERSION_KIND
from .facts import RegisteredModelFacts, RunFacts, version_from_entity
from .payloads import logged_model_payload, run_payload, version_payload
from .settings import MlflowSettings
from .source import MlflowSource, client_environment

__all__ = ["LOGGED_MODEL_KIND", "RUN_KIND", "VERSION_KIND", "MlflowConnector", "RunWindow"]

RUN_KIND = "mlflow.training_run"
LOGGED_MODEL_KIND = "mlflow.logged_model"
CURSOR_KEY = "runs_touched_since_ms"


@dataclass(frozen=True, slots=True)
class RunWindow:
    """Which runs a collection asks for: since the cursor (new or finished since), or a backfill horizon."""

    since_ms: int
    incremental: bool

    @classmethod
    def from_cursor(cls, cursor: Any, now: datetime, backfill: timedelta) -> RunWindow:
        if isinstance(cursor, Mapping) and isinstance(cursor.get(CURSOR_KEY), int):
            return cls(cursor[CURSOR_KEY], incremental=True)
        return cls(int((now - backfill).timestamp() * 1000), incremental=False)

    def filters(self) -> list[str]:
        started = f"attributes.start_time >= {self.since_ms}"
        return [started, f"attributes.end_time >= {self.since_ms}"] if self.incremental else [started]

    def next_cursor(self, runs: list[RunFacts]) -> dict[str, int]:
        return {CURSOR_KEY: max([self.since_ms, *(run.touched_ms for run in runs)])}


def _millis_to_datetime(value: int, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC) if value > 0 else fallback


class MlflowConnector(Connector[MlflowSettings]):
    """Evidence from an MLflow tracking server and its model registry."""

    type = "mlflow"
    version = "0.1.0"
    Settings = MlflowSettings
    kinds = frozenset({RUN_KIND, VERSION_KIND, LOGGED_MODEL_KIND})
    checks = CHECKS

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        with client_environment(self.settings):
            source = MlflowSource(self.settings)
            experiment_ids = source.experiment_ids()
            window = RunWindow.from_cursor(ctx.cursor, ctx.now, self.settings.backfill)
            if ctx.cursor is not None and not window.incremental:
                ctx.problem("cursor", f"unreadable cursor {ctx.cursor!r}: backfilling instead")
            runs = self._runs(source, experiment_ids, window)
            documentation = _Documentation(source, self.settings, ctx)
            for run in runs:
                ctx.raise_if_cancelled()
                yield self._run_observation(source, run, documentation, ctx)
            yield from self._version_observations(source, runs, documentation, ctx)
            for model in source.logged_models(experiment_ids):
                ctx.raise_if_cancelled()
                yield Observation(
                    kind=LOGGED_MODEL_KIND,
                    subject=Subject("logged_model", model.model_id),
                    observed_at=ctx.now,
                    payload=logged_model_payload(model, self.settings),
                    source=f"{source.display_uri}/#/experiments/{model.experiment_id}/models/{model.model_id}",
                )
            ctx.set_cursor(window.next_cursor(runs))

    def _runs(self, source: MlflowSource, experiment_ids: list[str], window: RunWindow) -> list[RunFacts]:
        found: dict[str, RunFacts] = {}
        for filter_string in window.filters():
            for run in source.runs(experiment_ids, filter_string):
                found[run.run_id] = run
        return sorted(found.values(), key=lambda r: (r.start_time_ms or 0, r.run_id))

    def _run_observation(
        self, source: MlflowSource, run: RunFacts, documentation: _Documentation, ctx: CollectContext
    ) -> Observation:
        docs = documentation.of(run)["found"] if self.settings.list_run_artifacts else None
        return Observation(
            kind=RUN_KIND,
            subject=Subject("mlflow_run", run.run_id),
            observed_at=_millis_to_datetime(run.touched_ms, ctx.now),
            payload=run_payload(run, self.settings, docs),
            source=f"{source.display_uri}/#/experiments/{run.experiment_id}/runs/{run.run_id}",
        )

    def _version_observations(
        self, source: MlflowSource, collected: list[RunFacts], documentation: _Documentation, ctx: CollectContext
    ) -> Iterator[Observation]:
        models = {model.name: model for model in source.registered_models()}
        aliases = _aliases_by_version(models.values())
        entities = sorted(source.model_versions(), key=lambda v: (v.name, int(v.version)))
        # source runs by id; None for one the server no longer has, so that it is asked for once only
        runs: dict[str, RunFacts | None] = {run.run_id: run for run in collected}
        for entity in entities:
            ctx.raise_if_cancelled()
            version = version_from_entity(entity, aliases.get((entity.name, str(entity.version)), ()))
            run = None
            if version.run_id is not None:
                if version.run_id not in runs:
                    runs[version.run_id] = source.run(version.run_id)
                run = runs[version.run_id]
            card = documentation.of(run) if run is not None else {"listed": False, "found": [], "error": None}
            yield Observation(
                kind=VERSION_KIND,
                subject=Subject("model_version", f"{version.name}/{version.version}"),
                observed_at=ctx.now,
                payload=version_payload(version, models.get(version.name), run, card, self.settings),
                source=f"{source.display_uri}/#/models/{version.name}/versions/{version.version}",
            )


def _aliases_by_version(models: Iterable[RegisteredModelFacts]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for model in models:
        for alias, number in model.aliases.items():
            found.setdefault((model.name, number), []).append(alias)
    return found


class _Documentation:
    """Model-card artifacts of a run, listed once per run."""

    def __init__(self, source: MlflowSource, settings: MlflowSettings, ctx: CollectContext) -> None:
        self.source = source
        self.card_paths = settings.model_card_paths
        self.directories = sorted({posixpath.dirname(path.strip("/")) for path in self.card_paths})
        self.ctx = ctx
        self._seen: dict[str, dict[str, Any]] = {}

    def of(self, run: RunFacts) -> dict[str, Any]:
        if run.run_id not in self._seen:
            self._seen[run.run_id] = self._list(run)
        return self._seen[run.run_id]

    def _list(self, run: RunFacts) -> dict[str, Any]:
        try:
            paths = set(self.source.artifact_paths(run, self.directories))
        except (TransientError, ConfigurationError):
            raise
        except Exception as exc:  # noqa: BLE001 - an unreadable artifact store is recorded in the evidence and as a problem
            reason = redact_text(f"{type(exc).__name__}: {exc}")
            self.ctx.problem(f"{self.source.display_uri} run {run.run_id} artifacts", reason)
            return {"listed": False, "found": [], "error": reason}
        found = sorted(path for path in (p.strip("/") for p in self.card_paths) if path in paths)
        return {"listed": True, "found": found, "error": None}
