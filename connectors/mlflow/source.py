"""The MLflow client as this connector uses it: credentials and retries set for the client, errors translated
into the collector's dispositions, every listing paged to the end."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import requests
from mlflow import MlflowClient
from mlflow.entities import FileInfo, ViewType
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.entities.paged_list import PagedList

from collector.sdk import (
    HTTP_DISPOSITION,
    ConfigurationError,
    Disposition,
    SkippableError,
    TransientError,
    collect_pages,
    redact_text,
    redact_url,
)

from .facts import (
    LoggedModelFacts,
    RegisteredModelFacts,
    RunFacts,
    logged_model_from_entity,
    registered_model_from_entity,
    run_from_entity,
)
from .settings import MlflowSettings

__all__ = ["MlflowSource", "client_environment", "translate"]

T = TypeVar("T")

RUNS_PAGE_SIZE = 1000
REGISTERED_MODELS_PAGE_SIZE = 1000
MODEL_VERSIONS_PAGE_SIZE = 10000
LOGGED_MODELS_PAGE_SIZE = 100
_BACKOFF_FACTOR = "1"
ENVIRONMENT_WAIT_SECONDS = 300

_ENVIRONMENT_LOCK = threading.Lock()
"""The MLflow client reads credentials and retry settings from the process environment on every request,
so two collections with different settings must not overlap."""


@contextmanager
def client_environment(settings: MlflowSettings) -> Iterator[None]:
    """Set the MLflow client's environment for one collection and put the previous values back after."""
    values = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.http_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": _BACKOFF_FACTOR,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(settings.request_timeout.total_seconds()))),
    }
    if settings.token is not None:
        values["MLFLOW_TRACKING_TOKEN"] = settings.token.get_secret_value()
    if settings.username is not None:
        values["MLFLOW_TRACKING_USERNAME"] = settings.username
    if settings.password is not None:
        values["MLFLOW_TRACKING_PASSWORD"] = settings.password.get_secret_value()
    if not _ENVIRONMENT_LOCK.acquire(timeout=ENVIRONMENT_WAIT_SECONDS):
        raise TransientError(f"another MLflow collection held the client for {ENVIRONMENT_WAIT_SECONDS}s")
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _ENVIRONMENT_LOCK.release()


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def translate(exc: MlflowException, uri: str, what: str) -> Exception:
    """The collector error an MLflow client error stands for, by the one HTTP disposition table (its message
    quotes request URLs: they lose their credentials)."""
    uri, message = redact_url(uri), redact_text(exc.message)
    if _caused_by(exc, (requests.ConnectionError, requests.Timeout)):
        return TransientError(f"MLflow server {uri} unreachable while {what}: {message}")
    if _caused_by(exc, (requests.exceptions.RetryError,)):
        return TransientError(f"MLflow server {uri} kept failing while {what}: {message}")
    status = _http_status(exc)
    reason = f"MLflow server {uri} answered HTTP {status} while {what}: {message}"
    if status in (401, 403):
        return ConfigurationError(f"{reason} (check token or username/password and the account's permissions)")
    disposition = HTTP_DISPOSITION.get(status, Disposition.FATAL)
    if disposition is Disposition.TRANSIENT:
        return TransientError(reason)
    if disposition is Disposition.CONFIGURATION:
        return ConfigurationError(reason)
    if disposition is Disposition.SKIPPABLE:
        return SkippableError(uri, reason)
    return exc


