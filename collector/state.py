"""In-memory state the write path updates and /metrics, status and readiness read.

Three signals are kept apart: connector health, evidence freshness (newest observation per kind),
and control results (subjects whose latest record fails a check)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from collector.freshness import ControlFreshness, KindEvidence, control_freshness
from collector.mappings import FreshnessPolicy, Mappings
from collector.model import ControlRef

__all__ = ["EXPORT_OUTCOMES", "ConnectorHealth", "ExportHealth", "Snapshot", "State", "SubjectKey", "evaluate_controls"]

SubjectKey = tuple[str, str, str]
"""(kind, subject type, subject id)"""

_FAILING = frozenset({"fail", "error"})


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    instance: str
    connector_type: str
    last_success: datetime | None = None
    last_finished: datetime | None = None
    last_status: str | None = None
    consecutive_failures: int = 0
    last_duration_seconds: float | None = None
    last_problems: int = 0
    runs: Mapping[str, int] = field(default_factory=dict)
    problems_total: int = 0


EXPORT_OUTCOMES = ("succeeded", "failed", "skipped")
"""Scheduled export runs: ``skipped`` when this slot's bundle is already at the destination."""


@dataclass(frozen=True, slots=True)
class ExportHealth:
    """A scheduled export's runs on this replica (kept in memory only: bundles live outside the store)."""

    export: str
    last_success: datetime | None = None
    runs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy taken under the lock: what a scrape or a status call reads."""

    newest: dict[tuple[str, str], tuple[datetime, datetime | None]]
    """(control, kind) -> (newest observed_at, its valid_until)"""
    failing_by_check: dict[str, int]
    connectors: dict[str, ConnectorHealth]
    records_total: dict[tuple[str, str, str], int]
    ready: bool
    exports: dict[str, ExportHealth] = field(default_factory=dict)


@dataclass(slots=True)
class _Latest:
    observed_at: datetime
    failing: frozenset[str]


class State:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[SubjectKey, _Latest] = {}
        self._newest: dict[tuple[str, str], tuple[datetime, datetime | None]] = {}
        self._failing_by_check: Counter[str] = Counter()
        self._connectors: dict[str, ConnectorHealth] = {}
        self._records_total: Counter[tuple[str, str, str]] = Counter()
        self._exports: dict[str, ExportHealth] = {}
        self.loaded = False

    # -- write path -------------------------------------------------------------------------------
    def register_connector(self, instance: str, connector_type: str) -> None:
        with self._lock:
            self._connectors.setdefault(instance, ConnectorHealth(instance, connector_type))

    def register_export(self, export: str) -> None:
        with self._lock:
            self._exports.setdefault(export, ExportHealth(export))

    def record_export(self, export: str, outcome: str, finished_at: datetime) -> None:
        with self._lock:
            health = self._exports.get(export) or ExportHealth(export)
            runs = dict(health.runs)
            runs[outcome] = runs.get(outcome, 0) + 1
            last_success = finished_at if outcome == "succeeded" else health.last_success
            self._exports[export] = replace(health, last_success=last_success, runs=runs)

    def observe(
        self,
        kind: str,
        subject_type: str,
        subject_id: str,
        observed_at: datetime,
        checks: Iterable[Mapping[str, Any]],
        controls: Iterable[str],
        valid_until: datetime | None = None,
    ) -> None:
        """Account for one stored record: its controls' freshness, and its checks if it is the subject's newest."""
        with self._lock:
            self._observe_locked(kind, subject_type, subject_id, observed_at, checks, controls, valid_until)

    def observe_records(self, records: Iterable[Any], connector_type: str, instance: str) -> None:
        """Account for a committed run's records under one lock: freshness, check results, record counts."""
        with self._lock:
            for rec in records:
                self._observe_row_locked(rec)
                self._records_total[(connector_type, instance, rec.kind)] += 1

    def _observe_row_locked(self, row: Any) -> None:
        self._observe_locked(
            row.kind, row.subject_type, row.subject_id, row.observed_at, row.checks, row.controls, row.valid_until
        )

    def _observe_locked(
        self,
        kind: str,
        subject_type: str,
        subject_id: str,
        observed_at: datetime,
        checks: Iterable[Mapping[str, Any]],
        controls: Iterable[str],
        valid_until: datetime | None,
    ) -> None:
        for control in controls:
            newest = self._newest.get((control, kind))
            if newest is None or observed_at >= newest[0]:
                self._newest[(control, kind)] = (observed_at, valid_until)
        key = (kind, subject_type, subject_id)
        current = self._latest.get(key)
        if current is not None and current.observed_at > observed_at:
            return
        failing = frozenset(c["id"] for c in checks if c["result"] in _FAILING)
        if current is not None:
            self._failing_by_check.subtract(current.failing)
        self._failing_by_check.update(failing)
        self._latest[key] = _Latest(observed_at, failing)

    def record_run(
        self,
        instance: str,
        connector_type: str,
        status: str,
        finished_at: datetime,
        duration_seconds: float,
        problems: int,
    ) -> None:
        with self._lock:
            health = self._connectors.get(instance) or ConnectorHealth(instance, connector_type)
            runs = dict(health.runs)
            runs[status] = runs.get(status, 0) + 1
            ok = status in ("succeeded", "partial")
            self._connectors[instance] = replace(
                health,
                last_success=finished_at if ok else health.last_success,
                last_finished=finished_at,
                last_status=status,
                consecutive_failures=0 if ok else health.consecutive_failures + 1,
                last_duration_seconds=duration_seconds,
                last_problems=problems,
                runs=runs,
                problems_total=health.problems_total + problems,
            )

    def rebuild(
        self,
        latest: Iterable[Any],
        record_counts: Mapping[tuple[str, str, str], int],
        run_history: Mapping[str, list[Any]],
        run_counts: Mapping[tuple[str, str, str], int],
        problem_totals: Mapping[str, int] | None = None,
        last_seq: int | None = None,
    ) -> None:
        """Replace everything with what the database says (at start, or when it comes back)."""
        with self._lock:
            self.last_seq = last_seq
            self._latest.clear()
            self._newest.clear()
            self._failing_by_check.clear()
            for row in latest:
                self._observe_row_locked(row)
            self._records_total = Counter(record_counts)
            self._set_health_locked(run_history, run_counts, problem_totals)
            self.loaded = True

    def apply_stored(self, rows: Iterable[tuple[int, Any]]) -> None:
        """Catch up with records other writers stored after ``last_seq`` (several replicas on one database)."""
        with self._lock:
            for seq, row in rows:
                if self.last_seq is not None and seq <= self.last_seq:
                    continue
                self._observe_row_locked(row)
                self._records_total[(row.connector_type, row.instance, row.kind)] += 1
                self.last_seq = seq

    def set_health(
        self,
        run_history: Mapping[str, list[Any]],
        run_counts: Mapping[tuple[str, str, str], int],
        problem_totals: Mapping[str, int] | None = None,
    ) -> None:
        with self._lock:
            self._set_health_locked(run_history, run_counts, problem_totals)

    def _set_health_locked(
        self,
        run_history: Mapping[str, list[Any]],
        run_counts: Mapping[tuple[str, str, str], int],
        problem_totals: Mapping[str, int] | None,
    ) -> None:
        for instance, runs in run_history.items():
            if not runs:
                continue
            newest = runs[0]
            last_success = next((r.finished_at for r in runs if r.status in ("succeeded", "partial")), None)
            failures = 0
            for r in runs:
                if r.status in ("succeeded", "partial"):
                    break
                failures += 1
            counts = {s: n for (_, inst, s), n in run_counts.items() if inst == instance}
            self._connectors[instance] = ConnectorHealth(
                instance=instance,
                connector_type=newest.connector_type,
                last_success=last_success,
                last_finished=newest.finished_at,
                last_status=newest.status,
                consecutive_failures=failures,
                last_duration_seconds=newest.duration_seconds,
                last_problems=newest.problems,
                runs=counts,
                problems_total=(problem_totals or {}).get(instance, 0),
            )

    # -- read path --------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                newest=dict(self._newest),
                failing_by_check={k: v for k, v in self._failing_by_check.items() if v > 0},
                connectors=dict(self._connectors),
                records_total=dict(self._records_total),
                ready=self.loaded,
                exports=dict(self._exports),
            )


