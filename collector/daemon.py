"""The long-running service: APScheduler jobs per connector instance, HTTP listener, graceful stop."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from collector import __version__
from collector.config import AppConfig, ExportSchedule, LoadedConfig, ResolvedInstance
from collector.coordination import coordination_for
from collector.coverage import basis_for_config
from collector.export.schedule import run_scheduled_export
from collector.http import WebServer, bind
from collector.metrics import EvidenceMetrics, StateSync
from collector.runner import Runner
from collector.spool import ChainNotContinued, DurableWriter, Spool
from collector.state import State
from collector.store import RunRecord, Store
from collector.web import Sources, build_app, web_context

__all__ = ["Daemon", "load_state", "refresh_state", "spool_directory", "state_refresh_seconds", "trigger_for"]

log = structlog.get_logger("collector.daemon")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXPORT_MISFIRE_GRACE_SECONDS = 600
"""A scheduled export still runs when the pool was busy at its time, up to this late (its bundle is named then)."""
_SCHEDULER_EVENT_NAMES = {
    EVENT_JOB_MISSED: "missed",
    EVENT_JOB_ERROR: "error",
    EVENT_JOB_MAX_INSTANCES: "max_instances",
}


_READINESS_CACHE_SECONDS = 1.0
"""/readyz and ``evidence_collector_ready`` share one answer at most this old (a scrape does not hit the database)."""
_STORE_HEALTH_SECONDS = 5.0
"""How often the spool is drained and the database file checked, between runs."""
_CANCELLED_RUN_WAIT_SECONDS = 10.0
"""After the shutdown grace, how long runs cancelled then have to record themselves ``interrupted``."""


def spool_directory(app: AppConfig, store: Store) -> Path:
    """The configured spool directory; else ``<database file>.spool`` for SQLite, and for PostgreSQL
    ``./spool/<16 hex digits of the URL's SHA-256, password hidden>``: one per database, so two databases never
    share spooled runs or a known chain head."""
    if app.spool.directory is not None:
        return app.spool.directory
    database = store.sqlite_path()
    if database is not None:
        return Path(f"{database}.spool")
    url = make_url(store.url).render_as_string(hide_password=True)
    return Path("spool", hashlib.sha256(url.encode()).hexdigest()[:16]).absolute()


def load_state(store: Store, state: State) -> None:
    """Rebuild the in-memory state from the database's summary tables, up to its newest evidence row at this moment:
    O(subjects + instances) rows, whatever the number of stored records."""
    summary = store.state_summary()
    head = store.chain_head()
    state.set_chain_head(head.seq, head.chain_hash)
    state.rebuild(
        summary.latest,
        summary.record_counts,
        summary.run_history,
        summary.run_counts,
        summary.problem_totals,
        last_seq=summary.last_seq,
    )


def refresh_state(store: Store, state: State) -> int:
    """Catch up with what other replicas stored since the last load: only the new rows, then connector health.
    Returns how many records were applied."""
    if state.last_seq is None:
        load_state(store, state)
        return 0
    applied = 0
    while rows := store.records_after(state.last_seq):
        state.apply_stored(rows)
        applied += len(rows)
    state.set_health(store.run_history(), store.run_status_counts(), store.problem_totals())
    head = store.chain_head()
    state.set_chain_head(head.seq, head.chain_hash)
    return applied


def trigger_for(instance: ResolvedInstance, aligned: bool = False) -> Any:
    """``aligned``: interval fires on multiples of the interval since the epoch, the same on every replica."""
    schedule = instance.config.schedule
    jitter = int(schedule.jitter.total_seconds()) or None
    if schedule.cron is not None:
        return CronTrigger(**_cron_fields(schedule.cron), timezone=UTC, jitter=jitter)
    assert schedule.interval is not None
    start_date = _EPOCH if aligned else None
    return IntervalTrigger(
        seconds=schedule.interval.total_seconds(), start_date=start_date, timezone=UTC, jitter=jitter
    )


def state_refresh_seconds(loaded: LoadedConfig) -> float:
    """How often a replica reloads state others wrote: the shortest interval, between 5 s and 60 s."""
    intervals = [i.config.schedule.interval.total_seconds() for i in loaded.instances if i.config.schedule.interval]
    return min(max(min(intervals, default=60.0), 5.0), 60.0)


def _cron_fields(expr: str) -> dict[str, str]:
    minute, hour, day, month, day_of_week = expr.split()
    return {"minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": day_of_week}


class Daemon:
    def __init__(self, loaded: LoadedConfig, *, accept_new_chain: bool = False) -> None:
        self.loaded = loaded
        self.store = Store(loaded.app.database.url)
        spool = Spool(spool_directory(loaded.app, self.store), loaded.app.spool.max_bytes)
        self.writer = DurableWriter(self.store, spool, accept_new_chain=accept_new_chain)
        self.state = State()
        for inst in loaded.instances:
            self.state.register_connector(inst.config.name, inst.config.type)
        for export in loaded.app.exports:
            self.state.register_export(export.name)
        self.shutdown = threading.Event()
        self.sync = StateSync(datetime.now(UTC))
        self._refresh_lock = threading.Lock()
        # one path into the in-memory state: every stored record (this process's, other replicas', the `attest`
        # command's) reaches it through refresh_state, right after each local run and on a timer
        self.runner = Runner(
            self.store, self.state, loaded.mappings, shutdown=self.shutdown, observe=False, writer=self.writer
        )
        self._readiness_lock = threading.Lock()
        self._readiness: tuple[float, tuple[bool, str]] | None = None
        self.coordination = coordination_for(self.store, self.runner.run, self._count_interrupted)
        self.registry = CollectorRegistry(auto_describe=True)
        self.coverage_basis = basis_for_config(loaded)
        self.registry.register(
            EvidenceMetrics(
                self.state,
                loaded.mappings,
                loaded.overrides,
                version=__version__,
                coverage=self.coverage_basis,
                active_kinds=loaded.active_kinds,
                sync=self.sync,
                readiness=self.readiness,
            )
        )
        workers = max(2, min(16, len(loaded.instances) + len(loaded.app.exports)))
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_listener(
            self._count_scheduler_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES
        )
        self.http: WebServer | None = None
        self.web_store: Store | None = None
        self._db_ready = threading.Event()

    def _count_scheduler_event(self, event: JobEvent) -> None:
        """APScheduler logs these itself; here they are counted for /metrics."""
        self.state.record_scheduler_event(event.job_id, _SCHEDULER_EVENT_NAMES[event.code])

    # -- readiness --------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        """What /readyz answers and ``evidence_collector_ready`` exports: one answer, at most a second old."""
        with self._readiness_lock:
            now = time.monotonic()
            if self._readiness is None or now - self._readiness[0] >= _READINESS_CACHE_SECONDS:
                self._readiness = (now, self._check_readiness())
            return self._readiness[1]

    def _check_readiness(self) -> tuple[bool, str]:
        if not self._db_ready.is_set():
            return False, "database not initialised yet"
        try:
            self.store.ping()
        except Exception as exc:  # noqa: BLE001 - reported on /readyz, nothing else to do
            return False, f"database unreachable: {type(exc).__name__}"
        health = self.writer.health()
        spooled = self.writer.spooled_runs()
        if not health.ok:
            return False, f"database not writable: {health.reason} ({spooled} runs waiting in the spool)"
        suffix = f"; {spooled} runs waiting in the spool" if spooled else ""
        return True, (
            f"ready: {len(self.loaded.mappings.catalogs)} catalogs, {len(self.loaded.instances)} connectors{suffix}"
        )

    def _store_health(self) -> None:
        """Between runs: commit what waits in the spool once the database takes it; publish the spool figures."""
        if self._db_ready.is_set() and self.writer.spooled_runs():
            try:
                drained = self.writer.drain()
            except Exception as exc:  # noqa: BLE001 - still down: the runs stay spooled, /readyz says why
                self.writer.note_problem(f"{type(exc).__name__}: {exc}")
                log.warning("spool_drain_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                log.info("spool_drained", runs=drained)
                self._refresh_state()
        self._publish_spool()

    def _publish_spool(self) -> None:
        spool = self.writer.spool
        if spool is not None:
            self.state.set_spool(len(spool.entries()), spool.refused_runs)

    def prepare_database(self) -> bool:
        """Migrate and rebuild the in-memory state; on failure the daemon stays up and tries again."""
        try:
            self.coordination.upgrade_schema()
            self.writer.remember_identity()
            load_state(self.store, self.state)
        except Exception as exc:  # noqa: BLE001 - database down: /readyz says so, a job retries
            self.sync.failed(datetime.now(UTC))
            log.error("database_unavailable", error=f"{type(exc).__name__}: {exc}")
            return False
        self.sync.synced()
        try:
            self.writer.check_chain()
        except ChainNotContinued as exc:
            self.writer.note_problem(str(exc))
            log.error("chain_not_continued", error=str(exc))
        self._db_ready.set()
        log.info("database_ready", revision=self.store.current_revision(), url=self.store.url)
        return True

    def _count_interrupted(self, run: RunRecord) -> None:
        duration = (run.finished_at - run.started_at).total_seconds()
        self.state.record_run(run.instance, run.connector_type, run.status, run.finished_at, duration, 0)

    def _collect(self, instance: ResolvedInstance, catch_up: bool = False) -> None:
        self.coordination.run(instance, catch_up=catch_up)
        self._publish_spool()
        self._refresh_state()

    def _refresh_state(self) -> None:
        """New records reach the metrics: this replica's runs, other replicas', and attestations from the CLI.

        When the database cannot be read, the last known state stays and /metrics says since when it is not
        current (``evidence_collector_state_current``)."""
        if not self._db_ready.is_set():
            return
        try:
            with self._refresh_lock:
                refresh_state(self.store, self.state)
        except SQLAlchemyError as exc:  # the database is down: /readyz says so, the next refresh retries
            stale_since = self.sync.failed(datetime.now(UTC))
            log.warning(
                "state_refresh_failed", error=f"{type(exc).__name__}: {exc}", stale_since=stale_since.isoformat()
            )
            return
        if self.sync.synced():
            log.info("state_current_again")

    def _export(self, export: ExportSchedule) -> None:
        """On PostgreSQL, the job's advisory lock lets one replica at a time write the schedule's bundle."""
        job = partial(run_scheduled_export, export, self.loaded, self.store, self.state)
        self.coordination.run_exclusive(f"export:{export.name}", job)

    def _recover_database(self) -> None:
        if self.prepare_database():
            self.scheduler.remove_job("database-recovery")

    def _next_runs(self) -> dict[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("collect:"):
                out[job.id.removeprefix("collect:")] = getattr(job, "next_run_time", None)
        return out

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Raises OSError when the listen address is taken, DatabaseInUse when another daemon holds this (SQLite)
        database; the address is bound first, so neither leaves anything behind."""
        http = self.loaded.app.http
        sock = bind(http.host, http.port, http.backlog)
        try:
            self.coordination.acquire()
        except BaseException:
            sock.close()
            raise
        # the listener reads through an engine of its own: an API flood never holds the collector's connections
        self.web_store = Store(self.loaded.app.database.url)
        sources = Sources(self.loaded, self.state, self.web_store, self.coverage_basis, next_runs=self._next_runs)
        app = build_app(self.registry, self.readiness, web_context(sources, http.auth))
        self.http = WebServer(
            app,
            sock,
            max_connections=http.max_connections,
            backlog=http.backlog,
            header_timeout_seconds=http.header_timeout.total_seconds(),
            keep_alive_timeout_seconds=http.keep_alive_timeout.total_seconds(),
        )
        self.http.start()
        log.info("http_listening", host=http.host, port=self.http.port)
        if not self.prepare_database():
            self.scheduler.add_job(
                self._recover_database, IntervalTrigger(seconds=15), id="database-recovery", replace_existing=True
            )
        now = datetime.now(UTC)
        shared = self.coordination.shared
        for inst in self.loaded.instances:
            schedule = inst.config.schedule
            first_run = now + timedelta(seconds=1) if schedule.interval is not None else None
            self.scheduler.add_job(
                self._collect,
                trigger_for(inst, aligned=shared),
                args=[inst],
                id=f"collect:{inst.config.name}",
                name=inst.config.name,
                replace_existing=True,
                misfire_grace_time=int(schedule.misfire_grace.total_seconds()) or None,
                **({} if shared or first_run is None else {"next_run_time": first_run}),
            )
            if shared and first_run is not None:
                self.scheduler.add_job(
                    self._collect,
                    DateTrigger(first_run),
                    args=[inst],
                    kwargs={"catch_up": True},
                    id=f"catch-up:{inst.config.name}",
                )
        for export in self.loaded.app.exports:
            self.scheduler.add_job(
                self._export,
                CronTrigger(**_cron_fields(export.cron), timezone=UTC),
                args=[export],
                id=f"export:{export.name}",
                name=export.name,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=_EXPORT_MISFIRE_GRACE_SECONDS,
            )
        self.scheduler.add_job(
            self._refresh_state, IntervalTrigger(seconds=state_refresh_seconds(self.loaded)), id="state-refresh"
        )
        self.scheduler.add_job(self._store_health, IntervalTrigger(seconds=_STORE_HEALTH_SECONDS), id="store-health")
        checkpoints = self.loaded.app.checkpoints
        if checkpoints is not None:
            self.scheduler.add_job(
                self._checkpoint,
                IntervalTrigger(seconds=checkpoints.every.total_seconds()),
                id="checkpoint",
                next_run_time=datetime.now(UTC) + timedelta(seconds=1),
            )
        for job in self.scheduler.get_jobs():
            self.state.register_scheduler_job(job.id)
        self.scheduler.start()
        log.info("scheduler_started", jobs=[j.id for j in self.scheduler.get_jobs()])

    def _checkpoint(self) -> None:
        """Sign the chain head and add it to the checkpoint sink (outside the database)."""
        from collector.checkpoint import write_checkpoint
        from collector.export.signing import SIGNING_KEY_ENV, load_signing_key

        cfg = self.loaded.app.checkpoints
        if cfg is None or not self._db_ready.is_set():
            return
        environ = None if cfg.sign_key_env is None else {SIGNING_KEY_ENV: os.environ.get(cfg.sign_key_env, "")}
        try:
            key = load_signing_key(cfg.sign_key_file, environ)
            cp = write_checkpoint(self.store, Path(cfg.destination), key, datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - logged; the next slot tries again
            log.error("checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
            return
        log.info("checkpoint_written", seq=cp.seq, chain_hash=cp.chain_hash, path=str(cp.path))

    def stop(self) -> None:
        """Stop scheduling; let running runs finish within ``shutdown_grace``; then cancel the rest, which are
        recorded ``interrupted``."""
        grace = self.loaded.app.shutdown_grace.total_seconds()
        log.info("shutdown_started", grace_seconds=grace)
        self.scheduler.pause()
        done = threading.Event()

        def wait_for_jobs() -> None:
            self.scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=wait_for_jobs, name="scheduler-shutdown", daemon=True).start()
        if not done.wait(grace):
            log.warning("shutdown_grace_exceeded", grace_seconds=grace)
            self.shutdown.set()
            if not done.wait(_CANCELLED_RUN_WAIT_SECONDS):
                log.error("runs_still_running_at_exit")
        self.shutdown.set()
        if self.http is not None:
            self.http.stop()
        if self.web_store is not None:
            self.web_store.dispose()
        self.coordination.dispose()
        self.store.dispose()
        log.info("shutdown_finished")

    def run_forever(self) -> None:
        stop = threading.Event()

        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        self.start()
        stop.wait()
        self.stop()
