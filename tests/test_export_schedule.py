"""Scheduled exports: `exports:` entries validated at their line, bundles written by the schedule into a directory
or an S3 prefix (a real moto server) with retention, failures counted and never half-written, daemon cron jobs."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import structlog
from apscheduler.triggers.cron import CronTrigger
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.config import LoadedConfig, load_and_resolve
from collector.coordination import PostgresCoordination
from collector.daemon import Daemon
from collector.errors import ConfigurationError
from collector.export import verify_bundle
from collector.export.schedule import ExportRun, bundle_name, run_scheduled_export
from collector.logging import configure_logging
from collector.mappings import Mappings, load_mappings
from collector.metrics import EvidenceMetrics
from collector.state import State
from collector.store import Store
from tests.test_export_bundle import ClockedStore, collect_at, day

RUN_AT = day(3) + timedelta(hours=6, seconds=17)
"""The seeded scans are stored on days 0-2; scheduled runs come after."""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_file(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "signing-key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def write_config(tmp_path: Path, db_url: str, exports: str, listen: str = "127.0.0.1:9464") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'database: {{url: "{db_url}"}}\nhttp: {{listen: "{listen}"}}\nexports:\n{exports}')
    return path


def nightly(destination: Path | str, key_file: Path, /, **extra: str | None) -> str:
    """One ``exports:`` entry in YAML; ``extra`` replaces fields in place or appends them, None drops one."""
    fields: dict[str, str | None] = {
        "name": "nightly",
        "cron": "'0 2 * * *'",
        "framework": "soc2",
        "destination": f'"{destination}"',
        "sign_key_file": f'"{key_file}"',
        **extra,
    }
    rows = [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return f"  - {rows[0]}\n" + "".join(f"    {row}\n" for row in rows[1:])


def seed(url: str, mappings: Mappings, days: tuple[float, ...] = (0, 1, 2)) -> None:
    store = ClockedStore(url)
    store.upgrade()
    for n in days:
        collect_at(store, mappings, day(n))
    store.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evidence.db'}"


def loaded_with(tmp_path: Path, db_url: str, exports: str, listen: str = "127.0.0.1:9464") -> LoadedConfig:
    return load_and_resolve(write_config(tmp_path, db_url, exports, listen))


def run_once(loaded: LoadedConfig, store: Store, at: datetime, state: State | None = None, **kw: Any) -> ExportRun:
    return run_scheduled_export(loaded.app.exports[0], loaded, store, state, clock=Clock(at), **kw)


def run_once_on(loaded: LoadedConfig, url: str, at: datetime, state: State | None = None) -> ExportRun:
    """:func:`run_once` on a store of its own, disposed before the test looks at what was left behind."""
    store = Store(url)
    try:
        return run_once(loaded, store, at, state)
    finally:
        store.dispose()


@pytest.fixture
def summary_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The ``export_finished`` lines the real logging chain writes (JSON), whatever earlier tests configured."""
    saved = structlog.get_config()
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    yield lambda: [e for e in map(json.loads, sink.getvalue().splitlines()) if e["event"] == "export_finished"]
    structlog.configure(**saved)


def scrape(state: State, mappings: Mappings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(EvidenceMetrics(state, mappings))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name.startswith("evidence_collector_export_")
    }


# -- configuration --------------------------------------------------------------------------------


def test_an_exports_entry_validates_with_its_defaults(tmp_path: Path, sqlite_url: str, key_file: Path) -> None:
    exports = nightly(tmp_path / "bundles", key_file, controls="[CC7.1, 'soc2:CC8.1']") + nightly(
        "s3://audit-bundles/soc2/nightly",
        key_file,
        name="nightly-s3",
        window="30d",
        retention="7",
        sign_key_file=None,
        sign_key_env="AUDIT_KEY_PEM",
    )
    loaded = loaded_with(tmp_path, sqlite_url, exports)
    first, second = loaded.app.exports
    assert (first.name, first.cron, first.framework) == ("nightly", "0 2 * * *", "soc2")
    assert (first.controls, first.destination) == (["CC7.1", "soc2:CC8.1"], str(tmp_path / "bundles"))
    assert (first.window, first.retention, first.sign_key_file) == (timedelta(days=90), 30, key_file)
    assert (second.name, second.destination, second.window, second.retention) == (
        "nightly-s3",
        "s3://audit-bundles/soc2/nightly",
        timedelta(days=30),
        7,
    )
    assert (second.sign_key_file, second.sign_key_env) == (None, "AUDIT_KEY_PEM")