def evaluate_controls(
    snapshot: Snapshot,
    mappings: Mappings,
    now: datetime,
    overrides: Mapping[ControlRef, FreshnessPolicy],
    framework: str | None = None,
    active_kinds: Set[str] | None = None,
) -> list[tuple[ControlFreshness, int, list[str]]]:
    """Per control with mapped or stored evidence: its freshness, how many subjects fail its checks, and which.

    With ``active_kinds`` (the kinds the configured connectors produce), controls only reachable through other
    connectors' evidence are left out, so an unconfigured source does not show as missing evidence."""
    seen: dict[str, set[str]] = {}
    for control, kind in snapshot.newest:
        seen.setdefault(control, set()).add(kind)
    out = []
    for ref in mappings.all_controls(framework):
        mapped = set(mappings.kinds_by_control.get(ref, ()))
        if active_kinds is not None:
            mapped &= active_kinds
        kinds = mapped | seen.get(str(ref), set())
        if not kinds:
            continue
        evidence = []
        for kind in sorted(kinds):
            if kind not in mappings.kinds:
                continue
            newest = snapshot.newest.get((str(ref), kind))
            evidence.append(
                KindEvidence(
                    kind,
                    mappings.kinds[kind].freshness,
                    newest[0] if newest else None,
                    newest[1] if newest else None,
                )
            )
        fresh = control_freshness(ref, evidence, now, overrides.get(ref))
        checks = mappings.checks_by_control.get(ref, ())
        failing = [c for c in checks if snapshot.failing_by_check.get(c, 0) > 0]
        failures = sum(snapshot.failing_by_check.get(c, 0) for c in checks)
        out.append((fresh, failures, failing))
    return out
