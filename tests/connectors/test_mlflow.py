"""The mlflow connector against a real ``mlflow server`` (sqlite backend, loopback, random port).

The server starts once per session and is seeded through the client with one compliant production model
and one model per way of falling short, so each check is shown to fail exactly where it should."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, Run

from collector.config import ConnectorInstance, ResolvedInstance, RetryPolicy, Schedule
from collector.connector import CollectContext, RunCancelled, load_connector
from collector.errors import ConfigurationError, TransientError
from collector.mappings import load_mappings
from collector.model import Observation, Outcome
from collector.runner import Runner
from collector.sdk.testing import ConnectorConformance
from collector.state import State
from collector.store import Store
from connectors.mlflow import CHECKS, RUN_KIND, VERSION_KIND, MlflowConnector, MlflowSettings
from connectors.mlflow import source as mlflow_source

pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).parent / "mlflow"
"""The full mlflow's server script, from the environment running the tests (the test extra installs it)."""
NOW = datetime.now(UTC) + timedelta(minutes=5)
"""A fixed collection time just after seeding, so re-runs are comparable."""
COMMIT = "9f1c2ab47e0d3c6b5a8f7e6d5c4b3a2918070605"
GOOD_METRICS = {"accuracy": 0.91, "roc_auc": 0.88, "demographic_parity_difference": 0.04, "disparate_impact": 0.93}
BIG_PARAM = "f" * 10_000
CHECK_IDS = [c.id for c in CHECKS]


# ------------------------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"mlflow server at {url} not healthy after {timeout_seconds}s:\n{log.read_text()[-3000:]}")


def _server_command(root: Path, port: int) -> list[str]:
    store = f"sqlite:///{root / 'db.sqlite'}"
    options = {"--backend-store-uri": store, "--default-artifact-root": str(root / "artifacts")}
    options |= {"--host": "127.0.0.1", "--port": str(port), "--workers": "1"}
    return [str(MLFLOW), "server", *(part for pair in options.items() for part in pair)]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not MLFLOW.exists():
        pytest.skip(f"the full mlflow (server) is not installed beside {sys.executable}: pip install -e '.[test]'")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _server_command(root, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# ------------------------------------------------------------------------------------------- seeding


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass
class Seeder:
    client: MlflowClient
    experiment_id: str

    def run(
        self,
        name: str,
        *,
        dataset: bool = True,
        commit: bool = True,
        card: bool = True,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        started: datetime | None = None,
    ) -> Run:
        tags = {"mlflow.source.git.commit": COMMIT, "mlflow.source.name": "train.py"} if commit else {}
        start = started or datetime.now(UTC)
        run = self.client.create_run(self.experiment_id, start_time=_millis(start), tags=tags, run_name=name)
        run_id = run.info.run_id
        logged = GOOD_METRICS if metrics is None else metrics
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, _millis(start), 0) for k, v in logged.items()],
            params=[Param(k, v) for k, v in (params or {"max_depth": "6"}).items()],
        )
        if dataset:
            training = Dataset("credit-applications", "a1b2c3d4", "s3", '{"uri": "s3://data/credit/v3.parquet"}')
            holdout = Dataset("credit-holdout", "e5f6a7b8", "s3", '{"uri": "s3://data/credit/holdout.parquet"}')
            self.client.log_inputs(
                run_id,
                datasets=[
                    DatasetInput(training, [InputTag("mlflow.data.context", "training")]),
                    DatasetInput(holdout, [InputTag("mlflow.data.context", "eval")]),
                ],
            )
        if card:
            self.client.log_text(run_id, "# Model card\nIntended use: credit pre-screening.\n", "model_card.md")
        self.client.set_terminated(run_id, end_time=_millis(start + timedelta(seconds=30)))
        return self.client.get_run(run_id)

    def version(
        self,
        model: str,
        run: Run,
        *,
        alias: str | None = "production",
        approval: dict[str, str] | None = None,
        description: str | None = None,
    ) -> str:
        if not self.client.search_registered_models(filter_string=f"name = '{model}'"):
            self.client.create_registered_model(model)
        tags = approval if approval is not None else _approval()
        created = self.client.create_model_version(
            model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags, description=description
        )
        if alias:
            self.client.set_registered_model_alias(model, alias, created.version)
        return str(created.version)