BAD_ENTRIES: dict[str, tuple[dict[str, str | None], int, str]] = {
    "unknown framework": ({"framework": "sox"}, 6, "exports[0].framework: unknown framework 'sox' (known: "),
    "bad cron": ({"cron": "'0 2 * *'"}, 5, "exports[0].cron: invalid cron expression '0 2 * *'"),
    "unknown control": ({"controls": "[CC7.1, CC99.9]"}, 9, "exports[0].controls[1]: unknown control 'CC99.9'"),
    "another framework's control": (
        {"controls": "['iso27001:A.8.8']"},
        9,
        "exports[0].controls[0]: 'iso27001:A.8.8' is not a control of the exported framework 'soc2'",
    ),
    "no key": ({"sign_key_file": None}, 4, "exports[0]: give exactly one of sign_key_file"),
    "a key in the file": (
        {"sign_key_env": "'-----BEGIN PRIVATE KEY-----'"},
        9,
        "exports[0].sign_key_env: String should match pattern",
    ),
    "no bucket": (
        {"destination": "s3:///soc2"},
        7,
        "exports[0].destination: 's3:///soc2' names no bucket",
    ),
    "zero retention": ({"retention": "0"}, 9, "exports[0].retention: Input should be greater than or equal to 1"),
    "zero window": ({"window": "0s"}, 4, "exports[0]: window must be positive"),
}


@pytest.mark.parametrize(("change", "line", "message"), BAD_ENTRIES.values(), ids=BAD_ENTRIES.keys())
def test_a_bad_exports_entry_is_reported_at_its_line(
    tmp_path: Path, sqlite_url: str, key_file: Path, change: dict[str, str | None], line: int, message: str
) -> None:
    path = write_config(tmp_path, sqlite_url, nightly(tmp_path, key_file, **change))
    with pytest.raises(ConfigurationError) as caught:
        load_and_resolve(path)
    assert f"{path}:{line}: {message}" in str(caught.value)


def test_a_missing_destination_and_a_reused_name_are_reported(tmp_path: Path, sqlite_url: str, key_file: Path) -> None:
    path = write_config(tmp_path, sqlite_url, nightly(tmp_path, key_file, destination=None))
    with pytest.raises(ConfigurationError) as caught:
        load_and_resolve(path)
    assert f"{path}:4: exports[0].destination: Field required" in str(caught.value)
    path = write_config(tmp_path, sqlite_url, nightly(tmp_path, key_file) * 2)
    with pytest.raises(ConfigurationError, match="export name 'nightly' is used twice"):
        load_and_resolve(path)


# -- runs into a directory ------------------------------------------------------------------------


@pytest.fixture
def directory_export(
    tmp_path: Path, db_url: str, key_file: Path, mappings: Mappings
) -> Iterator[tuple[LoadedConfig, Store, Path]]:
    seed(db_url, mappings)
    out = tmp_path / "bundles"
    loaded = loaded_with(tmp_path, db_url, nightly(out, key_file, retention="3", window="2d"))
    store = Store(db_url)
    yield loaded, store, out
    store.dispose()


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings()


