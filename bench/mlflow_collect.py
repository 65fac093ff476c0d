"""Collecting 1,000 MLflow runs and their registry, next to the bare client's ``search_runs`` paging.

The server's sqlite store is seeded directly (``SqlAlchemyStore``) before the server starts, because seeding
1,000 runs over REST takes minutes. Then, against one ``mlflow server`` on 127.0.0.1, in the same process and
alternating, it times:

* bare: ``MlflowClient.search_runs`` paging over the experiment until there is no next page token;
* connector: a whole first collection by ``MlflowConnector`` (experiments, runs, registered models, model
  versions with their source runs' model cards, logged models) into observations.

Usage: python bench/mlflow_collect.py [--runs 1000] [--models 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag, ViewType
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

from collector.connector import CollectContext
from connectors.mlflow import MlflowConnector, MlflowSettings

MLFLOW = Path(sys.executable).with_name("mlflow")
EXPERIMENT = "bench-credit-risk"


def seed(root: Path, runs: int, models: int) -> None:
    """Write experiments, runs (params, metrics, tags, dataset inputs) and a registry straight into the store."""
    uri = f"sqlite:///{root / 'db.sqlite'}"
    artifacts = root / "artifacts"
    tracking = TrackingStore(uri, str(artifacts))
    experiment_id = tracking.create_experiment(EXPERIMENT, str(artifacts / "1"))
    start = datetime.now(UTC) - timedelta(days=30)
    run_ids = []
    for i in range(runs):
        started = int((start + timedelta(minutes=i)).timestamp() * 1000)
        tags = [RunTag("mlflow.user", f"user{i % 7}"), RunTag("mlflow.source.git.commit", f"{i:040x}")]
        run = tracking.create_run(experiment_id, f"user{i % 7}", started, tags, f"run-{i}")
        run_id = run.info.run_id
        tracking.log_batch(
            run_id,
            metrics=[Metric(k, 0.5 + (i % 50) / 100, started, 0) for k in ("accuracy", "roc_auc", "f1")]
            + [Metric("demographic_parity_difference", (i % 20) / 100, started, 0)],
            params=[Param(f"p{j}", str(i * j)) for j in range(10)],
            tags=[RunTag("team", "risk")],
        )
        dataset = Dataset("credit-applications", f"{i:08x}", "s3", '{"uri": "s3://data/credit.parquet"}')
        tracking.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])
        tracking.update_run_info(run_id, RunStatus.FINISHED, started + 60_000, None)
        run_ids.append((run_id, run.info.artifact_uri))
    registry = RegistryStore(uri)
    for m in range(models):
        name = f"model-{m}"
        registry.create_registered_model(name)
        for v in range(3):
            run_id, artifact_uri = run_ids[(m * 3 + v) % len(run_ids)]
            Path(artifact_uri).mkdir(parents=True, exist_ok=True)
            (Path(artifact_uri) / "model_card.md").write_text("# card\n")
            registry.create_model_version(name, f"{artifact_uri}/model", run_id=run_id)
        registry.set_registered_model_alias(name, "production", "3")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}"]
    command += ["--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"mlflow server exited: see {root / 'server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.3)
    stop_server(process)
    raise SystemExit("mlflow server did not become healthy")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def bare_paging(url: str, experiment_id: str) -> int:
    client = MlflowClient(tracking_uri=url)
    count, token = 0, None
    while True:
        page = client.search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        count += len(page)
        token = page.token
        if not token:
            return count


def connector_collect(url: str) -> int:
    connector = MlflowConnector(MlflowSettings(tracking_uri=url, experiments=[EXPERIMENT]))
    ctx = CollectContext(instance="bench", run_id="bench", now=datetime.now(UTC))
    observations = list(connector.collect(ctx))
    if ctx.problems:
        raise SystemExit(f"problems: {ctx.problems}")
    return len(observations)


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlflow-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        seed(root, args.runs, args.models)
        print(f"seeded {args.runs} runs, {args.models} models x 3 versions in {time.perf_counter() - t0:.1f}s")
        process, url = start_server(root)
        try:
            experiment_id = MlflowClient(tracking_uri=url).get_experiment_by_name(EXPERIMENT).experiment_id
            bare_paging(url, experiment_id)  # warm both paths once
            connector_collect(url)
            bare_times, connector_times = [], []
            for _ in range(args.repeats):
                seconds, runs = timed(lambda: bare_paging(url, experiment_id))
                bare_times.append(seconds)
                seconds, observations = timed(lambda: connector_collect(url))
                connector_times.append(seconds)
        finally:
            stop_server(process)
    bare, collected = statistics.median(bare_times), statistics.median(connector_times)
    print(f"bare search_runs paging : {runs} runs, median {bare:.3f}s  (all: {_list(bare_times)})")
    print(
        f"connector collection    : {observations} observations, median {collected:.3f}s"
        f"  (all: {_list(connector_times)})"
    )
    print(f"ratio connector / bare  : {collected / bare:.2f}x  (target <= 1.30x)")


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


if __name__ == "__main__":
    main()