def _approval(approved_hours_ago: float = 2, deployed_hours_ago: float = 1) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "approved_by": "maria.garcia",
        "approved_at": (now - timedelta(hours=approved_hours_ago)).isoformat(),
        "deployed_at": (now - timedelta(hours=deployed_hours_ago)).isoformat(),
    }


@dataclass
class Seeded:
    url: str
    good_run: Run
    old_run: Run
    deleted_run_id: str


P, F, NA = Outcome.PASS, Outcome.FAIL, Outcome.NOT_APPLICABLE
EXPECTED: dict[str, tuple[Outcome, ...]] = {
    # lineage, approval, documented, evaluated, fairness
    "credit-scorer/1": (P, P, P, P, P),
    "credit-scorer/2": (NA, NA, NA, NA, NA),
    "unapproved/1": (P, F, P, P, P),
    "late-approval/1": (P, F, P, P, P),
    "no-lineage/1": (F, P, P, P, P),
    "undocumented/1": (P, P, F, P, P),
    "described/1": (P, P, P, P, P),
    "unevaluated/1": (P, P, P, F, P),
    "no-fairness/1": (P, P, P, P, F),
    "unfair/1": (P, P, P, P, F),
    "deleted-source/1": (F, P, P, P, P),
    "legacy-production/1": (P, P, P, P, P),
    "modèle-crédit ✓/1": (P, P, P, P, P),
}


@pytest.fixture(scope="session")
def seeded(mlflow_server: str) -> Seeded:
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    seed = Seeder(client, client.create_experiment("credit-risk ✓", tags={"team": "risk"}))
    good = seed.run("good", params={"max_depth": "6", "feature_list": BIG_PARAM})
    client.set_tag(good.info.run_id, "mlflow.user", "maria.garcia")  # disagrees with the run's user_id
    good = client.get_run(good.info.run_id)
    old = seed.run("old", started=datetime.now(UTC) - timedelta(days=200))
    seed.version("credit-scorer", good)
    seed.version("credit-scorer", good, alias=None)
    seed.version("unapproved", good, alias="champion", approval={})
    seed.version("late-approval", good, approval=_approval(approved_hours_ago=1, deployed_hours_ago=2))
    seed.version("no-lineage", seed.run("no-lineage", dataset=False, commit=False))
    undocumented = seed.run("undocumented", card=False)
    seed.version("undocumented", undocumented)
    seed.version("described", undocumented, description="Gradient-boosted credit scorer")
    seed.version("unevaluated", seed.run("unevaluated", metrics={"demographic_parity_difference": 0.02}))
    seed.version("no-fairness", seed.run("no-fairness", metrics={"accuracy": 0.9}))
    seed.version("unfair", seed.run("unfair", metrics={**GOOD_METRICS, "demographic_parity_difference": 0.3}))
    deleted = seed.run("deleted")
    seed.version("deleted-source", deleted)
    client.delete_run(deleted.info.run_id)
    legacy = seed.version("legacy-production", good, alias=None)
    with pytest.warns(FutureWarning, match="deprecated"):
        client.transition_model_version_stage("legacy-production", legacy, "Production")
    seed.version("modèle-crédit ✓", good)
    return Seeded(mlflow_server, good, old, deleted.info.run_id)


def connector(url: str, **settings: Any) -> MlflowConnector:
    return MlflowConnector(MlflowSettings(tracking_uri=url, **settings))


def collect(
    url: str, cursor: Any = None, now: datetime = NOW, **settings: Any
) -> tuple[list[Observation], CollectContext]:
    ctx = CollectContext(instance="mlflow", run_id="r1", now=now, cursor=cursor)
    return list(connector(url, **settings).collect(ctx)), ctx


@pytest.fixture(scope="session")
def collected(seeded: Seeded) -> dict[str, Observation]:
    observations, ctx = collect(seeded.url, experiments=["credit-risk ✓"])
    assert ctx.problems == []
    return {f"{o.kind} {o.subject.id}": o for o in observations}


# ------------------------------------------------------------------------------------------- conformance