def test_a_scheduled_run_writes_a_bundle_that_verifies(
    directory_export: tuple[LoadedConfig, Store, Path],
    key: Ed25519PrivateKey,
    summary_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    loaded, store, out = directory_export
    state = State()
    run = run_once(loaded, store, RUN_AT, state)
    slot = RUN_AT.replace(second=0)
    assert run.outcome == "succeeded", run.error
    assert run.location == str(out / "nightly-20260904T060000Z.zip")
    assert sorted(p.name for p in out.iterdir()) == ["nightly-20260904T060000Z.zip"]
    report = verify_bundle(out / "nightly-20260904T060000Z.zip", key.public_key())
    assert report.manifest["period"] == {"start": (slot - timedelta(days=2)).isoformat(), "end": slot.isoformat()}
    assert report.manifest["framework"]["id"] == "soc2"
    assert report.manifest["counts"]["records"] == run.records > 0
    (line,) = summary_lines()
    assert line["outcome"] == "succeeded"
    assert line["records"] == run.records
    assert line["window"] == "2d"
    metrics = scrape(state, loaded.mappings)
    assert metrics[("evidence_collector_export_runs_total", (("export", "nightly"), ("outcome", "succeeded")))] == 1
    assert metrics[("evidence_collector_export_runs_total", (("export", "nightly"), ("outcome", "failed")))] == 0
    assert (
        metrics[("evidence_collector_export_last_success_timestamp_seconds", (("export", "nightly"),))]
        == RUN_AT.timestamp()
    )


def test_retention_keeps_the_newest_bundles_of_the_schedule_only(
    directory_export: tuple[LoadedConfig, Store, Path],
) -> None:
    loaded, store, out = directory_export
    out.mkdir()
    others = ["nightly-eu-20260101T000000Z.zip", "nightly-notes.zip", "nightly-20260101T000000Z.zip.bak"]
    for name in others:
        (out / name).write_bytes(b"not ours")
    runs = [run_once(loaded, store, RUN_AT + timedelta(hours=h)) for h in range(5)]
    assert [r.outcome for r in runs] == ["succeeded"] * 5
    assert [len(r.pruned) for r in runs] == [0, 0, 0, 1, 1]
    kept = [bundle_name("nightly", (RUN_AT + timedelta(hours=h)).replace(second=0)) for h in (2, 3, 4)]
    assert sorted(p.name for p in out.iterdir()) == sorted(kept + others)


def test_a_slot_already_exported_is_skipped(directory_export: tuple[LoadedConfig, Store, Path]) -> None:
    loaded, store, out = directory_export
    state = State()
    first = run_once(loaded, store, RUN_AT, state)
    bundle = out / bundle_name("nightly", RUN_AT.replace(second=0))
    written = bundle.read_bytes()
    again = run_once(loaded, store, RUN_AT + timedelta(seconds=30), state)
    assert (first.outcome, again.outcome) == ("succeeded", "skipped")
    assert bundle.read_bytes() == written
    metrics = scrape(state, loaded.mappings)
    assert metrics[("evidence_collector_export_runs_total", (("export", "nightly"), ("outcome", "skipped")))] == 1


def test_an_unwritable_destination_is_a_failed_run_that_leaves_nothing(
    tmp_path: Path,
    sqlite_url: str,
    key_file: Path,
    mappings: Mappings,
    summary_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    seed(sqlite_url, mappings)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the destination's parent should be")
    loaded = loaded_with(tmp_path, sqlite_url, nightly(blocker / "bundles", key_file))
    state = State()
    run = run_once_on(loaded, sqlite_url, RUN_AT, state)
    assert run.outcome == "failed"
    assert "NotADirectoryError" in str(run.error)
    (line,) = summary_lines()
    assert (line["outcome"], line["level"], line["error"]) == ("failed", "error", run.error)
    assert blocker.read_text().startswith("a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.yaml",
        "evidence.db",
        "not-a-directory",
        "signing-key.pem",
    ]
    metrics = scrape(state, loaded.mappings)
    assert metrics[("evidence_collector_export_runs_total", (("export", "nightly"), ("outcome", "failed")))] == 1
    assert ("evidence_collector_export_last_success_timestamp_seconds", (("export", "nightly"),)) not in metrics


def test_an_export_failing_mid_write_leaves_no_partial_bundle(
    tmp_path: Path, sqlite_url: str, key_file: Path, mappings: Mappings
) -> None:
    """CC6.1 has no evidence in the seeded store: the bundle is being written when that is found out."""
    seed(sqlite_url, mappings)
    out = tmp_path / "bundles"
    loaded = loaded_with(tmp_path, sqlite_url, nightly(out, key_file, controls="[CC6.1]"))
    run = run_once_on(loaded, sqlite_url, RUN_AT)
    assert run.outcome == "failed"
    assert run.error is not None and "nothing to export" in run.error
    assert list(out.iterdir()) == []


def test_the_key_can_come_from_a_named_environment_variable(
    tmp_path: Path, sqlite_url: str, key_file: Path, key: Ed25519PrivateKey, mappings: Mappings
) -> None:
    seed(sqlite_url, mappings)
    out = tmp_path / "bundles"
    entry = nightly(out, key_file, sign_key_file=None, sign_key_env="AUDIT_KEY_PEM")
    loaded = loaded_with(tmp_path, sqlite_url, entry)
    store = Store(sqlite_url)
    try:
        unset = run_once(loaded, store, RUN_AT, environ={})
        garbled = run_once(loaded, store, RUN_AT, environ={"AUDIT_KEY_PEM": "-----BEGIN PRIVATE KEY-----\nxx"})
        signed = run_once(loaded, store, RUN_AT, environ={"AUDIT_KEY_PEM": key_file.read_text()})
    finally:
        store.dispose()
    assert unset.error == "no signing key: environment variable AUDIT_KEY_PEM (sign_key_env) is not set"
    assert garbled.error is not None and garbled.error.startswith("signing key in $AUDIT_KEY_PEM: not a usable PEM")
    assert signed.outcome == "succeeded"
    assert verify_bundle(Path(signed.location), key.public_key()).records == signed.records


# -- runs into an S3 prefix -----------------------------------------------------------------------


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    requests.post(f"{moto_server}/moto-api/reset", timeout=5).raise_for_status()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.client("s3")


@pytest.mark.slow
def test_bundles_go_to_an_s3_prefix_with_retention(
    s3: Any, tmp_path: Path, sqlite_url: str, key_file: Path, key: Ed25519PrivateKey, mappings: Mappings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seed(sqlite_url, mappings)
    s3.create_bucket(Bucket="audit-bundles")
    others = ["soc2/nightly/nightly-notes.zip", "soc2/nightly/older/nightly-20200101T000000Z.zip", "soc2/x.zip"]
    for other in others:
        s3.put_object(Bucket="audit-bundles", Key=other, Body=b"not ours")
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spool))
    loaded = loaded_with(tmp_path, sqlite_url, nightly("s3://audit-bundles/soc2/nightly/", key_file, retention="2"))
    store = Store(sqlite_url)
    state = State()
    try:
        runs = [run_once(loaded, store, RUN_AT + timedelta(days=n), state) for n in range(4)]
    finally:
        store.dispose()
    assert [r.outcome for r in runs] == ["succeeded"] * 4, [r.error for r in runs]
    assert runs[-1].location == "s3://audit-bundles/soc2/nightly/nightly-20260907T060000Z.zip"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="audit-bundles")["Contents"])
    ours = ["soc2/nightly/nightly-20260906T060000Z.zip", "soc2/nightly/nightly-20260907T060000Z.zip"]
    assert keys == sorted(ours + others)
    newest = tmp_path / "newest.zip"
    s3.download_file("audit-bundles", ours[-1], str(newest))
    assert verify_bundle(newest, key.public_key()).records == runs[-1].records
    assert list(spool.iterdir()) == [], "the local copy is removed after the upload"
    metrics = scrape(state, loaded.mappings)
    assert metrics[("evidence_collector_export_runs_total", (("export", "nightly"), ("outcome", "succeeded")))] == 4


