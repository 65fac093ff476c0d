"""One custom Prometheus collector over the in-memory state; a scrape never touches the database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Set
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.coverage import CoverageBasis, CoverageState, compute_coverage
from collector.freshness import STATUS_CODE, Freshness
from collector.mappings import FreshnessPolicy, Mappings
from collector.model import ControlRef
from collector.state import EXPORT_OUTCOMES, RUN_OUTCOMES, State, evaluate_controls

__all__ = ["EvidenceMetrics", "StateSync"]

_CONTROL = ["framework", "control"]
_CONNECTOR = ["connector", "connector_instance"]


class StateSync:
    """Whether the in-memory state is current with the database. The daemon reports each load or refresh; while
    the database cannot be read the state is kept as last known, and this says since when it is not current."""

    def __init__(self, started_at: datetime) -> None:
        self._lock = threading.Lock()
        self._stale_since: datetime | None = started_at

    def synced(self) -> bool:
        """The state now matches the database. True when it was not current before."""
        with self._lock:
            was_stale, self._stale_since = self._stale_since is not None, None
        return was_stale

    def failed(self, at: datetime) -> datetime:
        """The database could not be read at ``at``. Returns since when the state is not current."""
        with self._lock:
            if self._stale_since is None:
                self._stale_since = at
            return self._stale_since

    @property
    def stale_since(self) -> datetime | None:
        """None while current; else the first failed read since the last success (or the start, if never)."""
        with self._lock:
            return self._stale_since


class EvidenceMetrics(Collector):
    def __init__(
        self,
        state: State,
        mappings: Mappings,
        overrides: Mapping[ControlRef, FreshnessPolicy] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        version: str = "0",
        coverage: CoverageBasis | None = None,
        active_kinds: Set[str] | None = None,
        sync: StateSync | None = None,
        readiness: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        self.state = state
        self.mappings = mappings
        self.overrides = dict(overrides or {})
        self.clock = clock
        self.version = version
        self.active_kinds = active_kinds
        self.coverage = coverage
        """The configured connectors and attestation templates; without it ``evidence_collector_control_coverage`` is
        not exported."""
        self.sync = sync
        """The daemon's: until its state is first loaded from the database, freshness, check failures and coverage
        are unknown and not exported (rather than every control reported missing)."""
        self.readiness = readiness
        """The daemon's /readyz check: ``evidence_collector_ready`` says what /readyz says."""

    def describe(self) -> Iterator[Metric]:
        yield from _Families().all()

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        snap = self.state.snapshot()
        f = _Families()
        stale_since = self.sync.stale_since if self.sync is not None else None
        known = snap.ready or self.sync is None
        controls = (
            evaluate_controls(snap, self.mappings, now, self.overrides, active_kinds=self.active_kinds) if known else []
        )
        for fresh, n_failures, _failing in controls:
            labels = [fresh.ref.framework, fresh.ref.control]
            if fresh.age is not None:
                f.age.add_metric(labels, max(fresh.age.total_seconds(), 0.0))
            f.ttl.add_metric(labels, fresh.ttl.total_seconds())
            f.stale.add_metric(labels, 1.0 if fresh.status in (Freshness.STALE, Freshness.MISSING) else 0.0)
            f.status.add_metric(labels, float(STATUS_CODE[fresh.status]))
            f.failures.add_metric(labels, float(n_failures))
        for health in sorted(snap.connectors.values(), key=lambda h: h.instance):
            labels = [health.connector_type, health.instance]
            if health.last_success is not None:
                f.last_success.add_metric(labels, health.last_success.timestamp())
            for outcome in RUN_OUTCOMES:
                f.runs.add_metric([*labels, outcome], float(health.runs.get(outcome, 0)))
            if health.last_duration_seconds is not None:
                f.duration.add_metric(labels, health.last_duration_seconds)
            f.consecutive.add_metric(labels, float(health.consecutive_failures))
            f.problems.add_metric(labels, float(health.problems_total))
        for export in sorted(snap.exports.values(), key=lambda e: e.export):
            if export.last_success is not None:
                f.export_last_success.add_metric([export.export], export.last_success.timestamp())
            for outcome in EXPORT_OUTCOMES:
                f.export_runs.add_metric([export.export, outcome], float(export.runs.get(outcome, 0)))
        for (job, event), n in sorted(snap.scheduler_events.items()):
            f.scheduler_events.add_metric([job, event], float(n))
        for (connector_type, instance, kind), n in sorted(snap.records_total.items()):
            f.records.add_metric([connector_type, instance, kind], float(n))
        ready = self.readiness()[0] if self.readiness is not None else snap.ready
        f.ready.add_metric([], 1.0 if ready else 0.0)
        if snap.chain is not None:
            f.chain_seq.add_metric([], float(snap.chain[0]))
            f.chain_head.add_metric([snap.chain[1]], 1.0)
        f.spool_runs.add_metric([], float(snap.spool[0]))
        f.spool_refused.add_metric([], float(snap.spool[1]))
        f.state_current.add_metric([], 1.0 if snap.ready and stale_since is None else 0.0)
        if stale_since is not None:
            f.state_stale_since.add_metric([], stale_since.timestamp())
        f.info.add_metric([self.version], 1.0)
        if self.coverage is not None and known:
            for totals in compute_coverage(self.mappings, self.coverage, snap.newest, now).frameworks:
                for state in CoverageState:
                    f.coverage.add_metric([totals.framework, state.value], float(totals.counts.get(state, 0)))
        yield from f.all()