class TestMlflowConformance(ConnectorConformance):
    connector_cls = MlflowConnector
    now = NOW
    invalid_settings: ClassVar[list[dict[str, Any]]] = [
        {},
        {"tracking_uri": "sqlite:///mlflow.db"},
        {"tracking_uri": "http://x", "password": "p"},
        {"tracking_uri": "http://x", "fairness_bounds": {"disparate_impact": {}}},
        {"tracking_uri": "http://x", "fairness_bounds": {"disparate_impact": {"min": 2, "max": 1}}},
        {"tracking_uri": "http://x", "backfill": "soon"},
        {"tracking_uri": "http://x", "deployed_aliases": [""]},
    ]
    secret_values: ClassVar[dict[str, str]] = {"token": "tok-3c1f9a", "password": "pw-8d2e7b"}

    @pytest.fixture(autouse=True)
    def _server(self, seeded: Seeded) -> None:
        self.url = seeded.url

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"tracking_uri": self.url, "username": "auditor"}



def test_connector_is_registered_under_its_type() -> None:
    assert load_connector("mlflow") is MlflowConnector
    assert MlflowConnector.kinds == frozenset({"mlflow.training_run", "mlflow.model_version", "mlflow.logged_model"})
    assert CHECK_IDS == [
        "mlflow.lineage_complete",
        "mlflow.approval_recorded",
        "mlflow.documented",
        "mlflow.evaluated",
        "mlflow.fairness_within_bounds",
    ]


# ------------------------------------------------------------------------------------------- outcomes


def outcomes(observation: Observation, settings: MlflowSettings | None = None) -> tuple[Outcome, ...]:
    settings = settings or MlflowSettings(tracking_uri="http://unused")
    return tuple(check.run(observation, settings, NOW).result for check in CHECKS)


@pytest.mark.parametrize("subject", sorted(EXPECTED))
def test_each_version_fails_exactly_the_matching_check(collected: dict[str, Observation], subject: str) -> None:
    observation = collected[f"{VERSION_KIND} {subject}"]
    assert dict(zip(CHECK_IDS, outcomes(observation), strict=True)) == dict(
        zip(CHECK_IDS, EXPECTED[subject], strict=True)
    )


def test_every_registered_version_is_in_the_inventory(collected: dict[str, Observation]) -> None:
    versions = sorted(o.subject.id for o in collected.values() if o.kind == VERSION_KIND)
    assert versions == sorted(EXPECTED)
    assert all(o.subject.type == "model_version" for o in collected.values() if o.kind == VERSION_KIND)


def test_compliant_production_version_carries_its_lineage(collected: dict[str, Observation], seeded: Seeded) -> None:
    observation = collected[f"{VERSION_KIND} credit-scorer/1"]
    payload = observation.payload
    assert observation.observed_at == NOW
    assert payload["aliases"] == ["production"]
    assert payload["tags"]["approved_by"] == "maria.garcia"
    assert payload["model_card"] == {"listed": True, "found": ["model_card.md"], "error": None}
    source_run = payload["source_run"]
    assert source_run["run_id"] == seeded.good_run.info.run_id
    assert source_run["state"] == "found"
    assert source_run["code_version"]["commit"] == COMMIT
    assert source_run["code_version"]["recorded_in"] == "mlflow.source.git.commit"
    assert [(d["name"], d["digest"], d["context"]) for d in source_run["datasets"]] == [
        ("credit-holdout", "e5f6a7b8", "eval"),
        ("credit-applications", "a1b2c3d4", "training"),
    ]
    assert source_run["metrics"] == GOOD_METRICS
    results = {c.id: c.run(observation, MlflowSettings(tracking_uri="http://unused"), NOW) for c in CHECKS}
    assert results["mlflow.lineage_complete"].details["training_datasets"] == ["credit-applications@a1b2c3d4"]
    assert results["mlflow.approval_recorded"].details["approval_before_deployment"] is True
    assert results["mlflow.fairness_within_bounds"].details["reason"] == "within_bounds"
    assert all(r.details["deployed_via"] == ["alias:production"] for r in results.values())


def test_failures_say_what_is_missing(collected: dict[str, Observation], seeded: Seeded) -> None:
    settings = MlflowSettings(tracking_uri="http://unused")

    def message(subject: str, check_index: int) -> str:
        return CHECKS[check_index].run(collected[f"{VERSION_KIND} {subject}"], settings, NOW).message

    assert "has no training dataset input with a digest and no code version" in message("no-lineage/1", 0)
    assert f"{seeded.deleted_run_id}, which was deleted" in message("deleted-source/1", 0)
    assert "no approver; no approval time" in message("unapproved/1", 1)
    assert "after deployment" in message("late-approval/1", 1)
    assert "no model card (model_card.md, README.md)" in message("undocumented/1", 2)
    assert "none of accuracy, roc_auc, f1, rmse logged" in message("unevaluated/1", 3)
    assert message("no-fairness/1", 4).endswith(
        "no fairness metric logged (looked for demographic_parity_difference, equalized_odds_difference, "
        "disparate_impact)"
    )
    assert "demographic_parity_difference=0.3 (must be <= 0.1)" in message("unfair/1", 4)


