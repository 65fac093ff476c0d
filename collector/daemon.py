"""The long-running service: APScheduler jobs per connector instance, HTTP listener, graceful stop."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client.registry import CollectorRegistry

from collector import __version__
from collector.config import LoadedConfig, ResolvedInstance
from collector.http import HealthServer, build_app
from collector.metrics import EvidenceMetrics
from collector.runner import Runner
from collector.state import State
from collector.store import Store

__all__ = ["Daemon", "load_state", "trigger_for"]

log = structlog.get_logger("collector.daemon")


def load_state(store: Store, state: State) -> None:
    state.rebuild(store.latest_per_subject(), store.record_counts(), store.run_history(), store.run_status_counts())


def trigger_for(instance: ResolvedInstance) -> Any:
    schedule = instance.config.schedule
    jitter = int(schedule.jitter.total_seconds()) or None
    if schedule.cron is not None:
        return CronTrigger(**_cron_fields(schedule.cron), timezone=UTC, jitter=jitter)
    assert schedule.interval is not None
    return IntervalTrigger(seconds=schedule.interval.total_seconds(), timezone=UTC, jitter=jitter)


def _cron_fields(expr: str) -> dict[str, str]:
    minute, hour, day, month, day_of_week = expr.split()
    return {"minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": day_of_week}


class Daemon:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.store = Store(loaded.app.database.url)
        self.state = State()
        for inst in loaded.instances:
            self.state.register_connector(inst.config.name, inst.config.type)
        self.shutdown = threading.Event()
        self.runner = Runner(self.store, self.state, loaded.mappings, shutdown=self.shutdown)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(EvidenceMetrics(self.state, loaded.mappings, loaded.overrides, version=__version__))
        workers = max(2, min(16, len(loaded.instances)))
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.http: HealthServer | None = None
        self._db_ready = threading.Event()

    # -- readiness --------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if not self._db_ready.is_set():
            return False, "database not initialised yet"
        try:
            self.store.ping()
        except Exception as exc:  # reported on /readyz, nothing else to do
            return False, f"database unreachable: {type(exc).__name__}"
        return True, f"ready: {len(self.loaded.mappings.catalogs)} catalogs, {len(self.loaded.instances)} connectors"

    def prepare_database(self) -> bool:
        """Migrate and rebuild the in-memory state; on failure the daemon stays up and tries again."""
        try:
            self.store.upgrade()
            load_state(self.store, self.state)
        except Exception as exc:  # database down: /readyz says so, a job retries
            log.error("database_unavailable", error=f"{type(exc).__name__}: {exc}")
            return False
        self._db_ready.set()
        log.info("database_ready", revision=self.store.current_revision(), url=self.store.url)
        return True

    def _recover_database(self) -> None:
        if self.prepare_database():
            self.scheduler.remove_job("database-recovery")

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        http = self.loaded.app.http
        self.http = HealthServer(http.host, http.port, build_app(self.registry, self.readiness))
        self.http.start()
        log.info("http_listening", host=http.host, port=self.http.port)
        if not self.prepare_database():
            self.scheduler.add_job(
                self._recover_database, IntervalTrigger(seconds=15), id="database-recovery", replace_existing=True
            )
        now = datetime.now(UTC)
        for inst in self.loaded.instances:
            schedule = inst.config.schedule
            self.scheduler.add_job(
                self.runner.run,
                trigger_for(inst),
                args=[inst],
                id=f"collect:{inst.config.name}",
                name=inst.config.name,
                replace_existing=True,
                misfire_grace_time=int(schedule.misfire_grace.total_seconds()) or None,
                next_run_time=now + timedelta(seconds=1) if schedule.interval is not None else None,
            )
        self.scheduler.start()
        log.info("scheduler_started", jobs=[j.id for j in self.scheduler.get_jobs()])

    def stop(self) -> None:
        """Stop scheduling, let running runs finish or mark them interrupted, then exit."""
        log.info("shutdown_started", grace_seconds=self.loaded.app.shutdown_grace.total_seconds())
        self.scheduler.pause()
        self.shutdown.set()
        done = threading.Event()

        def wait_for_jobs() -> None:
            self.scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=wait_for_jobs, name="scheduler-shutdown", daemon=True).start()
        if not done.wait(self.loaded.app.shutdown_grace.total_seconds()):
            log.warning("shutdown_grace_exceeded")
        if self.http is not None:
            self.http.stop()
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
