"""Write a signed, point-in-time evidence bundle (a zip) from the store.

Evidence streams from the database in pages and is spooled per control to disk, so memory stays flat
however many records there are. The zip is written under a temporary name beside the destination and
renamed at the end: a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from collector.canonical import content_sha256
from collector.export import queries
from collector.export.coverage import Arrival, CoverageSweep, Period
from collector.export.errors import ExportError
from collector.export.evidence_lines import control_file_name, record_line
from collector.export.matrix import ControlSummary, Window, controls_csv, coverage_json
from collector.export.oscal import assessment_results
from collector.export.report import index_html
from collector.export.signing import fingerprint, public_key_b64
from collector.mappings import FreshnessPolicy, Mappings
from collector.model import ControlRef
from collector.store import Store

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST",
    "SIGNATURE",
    "ExportRequest",
    "ExportResult",
    "Progress",
    "build_request",
    "export_bundle",
    "mappings_digest",
]

BUNDLE_FORMAT = "evidence-collector-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "signature"
_COMPRESS_LEVEL = 1
"""Evidence lines are mostly hex digests: level 1 is within ~1.5 points of level 6's ratio at twice the speed."""
_CHUNK = 1 << 20
_ZIP64_FROM = 1 << 30


class Progress(Protocol):
    def start(self, total: int | None) -> None: ...

    def advance(self, records: int) -> None: ...


@dataclass(frozen=True)
class ExportRequest:
    framework: str
    controls: tuple[ControlRef, ...]
    """The controls in scope: those asked for, or every control of the framework."""
    explicit: bool
    """True when controls were named: each gets a row even with no evidence mapped."""
    window: Window
    mappings: Mappings
    overrides: Mapping[ControlRef, FreshnessPolicy]
    config_hash: str
    generator_version: str

    def describe_scope(self) -> str:
        return ", ".join(str(c) for c in self.controls) if self.explicit else self.framework

    @property
    def prefixes(self) -> list[str]:
        return queries.scope_prefixes(self.framework, [str(c) for c in self.controls] if self.explicit else [])


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    summaries: list[ControlSummary]


def mappings_digest(mappings: Mappings) -> str:
    return content_sha256(
        {
            "catalogs": {k: v.model_dump(mode="json") for k, v in sorted(mappings.catalogs.items())},
            "kinds": {k: v.model_dump(mode="json") for k, v in sorted(mappings.kinds.items())},
            "checks": {k: v.model_dump(mode="json") for k, v in sorted(mappings.checks.items())},
        }
    )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def build_request(
    mappings: Mappings,
    overrides: Mapping[ControlRef, FreshnessPolicy],
    config_hash: str,
    generator_version: str,
    *,
    framework: str,
    controls: Sequence[str] = (),
    as_of: datetime | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> ExportRequest:
    """Validate what was asked for against the mappings; naive times are taken as UTC."""
    if framework not in mappings.catalogs:
        raise ExportError(f"unknown framework {framework!r} (known: {', '.join(mappings.frameworks())})")
    if (as_of is None) == (period is None):
        raise ExportError("give exactly one of --as-of T or --period START..END")
    refs: list[ControlRef] = []
    for text in controls:
        qualified = text if ":" in text else f"{framework}:{text}"
        try:
            resolved = mappings.resolve(qualified)
        except (LookupError, ValueError) as exc:
            raise ExportError(f"--control {text}: {exc}") from exc
        for ref in resolved:
            if ref.framework != framework:
                raise ExportError(f"--control {text}: belongs to {ref.framework}, not to the exported {framework}")
            if ref not in refs:
                refs.append(ref)
    if period is not None:
        try:
            span = Period(_aware(period[0]), _aware(period[1]))
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        window = Window(span.end, span)
    else:
        assert as_of is not None
        window = Window(_aware(as_of))
    scope = tuple(refs) if refs else tuple(mappings.all_controls(framework))
    return ExportRequest(
        framework, scope, bool(refs), window, mappings, dict(overrides), config_hash, generator_version
    )


# -- spooling and zip writing ---------------------------------------------------------------------


class _Spools:
    """One append-only temporary file per evidence file of the bundle."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._files: dict[str, IO[str]] = {}
        self._paths: dict[str, Path] = {}
        self.lines: Counter[str] = Counter()

    def write(self, name: str, line: str) -> None:
        handle = self._files.get(name)
        if handle is None:
            path = self._dir / f"{len(self._files):05d}.jsonl"
            handle = path.open("w", encoding="utf-8", newline="", buffering=_CHUNK)
            self._files[name], self._paths[name] = handle, path
        handle.write(line)
        self.lines[name] += 1

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()

    def contents(self) -> Iterator[tuple[str, Path]]:
        for name in sorted(self._paths):
            yield name, self._paths[name]


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


class _BundleZip:
    """A zip whose entries carry the fixed zip epoch as their time; records each entry's size and SHA-256."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL, allowZip64=True
        )
        self.files: list[dict[str, Any]] = []

    def add(self, name: str, chunks: Iterable[bytes], size_hint: int = 0, *, listed: bool = True) -> None:
        digest = hashlib.sha256()
        size = 0
        with self._zip.open(name, "w", force_zip64=size_hint >= _ZIP64_FROM) as fh:
            for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
                size += len(chunk)
        if listed:
            self.files.append({"path": name, "size": size, "sha256": digest.hexdigest()})

    def close(self) -> None:
        self._zip.close()


