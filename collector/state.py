"""In-memory state the write path updates and /metrics, status and readiness read.

Three signals are kept apart: connector health, evidence freshness (per control and kind, the evidence that keeps it
fresh longest, from each subject's latest record that counts for freshness), and control results (subjects whose
latest record fails a check). The freshness rules are :mod:`collector.freshness`'s."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from collector.freshness import (
    ControlFreshness,
    EvidenceTimes,
    KindEvidence,
    control_freshness,
    counts_for_freshness,
    fresh_from,
    longest_lived,
)
from collector.mappings import FreshnessPolicy, Mappings
from collector.model import ControlRef

__all__ = [
    "EXPORT_OUTCOMES",
    "RUN_OUTCOMES",
    "RUN_SUCCESS",
    "SCHEDULER_EVENTS",
    "ConnectorHealth",
    "ExportHealth",
    "KindTimes",
    "Snapshot",
    "State",
    "SubjectKey",
    "evaluate_controls",
]

SubjectKey = tuple[str, str, str]
"""(kind, subject type, subject id)"""

_FAILING = frozenset({"fail", "error"})

RUN_OUTCOMES = ("succeeded", "partial", "inconclusive", "failed", "interrupted")

RUN_SUCCESS = frozenset({"succeeded", "partial"})
"""Run statuses that are not failures. A run is a success for ``last_success`` when it also stored evidence; an
``inconclusive`` run (every record's checks ``error``) is a failure."""


def _stored_evidence(status: str, observations: int | None) -> bool:
    return status in RUN_SUCCESS and (observations is None or observations > 0)


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    instance: str
    connector_type: str
    last_success: datetime | None = None
    last_finished: datetime | None = None
    last_status: str | None = None
    last_error: str | None = None
    """Why the last run failed (or was inconclusive)."""
    consecutive_failures: int = 0
    last_duration_seconds: float | None = None
    last_problems: int = 0
    runs: Mapping[str, int] = field(default_factory=dict)
    problems_total: int = 0


EXPORT_OUTCOMES = ("succeeded", "failed", "skipped")
"""Scheduled export runs: ``skipped`` when this slot's bundle is already at the destination."""


SCHEDULER_EVENTS = ("missed", "error", "max_instances")
"""What can befall a scheduled job: its run time passed beyond the misfire grace, it raised, or a run was skipped
because the previous one was still going."""


@dataclass(frozen=True, slots=True)
class ExportHealth:
    """A scheduled export's runs on this replica (kept in memory only: bundles live outside the store)."""

    export: str
    last_success: datetime | None = None
    runs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KindTimes:
    """Of the evidence of one kind behind one control, the records that can keep it fresh longest, whatever the
    policy: the newest, the newest without an explicit validity, and the one whose explicit validity ends last."""

    newest: EvidenceTimes
    newest_untimed: EvidenceTimes | None = None
    longest_timed: EvidenceTimes | None = None

    @classmethod
    def of(cls, ev: EvidenceTimes) -> KindTimes:
        return cls(ev, ev if ev.valid_until is None else None, ev if ev.valid_until is not None else None)

    def merge(self, ev: EvidenceTimes) -> KindTimes:
        if ev == self.newest and ev == (self.newest_untimed if ev.valid_until is None else self.longest_timed):
            return self
        newest = ev if ev.fresh_from >= self.newest.fresh_from else self.newest
        untimed, timed = self.newest_untimed, self.longest_timed
        if ev.valid_until is None:
            if untimed is None or ev.fresh_from >= untimed.fresh_from:
                untimed = ev
        elif timed is None or (ev.valid_until, ev.fresh_from) >= (timed.valid_until, timed.fresh_from):
            timed = ev
        return KindTimes(newest, untimed, timed)

    @property
    def candidates(self) -> tuple[EvidenceTimes, ...]:
        return tuple(dict.fromkeys(ev for ev in (self.newest, self.newest_untimed, self.longest_timed) if ev))

    @property
    def longest(self) -> EvidenceTimes:
        """Without the kind's TTL at hand: the explicit validity that ends last, else the newest."""
        return self.longest_timed or self.newest


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy taken under the lock: what a scrape or a status call reads."""

    evidence: dict[tuple[str, str], KindTimes]
    """(control, kind) -> the evidence that can keep the control fresh longest"""
    failing_by_check: dict[str, int]
    connectors: dict[str, ConnectorHealth]
    records_total: dict[tuple[str, str, str], int]
    ready: bool
    exports: dict[str, ExportHealth] = field(default_factory=dict)
    scheduler_events: dict[tuple[str, str], int] = field(default_factory=dict)
    """(scheduler job id, one of :data:`SCHEDULER_EVENTS`) -> how often, on this replica"""
    chain: tuple[int, str] | None = None
    """The store's chain head (seq, chain hash) at the last load or refresh."""
    spool: tuple[int, int] = (0, 0)
    """(runs waiting in the spool, runs refused since start because the spool was full)"""

    @property
    def newest(self) -> dict[tuple[str, str], tuple[datetime, datetime | None]]:
        """(control, kind) -> (freshness time, valid_until) of :attr:`KindTimes.longest`."""
        return {key: (times.longest.fresh_from, times.longest.valid_until) for key, times in self.evidence.items()}


@dataclass(slots=True)
class _Subject:
    """One (kind, subject): its latest record's failing checks, and its latest record that counts for freshness."""

    latest: datetime | None = None
    failing: frozenset[str] = frozenset()
    counted: EvidenceTimes | None = None
    controls: tuple[str, ...] = ()


def _dominates(new: EvidenceTimes, old: EvidenceTimes) -> bool:
    """A subject's newer record keeps the control fresh at least as long as its older one did, under any policy."""
    if (new.valid_until is None) != (old.valid_until is None):
        return False
    return old.valid_until is None or (new.valid_until is not None and new.valid_until >= old.valid_until)


class State:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subjects: dict[SubjectKey, _Subject] = {}
        self._evidence: dict[tuple[str, str], KindTimes] = {}
        self._dirty: set[tuple[str, str]] = set()
        """(control, kind) whose best evidence a subject's newer record may have shortened: recomputed on read."""
        self._failing_by_check: Counter[str] = Counter()
        self._connectors: dict[str, ConnectorHealth] = {}
        self._records_total: Counter[tuple[str, str, str]] = Counter()
        self._exports: dict[str, ExportHealth] = {}
        self._scheduler_events: Counter[tuple[str, str]] = Counter()
        self._unstored_runs: Counter[str] = Counter()
        """Runs per instance the database did not take (counted failed here; their rows may land later, spooled)."""
        self._unstored_streak: dict[str, tuple[int, str | None, datetime]] = {}
        """Per instance, while no run of it has been stored since: failures in a row, the last error and when."""
        self._chain: tuple[int, str] | None = None
        self._spool = (0, 0)
        self._shared: dict[Any, Any] = {}
        """One copy of each kind, subject type, control list and failing-check set, however many subjects carry it
        (100,000 subjects would otherwise hold 100,000 copies of the same few)."""
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

    def register_scheduler_job(self, job: str) -> None:
        """Export the job's event counters from zero, before anything happens to it."""
        with self._lock:
            for event in SCHEDULER_EVENTS:
                self._scheduler_events[(job, event)] += 0

    def record_scheduler_event(self, job: str, event: str) -> None:
        if event not in SCHEDULER_EVENTS:
            raise ValueError(f"unknown scheduler event {event!r}; expected one of {SCHEDULER_EVENTS}")
        with self._lock:
            self._scheduler_events[(job, event)] += 1

    def observe(
        self,
        kind: str,
        subject_type: str,
        subject_id: str,
        observed_at: datetime,
        checks: Iterable[Mapping[str, Any]],
        controls: Iterable[str],
        valid_until: datetime | None = None,
        collected_at: datetime | None = None,
    ) -> None:
        """Account for one stored record: its controls' freshness, and its checks if it is the subject's newest."""
        with self._lock:
            self._observe_locked(
                kind, subject_type, subject_id, observed_at, list(checks), tuple(controls), valid_until, collected_at
            )

    def observe_records(self, records: Iterable[Any], connector_type: str, instance: str) -> None:
        """Account for a committed run's records under one lock: freshness, check results, record counts."""
        with self._lock:
            for rec in records:
                self._observe_row_locked(rec)
                self._records_total[(connector_type, instance, rec.kind)] += 1

    def _observe_row_locked(self, row: Any) -> None:
        self._observe_locked(
            row.kind,
            row.subject_type,
            row.subject_id,
            row.observed_at,
            row.checks,
            row.controls,
            row.valid_until,
            row.collected_at,
        )

    def _observe_locked(
        self,
        kind: str,
        subject_type: str,
        subject_id: str,
        observed_at: datetime,
        checks: Sequence[Mapping[str, Any]],
        controls: Sequence[str],
        valid_until: datetime | None,
        collected_at: datetime | None,
    ) -> None:
        key = (kind, subject_type, subject_id)
        at = fresh_from(observed_at, collected_at)
        subject = self._subjects.get(key)
        if subject is None:
            shared = self._shared
            kind = shared.setdefault(kind, kind)
            key = (kind, shared.setdefault(subject_type, subject_type), subject_id)
            subject = self._subjects[key] = _Subject()
        if subject.latest is None or at >= subject.latest:
            failing = frozenset(c["id"] for c in checks if c["result"] in _FAILING)
            failing = self._shared.setdefault(failing, failing)
            if subject.failing:
                self._failing_by_check.subtract(subject.failing)
            if failing:
                self._failing_by_check.update(failing)
            subject.latest, subject.failing = at, failing
        if not counts_for_freshness(checks) or (subject.counted is not None and at < subject.counted.fresh_from):
            return
        ev = EvidenceTimes(at, valid_until)
        tags = tuple(controls)
        tags = self._shared.setdefault(tags, tags)
        old, old_tags = subject.counted, subject.controls
        subject.counted, subject.controls = ev, tags
        for control in tags:
            times = self._evidence.get((control, kind))
            self._evidence[(control, kind)] = KindTimes.of(ev) if times is None else times.merge(ev)
        if old is not None and (old_tags != tags or not _dominates(ev, old)):
            self._dirty.update((control, kind) for control in old_tags)

    def _recompute_dirty_locked(self) -> None:
        if not self._dirty:
            return
        kinds = {kind for _, kind in self._dirty}
        rebuilt: dict[tuple[str, str], KindTimes] = {}
        for (kind, _, _), subject in self._subjects.items():
            if kind not in kinds or subject.counted is None:
                continue
            for control in subject.controls:
                if (control, kind) in self._dirty:
                    times = rebuilt.get((control, kind))
                    ev = subject.counted
                    rebuilt[(control, kind)] = KindTimes.of(ev) if times is None else times.merge(ev)
        for key in self._dirty:
            if key in rebuilt:
                self._evidence[key] = rebuilt[key]
            else:
                self._evidence.pop(key, None)
        self._dirty.clear()

    def record_run(
        self,
        instance: str,
        connector_type: str,
        status: str,
        finished_at: datetime,
        duration_seconds: float,
        problems: int,
        *,
        observations: int | None = None,
        error: str | None = None,
        stored: bool = True,
    ) -> None:
        """``observations``: records the run stored; a run that stored none is no success for ``last_success``.
        ``stored``: false when the database did not take the run: it stays counted as failed (and in the
        consecutive failures) when the connector health is next reloaded from the database."""
        with self._lock:
            if stored:
                self._unstored_streak.pop(instance, None)
            else:
                self._unstored_runs[instance] += 1
                streak, _, _ = self._unstored_streak.get(instance, (0, None, finished_at))
                self._unstored_streak[instance] = (streak + 1, error, finished_at)
            health = self._connectors.get(instance) or ConnectorHealth(instance, connector_type)
            runs = dict(health.runs)
            runs[status] = runs.get(status, 0) + 1
            ok = status in RUN_SUCCESS
            self._connectors[instance] = replace(
                health,
                last_success=finished_at if _stored_evidence(status, observations) else health.last_success,
                last_finished=finished_at,
                last_status=status,
                last_error=None if ok else error,
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
            self._subjects.clear()
            self._shared.clear()
            self._evidence.clear()
            self._dirty.clear()
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
            last_success = next((r.finished_at for r in runs if _stored_evidence(r.status, r.observations)), None)
            failures = 0
            for r in runs:
                if r.status in RUN_SUCCESS:
                    break
                failures += 1
            counts = {s: n for (_, inst, s), n in run_counts.items() if inst == instance}
            health = ConnectorHealth(
                instance=instance,
                connector_type=newest.connector_type,
                last_success=last_success,
                last_finished=newest.finished_at,
                last_status=newest.status,
                last_error=None if newest.status in RUN_SUCCESS else newest.error,
                consecutive_failures=failures,
                last_duration_seconds=newest.duration_seconds,
                last_problems=newest.problems,
                runs=counts,
                problems_total=(problem_totals or {}).get(instance, 0),
            )
            self._connectors[instance] = self._with_unstored_locked(health)

    def _with_unstored_locked(self, health: ConnectorHealth) -> ConnectorHealth:
        """Health from the database plus the runs it never received (a reload must not forget an outage)."""
        unstored = self._unstored_runs.get(health.instance, 0)
        if not unstored:
            return health
        runs = dict(health.runs)
        runs["failed"] = runs.get("failed", 0) + unstored
        health = replace(health, runs=runs)
        streak = self._unstored_streak.get(health.instance)
        if streak is None:
            return health
        failures, error, at = streak
        return replace(
            health,
            consecutive_failures=health.consecutive_failures + failures,
            last_status="failed",
            last_error=error,
            last_finished=at,
        )

    def set_chain_head(self, seq: int, chain_hash: str) -> None:
        with self._lock:
            self._chain = (seq, chain_hash)

    def set_spool(self, spooled_runs: int, refused_runs: int) -> None:
        """Runs waiting in the spool for the database, and runs given up because the spool was full."""
        with self._lock:
            self._spool = (spooled_runs, refused_runs)

    # -- read path --------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            self._recompute_dirty_locked()
            return Snapshot(
                evidence=dict(self._evidence),
                failing_by_check={k: v for k, v in self._failing_by_check.items() if v > 0},
                connectors=dict(self._connectors),
                records_total=dict(self._records_total),
                ready=self.loaded,
                exports=dict(self._exports),
                scheduler_events=dict(self._scheduler_events),
                chain=self._chain,
                spool=self._spool,
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
    for control, kind in snapshot.evidence:
        seen.setdefault(control, set()).add(kind)
    out = []
    for ref in mappings.all_controls(framework):
        mapped = set(mappings.kinds_by_control.get(ref, ()))
        if active_kinds is not None:
            mapped &= active_kinds
        kinds = mapped | seen.get(str(ref), set())
        if not kinds:
            continue
        override = overrides.get(ref)
        evidence = []
        for kind in sorted(kinds):
            if kind not in mappings.kinds:
                continue
            policy = mappings.kinds[kind].freshness
            times = snapshot.evidence.get((str(ref), kind))
            best = longest_lived(times.candidates, policy, override) if times else None
            evidence.append(
                KindEvidence(kind, policy, best.fresh_from if best else None, best.valid_until if best else None)
            )
        fresh = control_freshness(ref, evidence, now, override)
        checks = mappings.checks_by_control.get(ref, ())
        failing = [c for c in checks if snapshot.failing_by_check.get(c, 0) > 0]
        failures = sum(snapshot.failing_by_check.get(c, 0) for c in checks)
        out.append((fresh, failures, failing))
    return out