def test_legacy_production_stage_counts_as_deployed(collected: dict[str, Observation]) -> None:
    observation = collected[f"{VERSION_KIND} legacy-production/1"]
    assert observation.payload["stage"] == "Production"
    assert observation.payload["aliases"] == []
    result = CHECKS[0].run(observation, MlflowSettings(tracking_uri="http://unused"), NOW)
    assert result.details["deployed_via"] == ["stage:Production"]


def test_configured_aliases_decide_what_is_deployed(collected: dict[str, Observation]) -> None:
    champion_only = MlflowSettings(tracking_uri="http://unused", deployed_aliases=["champion"])
    assert outcomes(collected[f"{VERSION_KIND} credit-scorer/1"], champion_only) == (NA,) * 5
    assert outcomes(collected[f"{VERSION_KIND} unapproved/1"], champion_only) == (P, F, P, P, P)


def test_training_run_keeps_both_users_lineage_and_truncates_long_params(
    collected: dict[str, Observation], seeded: Seeded
) -> None:
    run_id = seeded.good_run.info.run_id
    observation = collected[f"{RUN_KIND} {run_id}"]
    payload = observation.payload
    assert observation.subject.type == "mlflow_run"
    assert observation.observed_at == datetime.fromtimestamp(seeded.good_run.info.end_time / 1000, UTC)
    assert payload["user"] == {"user_id": seeded.good_run.info.user_id, "mlflow_user": "maria.garcia"}
    assert payload["status"] == "FINISHED"
    assert payload["code_version"]["commit"] == COMMIT
    assert payload["params"]["max_depth"] == "6"
    stored = len(seeded.good_run.data.params["feature_list"])  # the MLflow client itself cuts at 6000
    assert 1000 < stored <= len(BIG_PARAM)
    assert payload["params"]["feature_list"] == "f" * 1000 + f"…[truncated: {stored} chars]"
    assert payload["truncated"] == ["params.feature_list"]
    assert payload["metrics"] == GOOD_METRICS
    assert payload["documentation"] is None


def test_run_artifacts_are_listed_when_asked(seeded: Seeded) -> None:
    observations, _ = collect(seeded.url, experiments=["credit-risk ✓"], list_run_artifacts=True)
    docs = {o.payload["run_name"]: o.payload["documentation"] for o in observations if o.kind == RUN_KIND}
    assert docs["good"] == ["model_card.md"]
    assert docs["undocumented"] == []


def test_deleted_runs_are_collected_with_their_lifecycle(collected: dict[str, Observation], seeded: Seeded) -> None:
    assert collected[f"{RUN_KIND} {seeded.deleted_run_id}"].payload["lifecycle_stage"] == "deleted"


def test_first_run_backfills_only_the_horizon(collected: dict[str, Observation], seeded: Seeded) -> None:
    old_id = seeded.old_run.info.run_id
    assert f"{RUN_KIND} {old_id}" not in collected
    observations, _ = collect(seeded.url, experiments=["credit-risk ✓"], backfill="365d")
    assert old_id in {o.subject.id for o in observations if o.kind == RUN_KIND}


def test_cursor_brings_only_runs_new_or_finished_since(mlflow_server: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_server)
    seed = Seeder(client, client.create_experiment("cursor-experiment"))
    start = datetime.now(UTC) - timedelta(hours=2)
    first = seed.run("first", started=start)
    running = client.create_run(seed.experiment_id, start_time=_millis(start + timedelta(seconds=10)))
    observations, ctx = collect(mlflow_server, experiments=["cursor-experiment"])
    names = {o.payload["run_name"] for o in observations if o.kind == RUN_KIND}
    assert names == {"first", running.info.run_name}
    cursor = ctx.new_cursor
    assert cursor == {"runs_touched_since_ms": first.info.end_time}

    client.set_terminated(running.info.run_id, end_time=_millis(datetime.now(UTC)))
    second = seed.run("second")
    observations, ctx = collect(mlflow_server, cursor=cursor, experiments=["cursor-experiment"])
    names = {o.payload["run_name"] for o in observations if o.kind == RUN_KIND}
    assert names == {"first", running.info.run_name, "second"}  # "first" ends exactly at the cursor: kept
    assert ctx.new_cursor == {"runs_touched_since_ms": second.info.end_time}

    observations, ctx = collect(mlflow_server, cursor=ctx.new_cursor, experiments=["cursor-experiment"])
    assert [o.payload["run_name"] for o in observations if o.kind == RUN_KIND] == ["second"]