# -- the passes over the store --------------------------------------------------------------------


@dataclass
class _Collected:
    records: int = 0
    outcomes: dict[ControlRef, dict[str, Counter[str]]] = field(default_factory=dict)
    records_per_control: Counter[ControlRef] = field(default_factory=Counter)


class _Tags:
    """Control tags of records, parsed once per distinct ``controls`` text (a run's records share it)."""

    def __init__(self, scope: Mapping[str, ControlRef]) -> None:
        self._scope = scope
        self._in_scope: dict[str, list[ControlRef]] = {}
        self._all: dict[str, list[str]] = {}

    def in_scope(self, controls_json: str) -> list[ControlRef]:
        refs = self._in_scope.get(controls_json)
        if refs is None:
            refs = [self._scope[t] for t in self.all(controls_json) if t in self._scope]
            self._in_scope[controls_json] = refs
        return refs

    def all(self, controls_json: str) -> list[str]:
        tags = self._all.get(controls_json)
        if tags is None:
            tags = self._all[controls_json] = list(json.loads(controls_json))
        return tags


def _spool_records(
    rows: Iterable[Any], tags: _Tags, spools: _Spools, collected: _Collected, progress: Progress
) -> None:
    pending = 0
    for row in rows:
        refs = tags.in_scope(row.controls)
        if not refs:
            continue
        if row.payload is None:
            raise ExportError(
                f"record seq={row.seq} id={row.id} has no stored content: the store is damaged "
                "(run `evidence-collector verify`)"
            )
        line = record_line(row)
        for ref in refs:
            spools.write(control_file_name(ref.framework, ref.control), line)
            collected.records_per_control[ref] += 1
        collected.records += 1
        pending += 1
        if pending >= 1000:
            progress.advance(pending)
            pending = 0
    progress.advance(pending)


def _tally_outcomes(rows: Iterable[Any], tags: _Tags, mappings: Mappings, collected: _Collected) -> Iterator[Any]:
    """Pass rows through, counting check outcomes of the latest record per subject for each control."""
    for row in rows:
        refs = tags.in_scope(row.controls)
        if refs:
            checks = json.loads(row.checks)
            for ref in refs:
                mapped = mappings.checks_by_control.get(ref, ())
                per_check = collected.outcomes.setdefault(ref, {})
                for check in checks:
                    if check["id"] in mapped:
                        per_check.setdefault(check["id"], Counter())[check["result"]] += 1
        yield row


def _sweeps(request: ExportRequest) -> dict[str, CoverageSweep]:
    mappings = request.mappings
    sweeps = {}
    for ref in request.controls:
        kinds = [k for k in mappings.kinds_by_control.get(ref, ()) if k in mappings.kinds]
        policies = {k: mappings.kinds[k].freshness for k in kinds}
        sweeps[str(ref)] = CoverageSweep(
            ref, policies, request.window.as_of, request.window.period, request.overrides.get(ref)
        )
    return sweeps