class _Families:
    """Every family this collector exposes; built fresh for each scrape."""

    def __init__(self) -> None:
        self.age = GaugeMetricFamily(
            "evidence_collector_evidence_age_seconds",
            "Age of the newest evidence mapped to the control.",
            labels=_CONTROL,
        )
        self.ttl = GaugeMetricFamily(
            "evidence_collector_evidence_ttl_seconds", "How long the control's evidence stays fresh.", labels=_CONTROL
        )
        self.stale = GaugeMetricFamily(
            "evidence_collector_evidence_stale",
            "1 when the control's evidence is stale or missing, else 0.",
            labels=_CONTROL,
        )
        self.status = GaugeMetricFamily(
            "evidence_collector_evidence_status", "Freshness: 0 fresh, 1 at_risk, 2 stale, 3 missing.", labels=_CONTROL
        )
        self.failures = GaugeMetricFamily(
            "evidence_collector_control_check_failures",
            "Subjects whose latest evidence fails a check mapped to the control.",
            labels=_CONTROL,
        )
        self.coverage = GaugeMetricFamily(
            "evidence_collector_control_coverage",
            "Controls per coverage state: automated, attested (unexpired), attestable (by a template), uncovered.",
            labels=["framework", "state"],
        )
        self.last_success = GaugeMetricFamily(
            "evidence_collector_connector_last_success_timestamp_seconds",
            "When the connector instance last finished a run that stored evidence (not only error checks).",
            labels=_CONNECTOR,
        )
        self.runs = CounterMetricFamily(
            "evidence_collector_connector_runs",
            "Collection runs by outcome; inconclusive: every record it stored has only error checks (a failure).",
            labels=[*_CONNECTOR, "outcome"],
        )
        self.duration = GaugeMetricFamily(
            "evidence_collector_connector_last_run_duration_seconds",
            "Duration of the instance's last run.",
            labels=_CONNECTOR,
        )
        self.consecutive = GaugeMetricFamily(
            "evidence_collector_connector_consecutive_failures",
            "Failed, interrupted or inconclusive runs since the last successful one.",
            labels=_CONNECTOR,
        )
        self.problems = CounterMetricFamily(
            "evidence_collector_connector_input_problems",
            "Inputs skipped as bad (malformed files, ...).",
            labels=_CONNECTOR,
        )
        self.records = CounterMetricFamily(
            "evidence_collector_evidence_records", "Evidence records stored.", labels=[*_CONNECTOR, "kind"]
        )
        self.export_last_success = GaugeMetricFamily(
            "evidence_collector_export_last_success_timestamp_seconds",
            "When the scheduled export last wrote a bundle (on this replica).",
            labels=["export"],
        )
        self.export_runs = CounterMetricFamily(
            "evidence_collector_export_runs",
            "Scheduled export runs by outcome: succeeded, failed, skipped.",
            labels=["export", "outcome"],
        )
        self.scheduler_events = CounterMetricFamily(
            "evidence_collector_scheduler_events",
            "Scheduled jobs (collect:<instance>, export:<name>, ...) that missed their run time beyond the misfire "
            "grace, raised, or were skipped while their previous run was still going (on this replica).",
            labels=["scheduler_job", "event"],
        )
        self.ready = GaugeMetricFamily(
            "evidence_collector_ready",
            "1 when /readyz answers 200: state loaded, the database reachable, writable, the same file, its chain "
            "continuing the last known head.",
        )
        self.chain_seq = GaugeMetricFamily(
            "evidence_collector_chain_seq",
            "Sequence number of the evidence chain's head (kept by Prometheus, outside the store: a fall is a "
            "truncation).",
        )
        self.chain_head = GaugeMetricFamily(
            "evidence_collector_chain_head_info",
            "The evidence chain's head hash, as a label (value 1).",
            labels=["chain_hash"],
        )
        self.spool_runs = GaugeMetricFamily(
            "evidence_collector_spool_runs",
            "Runs waiting in the on-disk spool for the database to take them.",
        )
        self.spool_refused = CounterMetricFamily(
            "evidence_collector_spool_refused_runs",
            "Spooled runs given up (oldest first) because the spool was full: evidence lost, loudly.",
        )
        self.state_current = GaugeMetricFamily(
            "evidence_collector_state_current",
            "1 when the state served is current with the database; 0 while it cannot be read (last known state).",
        )
        self.state_stale_since = GaugeMetricFamily(
            "evidence_collector_state_stale_since_timestamp_seconds",
            "Since when the state served is not current with the database (absent while it is).",
        )
        self.info = GaugeMetricFamily("evidence_collector_build_info", "Version of the collector.", labels=["version"])

    def all(self) -> list[Metric]:
        return list(vars(self).values())