def test_experiments_are_filtered_by_tag(seeded: Seeded) -> None:
    observations, _ = collect(seeded.url, experiment_tags={"team": "nobody"})
    assert [o for o in observations if o.kind == RUN_KIND] == []
    observations, _ = collect(seeded.url, experiment_tags={"team": "risk"})
    assert f"{seeded.good_run.info.run_id}" in {o.subject.id for o in observations if o.kind == RUN_KIND}


def test_unknown_experiment_is_a_configuration_error(seeded: Seeded) -> None:
    with pytest.raises(ConfigurationError, match="experiment 'no-such-experiment' does not exist"):
        collect(seeded.url, experiments=["no-such-experiment"])


def test_an_interrupted_collection_does_not_advance_the_cursor(seeded: Seeded) -> None:
    ctx = CollectContext(instance="mlflow", run_id="r1", now=NOW)
    stream = connector(seeded.url, experiments=["credit-risk ✓"]).collect(ctx)
    next(stream)
    ctx.cancel_event.set()
    with pytest.raises(RunCancelled):
        list(stream)
    assert ctx.new_cursor is None
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ, "the client environment is restored"


def test_settings_put_credentials_in_the_client_environment_only_while_collecting(seeded: Seeded) -> None:
    seen: dict[str, str | None] = {}
    ctx = CollectContext(instance="mlflow", run_id="r1", now=NOW)
    stream = connector(seeded.url, token="tok-77", username="auditor", password="pw-77").collect(ctx)
    next(stream)
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        seen[name] = os.environ.get(name)
    stream.close()
    assert seen == {
        "MLFLOW_TRACKING_TOKEN": "tok-77",
        "MLFLOW_TRACKING_USERNAME": "auditor",
        "MLFLOW_TRACKING_PASSWORD": "pw-77",
    }
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_a_second_collection_waits_for_the_client_then_gives_up(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlflow_source, "ENVIRONMENT_WAIT_SECONDS", 0.2)
    first = connector(seeded.url).collect(CollectContext(instance="a", run_id="r1", now=NOW))
    next(first)
    with pytest.raises(TransientError, match="another MLflow collection held the client"):
        collect(seeded.url)
    first.close()
    assert collect(seeded.url, experiments=["credit-risk ✓"])[0], "the client is free again"


# ------------------------------------------------------------------------------------------- faults