def _feed(sweeps: Mapping[str, CoverageSweep], rows: Iterable[Any], mappings: Mappings, tags: _Tags) -> None:
    for row in rows:
        kind_mapping = mappings.kinds.get(row.kind)
        if kind_mapping is None:
            continue
        arrival = Arrival(
            queries.to_utc(row.stored_at),
            row.kind,
            queries.to_utc(row.observed_at),
            None if row.valid_until is None else queries.to_utc(row.valid_until),
        )
        for tag in tags.all(row.controls):
            sweep = sweeps.get(tag)
            if sweep is not None:
                sweep.admit(row.kind, kind_mapping.freshness)
                sweep.feed(arrival)


def _check_window(conn: Connection, window: Window) -> None:
    first = queries.first_stored_at(conn)
    if first is None:
        raise ExportError("the evidence store is empty: nothing to export")
    if window.as_of < first:
        what = "period ends" if window.period is not None else "as-of time is"
        raise ExportError(
            f"the {what} {window.as_of.isoformat()}, before the first record was stored ({first.isoformat()})"
        )


def _spool_evidence(
    conn: Connection, request: ExportRequest, tags: _Tags, spools: _Spools, progress: Progress
) -> _Collected:
    """The records of the bundle, spooled per control (as of: the latest per subject, with check outcomes)."""
    window, prefixes = request.window, request.prefixes
    collected = _Collected()
    if window.period is None:
        progress.start(None)
        latest = queries.iter_latest_per_subject(conn, prefixes, window.as_of, with_payload=True)
        _spool_records(_tally_outcomes(latest, tags, request.mappings, collected), tags, spools, collected, progress)
        return collected
    start, end = window.period.start, window.period.end
    progress.start(queries.count_records(conn, prefixes, start, end))
    state_at_start = queries.iter_latest_per_subject(conn, prefixes, start, with_payload=True)
    _spool_records(state_at_start, tags, spools, collected, progress)
    _spool_records(queries.iter_records_stored_between(conn, prefixes, start, end), tags, spools, collected, progress)
    return collected


def _assess(conn: Connection, request: ExportRequest, tags: _Tags, collected: _Collected) -> dict[str, CoverageSweep]:
    """Coverage per control over the window and, for a period, check outcomes of the latest record at its end."""
    window, mappings, prefixes = request.window, request.mappings, request.prefixes
    sweeps = _sweeps(request)
    if window.period is None:
        _feed(sweeps, queries.iter_newest_per_kind(conn, prefixes, window.as_of), mappings, tags)
        return sweeps
    start, end = window.period.start, window.period.end
    latest_at_end = queries.iter_latest_per_subject(conn, prefixes, end, with_payload=False)
    for _ in _tally_outcomes(latest_at_end, tags, mappings, collected):
        pass
    _feed(sweeps, queries.iter_newest_per_kind(conn, prefixes, start), mappings, tags)
    _feed(sweeps, queries.iter_arrivals(conn, prefixes, start, end), mappings, tags)
    return sweeps


def _summaries(
    request: ExportRequest, collected: _Collected, sweeps: Mapping[str, CoverageSweep]
) -> list[ControlSummary]:
    out = []
    for ref in request.controls:
        sweep = sweeps[str(ref)]
        records = collected.records_per_control.get(ref, 0)
        if not (request.explicit or sweep.policies or records):
            continue
        out.append(
            ControlSummary(
                ref=ref,
                title=request.mappings.control(ref).title,
                coverage=sweep.finish(),
                records=records,
                records_file=control_file_name(ref.framework, ref.control) if records else None,
                outcomes=collected.outcomes.get(ref, {}),
            )
        )
    return out


# -- the bundle -----------------------------------------------------------------------------------


class _Quiet:
    def start(self, total: int | None) -> None:
        return None

    def advance(self, records: int) -> None:
        return None


