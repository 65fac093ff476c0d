"""Scheduled exports: the daemon writes a signed bundle on a cron schedule into a directory or an S3 prefix,
then keeps the newest ``retention`` bundles of that schedule there.

A bundle is named ``<export>-<UTC time of the run, to the minute>.zip``, so replicas firing the same cron slot
name it alike: a slot whose bundle is already at the destination is skipped. Only names of that exact shape
are ever deleted by retention.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector import __version__
from collector.config import ExportSchedule, LoadedConfig
from collector.durations import format_duration
from collector.errors import MappingError, extra_needed
from collector.export.bundle import ExportResult, build_request, config_digest, export_bundle
from collector.export.errors import ExportError
from collector.export.narratives import Narratives, load_narratives
from collector.export.signing import SIGNING_KEY_ENV, load_signing_key
from collector.state import State
from collector.store import Store

__all__ = [
    "Destination",
    "DirectoryDestination",
    "ExportRun",
    "S3Destination",
    "bundle_name",
    "destination_for",
    "run_scheduled_export",
]

log = structlog.get_logger("collector.export.schedule")

Outcome = Literal["succeeded", "failed", "skipped"]
WriteBundle = Callable[[Path], ExportResult]
"""Writes the bundle at the given path (under a temporary name first, renamed at the end)."""

_STAMP = "%Y%m%dT%H%M%SZ"


def bundle_name(export: str, slot: datetime) -> str:
    return f"{export}-{slot.astimezone(UTC).strftime(_STAMP)}.zip"


def _bundle_pattern(export: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(export)}-\d{{8}}T\d{{6}}Z\.zip$")


class Destination(Protocol):
    def location(self, name: str) -> str: ...

    def exists(self, name: str) -> bool: ...

    def write(self, name: str, write_bundle: WriteBundle) -> ExportResult: ...

    def names(self) -> list[str]: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class DirectoryDestination:
    directory: Path

    def location(self, name: str) -> str:
        return str(self.directory / name)

    def exists(self, name: str) -> bool:
        return (self.directory / name).exists()

    def write(self, name: str, write_bundle: WriteBundle) -> ExportResult:
        self.directory.mkdir(parents=True, exist_ok=True)
        return write_bundle(self.directory / name)

    def names(self) -> list[str]:
        return [p.name for p in self.directory.iterdir() if p.is_file()]

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


@dataclass(frozen=True)
class S3Destination:
    """``s3://bucket/prefix``; the client comes from the default AWS chain (``AWS_ENDPOINT_URL_S3`` included)."""

    bucket: str
    prefix: str
    client: Any

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def write(self, name: str, write_bundle: WriteBundle) -> ExportResult:
        with tempfile.TemporaryDirectory(prefix="evidence-export-") as tmp:
            result = write_bundle(Path(tmp) / name)
            self.client.upload_file(str(result.path), self.bucket, self._key(name))
        return result

    def names(self) -> list[str]:
        folder = self._key("")
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=folder, Delimiter="/"
        ):
            out.extend(obj["Key"][len(folder) :] for obj in page.get("Contents", []))
        return out

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))


def _default_s3_client() -> Any:
    with extra_needed("an s3:// export destination"):
        import boto3

    return boto3.client("s3")


def destination_for(text: str, s3_client: Callable[[], Any] = _default_s3_client) -> Destination:
    if text.startswith("s3://"):
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        return S3Destination(bucket, prefix.strip("/"), s3_client())
    return DirectoryDestination(Path(text))


@dataclass(frozen=True)
class ExportRun:
    export: str
    outcome: Outcome
    location: str
    finished_at: datetime
    records: int = 0
    gaps: int = 0
    pruned: tuple[str, ...] = ()
    error: str | None = None


def _signing_key(export: ExportSchedule, environ: Mapping[str, str]) -> Ed25519PrivateKey:
    if export.sign_key_file is not None:
        return load_signing_key(export.sign_key_file, environ)
    variable = export.sign_key_env
    assert variable is not None
    pem = environ.get(variable)
    if not pem:
        raise ExportError(f"no signing key: environment variable {variable} (sign_key_env) is not set")
    try:
        return load_signing_key(None, {**environ, SIGNING_KEY_ENV: pem})
    except ExportError as exc:
        raise ExportError(str(exc).replace(f"${SIGNING_KEY_ENV}", f"${variable}")) from exc


def _prune(destination: Destination, export: ExportSchedule) -> tuple[str, ...]:
    """Delete this schedule's oldest bundles beyond ``retention``; the stamp makes name order time order."""
    pattern = _bundle_pattern(export.name)
    ours = sorted(n for n in destination.names() if pattern.match(n))
    doomed = tuple(ours[: max(len(ours) - export.retention, 0)])
    for name in doomed:
        destination.delete(name)
    return doomed


def _narratives(loaded: LoadedConfig) -> Narratives:
    try:
        return load_narratives(loaded.mappings, loaded.app.narratives)
    except MappingError as exc:
        raise ExportError(f"narratives: {exc}") from exc


def _export_once(
    export: ExportSchedule,
    loaded: LoadedConfig,
    store: Store,
    destination: Destination,
    name: str,
    slot: datetime,
    clock: Callable[[], datetime],
    environ: Mapping[str, str],
) -> ExportRun:
    if destination.exists(name):
        return ExportRun(export.name, "skipped", destination.location(name), clock())
    request = build_request(
        loaded.mappings,
        loaded.overrides,
        config_digest(loaded),
        __version__,
        framework=export.framework,
        controls=export.controls,
        period=(slot - export.window, slot),
        narratives=_narratives(loaded),
    )
    key = _signing_key(export, environ)
    result = destination.write(name, lambda out: export_bundle(store, request, out, key, clock=clock))
    pruned = _prune(destination, export)
    counts = result.manifest["counts"]
    return ExportRun(
        export.name, "succeeded", destination.location(name), clock(), counts["records"], counts["gaps"], pruned
    )


def run_scheduled_export(
    export: ExportSchedule,
    loaded: LoadedConfig,
    store: Store,
    state: State | None = None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    s3_client: Callable[[], Any] = _default_s3_client,
    environ: Mapping[str, str] | None = None,
) -> ExportRun:
    """One run of a scheduled export, for the period of ``window`` ending at this minute. Never raises: a
    failure is logged and counted in ``state`` as a failed run, and leaves no partial bundle behind."""
    t0 = time.monotonic()
    slot = clock().astimezone(UTC).replace(second=0, microsecond=0)
    name = bundle_name(export.name, slot)
    where = export.destination
    try:
        destination = destination_for(export.destination, s3_client)
        where = destination.location(name)
        run = _export_once(
            export, loaded, store, destination, name, slot, clock, os.environ if environ is None else environ
        )
    except Exception as exc:  # noqa: BLE001 - recorded in the log line and the evidence_collector_export_runs metric
        error = str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
        run = ExportRun(export.name, "failed", where, clock(), error=error)
    if state is not None:
        state.record_export(run.export, run.outcome, run.finished_at)
    log_fn = log.info if run.outcome != "failed" else log.error
    log_fn(
        "export_finished",
        export=run.export,
        outcome=run.outcome,
        destination=run.location,
        period_end=slot.isoformat(),
        window=format_duration(export.window),
        records=run.records,
        gaps=run.gaps,
        pruned=len(run.pruned),
        duration_seconds=round(time.monotonic() - t0, 3),
        error=run.error,
    )
    return run