class _Canned(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    body: ClassVar[bytes] = b"{}"
    requests: ClassVar[list[str]] = []
    not_found: ClassVar[tuple[str, ...]] = ()
    """Path fragments answered with MLflow's 404 ENDPOINT_NOT_FOUND, as a server without that API does."""

    def _answer(self) -> None:
        type(self).requests.append(self.path)
        status, body = self.status, self.body
        if any(fragment in self.path for fragment in self.not_found):
            status, body = 404, b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "No API endpoint"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def canned() -> Iterator[tuple[str, type[_Canned]]]:
    """A loopback server answering every request the same way: an auth proxy saying 401/403, a gateway
    saying 503, or an empty tracking server (``{}``: empty repeated fields are omitted)."""
    handler = type("Handler", (_Canned,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_configuration_error_without_retries(
    canned: tuple[str, type[_Canned]], status: int
) -> None:
    url, handler = canned
    handler.status = status
    code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}[status]
    handler.body = json.dumps({"error_code": code, "message": "credentials refused"}).encode()
    with pytest.raises(ConfigurationError, match=f"HTTP {status}.*check token or username/password"):
        collect(url, token="wrong")
    assert len(handler.requests) == 1


def test_server_errors_are_transient(canned: tuple[str, type[_Canned]]) -> None:
    url, handler = canned
    handler.status = 503
    handler.body = b"<html>upstream unavailable</html>"
    # MLflow 3.17 gives up through urllib3's RetryError ("kept failing"), 3.18 hands back the 503 itself
    with pytest.raises(TransientError, match=r"(kept failing|answered HTTP 503) while listing experiments: .*503"):
        collect(url, http_retries=0)


def test_empty_registry_yields_nothing_and_sets_a_cursor(canned: tuple[str, type[_Canned]]) -> None:
    url, _ = canned
    observations, ctx = collect(url)
    assert observations == []
    assert ctx.problems == []
    assert ctx.new_cursor == {"runs_touched_since_ms": _millis(NOW - timedelta(days=90))}


def test_a_server_without_logged_models_is_collected_without_them(canned: tuple[str, type[_Canned]]) -> None:
    url, handler = canned
    handler.body = json.dumps({"experiments": [{"experiment_id": "0", "name": "Default"}]}).encode()
    handler.not_found = ("logged-models",)
    observations, ctx = collect(url)
    assert observations == []
    assert any("logged-models" in path for path in handler.requests), "the MLflow 3 API was asked"
    assert ctx.new_cursor is not None


def test_a_url_that_is_not_an_mlflow_server_is_a_configuration_error(canned: tuple[str, type[_Canned]]) -> None:
    url, handler = canned
    handler.not_found = ("/api/",)
    with pytest.raises(ConfigurationError, match=r"HTTP 404 .*\(is http://\S+ an MLflow tracking server\?\)"):
        collect(url)


def test_unreachable_server_is_transient() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(TransientError, match=f"MLflow server {url} unreachable while listing experiments"):
        collect(url, http_retries=0)


def _instance(url: str, attempts: int) -> ResolvedInstance:
    config = ConnectorInstance(
        name="mlflow-test",
        type="mlflow",
        schedule=Schedule(interval=timedelta(hours=1), timeout=timedelta(seconds=60)),
        settings={"tracking_uri": url, "http_retries": 0},
        retry=RetryPolicy(attempts=attempts, initial=timedelta(milliseconds=10), max=timedelta(milliseconds=20)),
    )
    settings = MlflowSettings.model_validate(config.settings)
    return ResolvedInstance(config, MlflowConnector, settings, "test-config-hash")


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[tuple[Runner, Store]]:
    store = Store(f"sqlite:///{tmp_path / 'evidence.db'}")
    store.upgrade()
    yield Runner(store, State(), load_mappings()), store
    store.dispose()


def test_unreachable_server_fails_the_run_with_the_reason_after_retries(runner: tuple[Runner, Store]) -> None:
    run_with, store = runner
    url = f"http://127.0.0.1:{_free_port()}"
    outcome = run_with.run(_instance(url, attempts=2))
    assert outcome.run.status == "failed"
    assert outcome.run.error is not None
    assert f"MLflow server {url} unreachable" in outcome.run.error
    assert outcome.stored == 0
    assert store.get_cursor("mlflow-test") is None


def test_refused_credentials_fail_the_run_once(runner: tuple[Runner, Store], canned: tuple[str, type[_Canned]]) -> None:
    run_with, _ = runner
    url, handler = canned
    handler.status = 401
    handler.body = b"Unauthorized"
    outcome = run_with.run(_instance(url, attempts=3))
    assert outcome.run.status == "failed"
    assert outcome.run.error is not None
    assert outcome.run.error.startswith("configuration error: ")
    assert len(handler.requests) == 1, "a configuration error is not retried"


def test_a_run_through_the_core_stores_tagged_evidence_and_the_cursor(
    runner: tuple[Runner, Store], seeded: Seeded
) -> None:
    run_with, store = runner
    outcome = run_with.run(_instance(seeded.url, attempts=1))
    assert outcome.run.status == "succeeded", outcome.run.error
    by_subject = {r.subject_id: r for r in outcome.records if r.kind == VERSION_KIND}
    compliant = by_subject["credit-scorer/1"]
    assert {c["id"]: c["result"] for c in compliant.checks} == dict.fromkeys(CHECK_IDS, "pass")
    assert {"nist_ai_rmf:GOVERN 1.6", "soc2:CC8.1", "nist_ai_rmf:MEASURE 2.11"} <= set(compliant.controls)
    assert store.get_cursor("mlflow-test") is not None