def _check_destination(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: directory {parent} is not writable")
    if out.is_dir():
        raise ExportError(f"cannot write {out}: it is a directory")


def _manifest(
    request: ExportRequest,
    collected: _Collected,
    summaries: list[ControlSummary],
    files: list[dict[str, Any]],
    anchor: queries.ChainAnchor | None,
    key: Ed25519PrivateKey,
    generated_at: datetime,
) -> dict[str, Any]:
    catalog = request.mappings.catalogs[request.framework]
    public = key.public_key()
    return {
        "format": BUNDLE_FORMAT,
        "generator": {"name": "evidence-collector", "version": request.generator_version},
        "generated_at": generated_at.isoformat(),
        "config_hash": request.config_hash,
        "framework": {"id": catalog.framework, "name": catalog.name, "version": catalog.version},
        "controls": [str(s.ref) for s in summaries],
        **request.window.as_json(),
        "counts": {
            "records": collected.records,
            "evidence_lines": sum(s.records for s in summaries),
            "controls": len(summaries),
            "gaps": sum(len(s.coverage.gaps) for s in summaries),
            "files": len(files),
        },
        "chain_anchor": None if anchor is None else {"seq": anchor.seq, "chain_hash": anchor.chain_hash},
        "files": sorted(files, key=lambda f: f["path"]),
        "signing": {"algorithm": "Ed25519", "public_key": public_key_b64(public), "fingerprint": fingerprint(public)},
    }


def _add_reports(bundle: _BundleZip, request: ExportRequest, summaries: list[ControlSummary]) -> None:
    catalog = request.mappings.catalogs[request.framework]
    window, version = request.window, request.generator_version
    bundle.add("controls.csv", [controls_csv(summaries)])
    bundle.add("coverage.json", [coverage_json(window, summaries)])
    bundle.add(
        "assessment-results.json", [assessment_results(catalog.framework, catalog.name, window, summaries, version)]
    )
    bundle.add("index.html", [index_html(catalog.name, window, summaries, f"evidence-collector {version}")])


def _add_evidence(bundle: _BundleZip, spools: _Spools) -> None:
    for name, spool in spools.contents():
        bundle.add(name, _chunks(spool), spool.stat().st_size)


def _sign(bundle: _BundleZip, manifest: dict[str, Any], key: Ed25519PrivateKey) -> None:
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    bundle.add(MANIFEST, [manifest_bytes], listed=False)
    bundle.add(SIGNATURE, [key.sign(manifest_bytes)], listed=False)


def _write(
    partial: Path, spool_dir: Path, store: Store, request: ExportRequest, key: Ed25519PrivateKey, progress: Progress,
    clock: Callable[[], datetime],
) -> tuple[dict[str, Any], list[ControlSummary]]:  # fmt: skip
    tags = _Tags({str(ref): ref for ref in request.controls})
    spools = _Spools(spool_dir)
    bundle = _BundleZip(partial)
    try:
        with store.engine.connect() as conn:
            _check_window(conn, request.window)
            try:
                collected = _spool_evidence(conn, request, tags, spools, progress)
            finally:
                spools.close()
            if collected.records == 0:
                raise ExportError(
                    f"no evidence for {request.describe_scope()} stored {request.window.describe()}: nothing to export"
                )
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-zip") as pool:
                zipping = pool.submit(_add_evidence, bundle, spools)  # compression overlaps the coverage queries
                sweeps = _assess(conn, request, tags, collected)
                zipping.result()
            anchor = queries.chain_anchor(conn, request.window.as_of)
        summaries = _summaries(request, collected, sweeps)
        _add_reports(bundle, request, summaries)
        manifest = _manifest(request, collected, summaries, bundle.files, anchor, key, clock())
        _sign(bundle, manifest, key)
    finally:
        bundle.close()
    return manifest, summaries


def export_bundle(
    store: Store,
    request: ExportRequest,
    out: Path,
    key: Ed25519PrivateKey,
    progress: Progress | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportResult:
    """Write the bundle to ``out``; on any error nothing is left at ``out`` or beside it."""
    _check_destination(out)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp:
            manifest, summaries = _write(partial, Path(tmp), store, request, key, progress or _Quiet(), clock)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(out, manifest, summaries)