class MlflowSource:
    """One tracking server and its model registry."""

    def __init__(self, settings: MlflowSettings) -> None:
        self.uri = settings.tracking_uri
        self.display_uri = redact_url(self.uri)
        """The tracking URI as stored and shown: without credentials."""
        self.settings = settings
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            translated = translate(exc, self.uri, what)
            if translated is exc:
                raise
            raise translated from exc

    def _pages(self, what: str, fetch: Callable[[str | None], Any]) -> list[Any]:
        def page(token: str | None) -> tuple[Sequence[Any], str | None]:
            try:
                paged = self.call(what, fetch, token)
            except SkippableError as exc:  # a listing endpoint that is not there: the URI is wrong
                raise ConfigurationError(f"{exc.reason} (is {self.display_uri} an MLflow tracking server?)") from exc
            return list(paged), paged.token

        return collect_pages(page, f"{what} from {self.display_uri}")

    # ------------------------------------------------------------------------------------- tracking

    def experiment_ids(self) -> list[str]:
        """The experiments to collect: the named ones (each must exist), else all active ones; tag-filtered."""
        settings = self.settings
        if settings.experiments:
            found = []
            for name in settings.experiments:
                experiment = self.call(f"looking up experiment {name!r}", self.client.get_experiment_by_name, name)
                if experiment is None:
                    raise ConfigurationError(f"experiment {name!r} does not exist on MLflow server {self.display_uri}")
                found.append(experiment)
        else:
            found = self._pages(
                "listing experiments",
                lambda token: self.client.search_experiments(ViewType.ACTIVE_ONLY, max_results=1000, page_token=token),
            )
        wanted = settings.experiment_tags.items()
        return sorted(
            (e.experiment_id for e in found if all(e.tags.get(k) == v for k, v in wanted)), key=_numeric_first
        )

    def runs(self, experiment_ids: list[str], filter_string: str) -> list[RunFacts]:
        if not experiment_ids:
            return []

        def fetch(token: str | None) -> Any:
            return self.client.search_runs(
                experiment_ids,
                filter_string=filter_string,
                run_view_type=ViewType.ALL,
                max_results=RUNS_PAGE_SIZE,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )

        return [run_from_entity(run) for run in self._pages(f"searching runs where {filter_string}", fetch)]

    def run(self, run_id: str) -> RunFacts | None:
        """The run, or ``None`` when the server no longer has it (purged)."""

        def get(run_id: str) -> Any:
            try:
                return self.client.get_run(run_id)
            except MlflowException as exc:
                if _http_status(exc) == 404:
                    return None
                raise

        found = self.call(f"reading run {run_id}", get, run_id)
        return run_from_entity(found) if found is not None else None

    def artifact_paths(self, run: RunFacts, directories: Sequence[str]) -> list[str]:
        """Every artifact path directly under each directory of the run (``""`` is the root), read from the
        run's artifact URI so that no extra ``runs/get`` is needed."""
        what = f"listing artifacts of run {run.run_id}"
        list_under: Callable[[str | None], list[FileInfo]]
        if run.artifact_uri is None:
            list_under = partial(self.client.list_artifacts, run.run_id)
        else:
            repository = get_artifact_repository(artifact_uri=run.artifact_uri, tracking_uri=self.uri)
            list_under = repository.list_artifacts
        paths: list[str] = []
        for directory in directories:
            paths.extend(info.path for info in self.call(what, list_under, directory or None))
        return paths

    # ------------------------------------------------------------------------------------- registry

    def registered_models(self) -> list[RegisteredModelFacts]:
        models = self._pages(
            "listing registered models",
            lambda token: self.client.search_registered_models(
                max_results=REGISTERED_MODELS_PAGE_SIZE, page_token=token
            ),
        )
        return [registered_model_from_entity(model) for model in models]

    def model_versions(self) -> list[Any]:
        return self._pages(
            "listing model versions",
            lambda token: self.client.search_model_versions(max_results=MODEL_VERSIONS_PAGE_SIZE, page_token=token),
        )

    def logged_models(self, experiment_ids: list[str]) -> list[LoggedModelFacts]:
        if not experiment_ids:
            return []

        def fetch(token: str | None) -> Any:
            try:
                return self.client.search_logged_models(
                    experiment_ids, max_results=LOGGED_MODELS_PAGE_SIZE, page_token=token
                )
            except MlflowException as exc:
                if _http_status(exc) == 404:  # a server older than MLflow 3 has no logged models
                    return PagedList([], None)
                raise

        return [logged_model_from_entity(model) for model in self._pages("listing logged models", fetch)]


def _http_status(exc: MlflowException) -> int:
    status: int = exc.get_http_status_code()  # type: ignore[no-untyped-call]
    return status


def _numeric_first(experiment_id: str) -> tuple[int, str]:
    return (int(experiment_id), "") if experiment_id.isdigit() else (1 << 62, experiment_id)