@pytest.mark.slow
def test_a_missing_bucket_is_a_failed_run_and_nothing_is_left_locally(
    s3: Any, tmp_path: Path, sqlite_url: str, key_file: Path, mappings: Mappings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(sqlite_url, mappings)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spool))
    loaded = loaded_with(tmp_path, sqlite_url, nightly("s3://no-such-bucket/soc2", key_file))
    run = run_once_on(loaded, sqlite_url, RUN_AT)
    assert run.outcome == "failed"
    assert run.error is not None
    assert "NoSuchBucket" in run.error
    assert list(spool.iterdir()) == []


# -- the daemon -----------------------------------------------------------------------------------


def test_the_daemon_schedules_each_export_and_its_job_writes_the_bundle(
    tmp_path: Path, db_url: str, key_file: Path, key: Ed25519PrivateKey
) -> None:
    out = tmp_path / "bundles"
    exports = nightly(out, key_file) + nightly(out, key_file, name="weekday", cron="'30 */6 * * 1-5'")
    loaded = loaded_with(tmp_path, db_url, exports, listen="127.0.0.1:0")
    store = ClockedStore(db_url)
    store.upgrade()
    collect_at(store, loaded.mappings, datetime.now(UTC) - timedelta(hours=2))
    store.dispose()
    daemon = Daemon(loaded)
    daemon.start()
    try:
        jobs = {job.id: job for job in daemon.scheduler.get_jobs() if job.id.startswith("export:")}
        assert sorted(jobs) == ["export:nightly", "export:weekday"]
        for job in jobs.values():
            assert isinstance(job.trigger, CronTrigger)
            assert (job.coalesce, job.max_instances) == (True, 1)
        assert str(jobs["export:nightly"].trigger) == "cron[month='*', day='*', day_of_week='*', hour='2', minute='0']"
        assert "day_of_week='1-5', hour='*/6', minute='30'" in str(jobs["export:weekday"].trigger)
        jobs["export:nightly"].func(*jobs["export:nightly"].args)
        (bundle,) = out.iterdir()
        assert bundle.name.startswith("nightly-")
        assert verify_bundle(bundle, key.public_key()).records > 0
        assert daemon.http is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.http.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        daemon.stop()
    runs = {
        (s.labels["export"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "evidence_collector_export_runs_total"
    }
    assert runs[("nightly", "succeeded")] == 1
    assert runs[("weekday", "succeeded")] == 0


@pytest.mark.postgres
def test_on_postgresql_a_replica_skips_an_export_another_is_writing(postgres_url: str) -> None:
    store = Store(postgres_url)
    a = PostgresCoordination(store, lambda _inst, _run_id: None, holder="a:1")
    b = PostgresCoordination(store, lambda _inst, _run_id: None, holder="b:1")
    writes: list[str] = []

    def on_a() -> str:
        writes.append("a")
        assert b.run_exclusive("export:nightly", lambda: writes.append("b")) is None
        assert b.run_exclusive("export:weekly", lambda: "other schedule") == "other schedule"
        return "written by a"

    try:
        assert a.run_exclusive("export:nightly", on_a) == "written by a"
        assert b.run_exclusive("export:nightly", lambda: "b after a") == "b after a"
    finally:
        a.dispose()
        b.dispose()
        store.dispose()
    assert writes == ["a"]
