"""Several replicas on one PostgreSQL database: each job runs once per interval, a dead replica's run is re-run.

Every replica schedules every job on the same clock-aligned slots (``slot_of``). A run first takes a
PostgreSQL advisory lock for its job on a connection held for the whole run, then claims the slot in
``run_leases``; a slot already claimed is skipped. The catch-up run each replica schedules at start-up claims
the slot whose start is nearest (``catch_up_slot``), so a start late in a slot does not run the job twice within
moments: once to catch up and again at the next slot's start. The lock dies with the connection, so a lease still
``running`` whose lock is free belongs to a replica that died mid-run: its run is recorded ``interrupted``
and the job runs again at once. SQLite is one file on one node: there the daemon is a single replica, and a
lock file beside the database (``<database>.lock``, holding the holder's pid and host) refuses a second daemon.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import BigInteger, Connection, Engine, bindparam, create_engine, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from collector.config import ResolvedInstance, Schedule
from collector.store import RunRecord, Store
from collector.store.schema import collection_runs, run_leases

__all__ = [
    "Coordination",
    "DatabaseInUse",
    "PostgresCoordination",
    "SchemaMigrationBusy",
    "SingleReplica",
    "catch_up_slot",
    "coordination_for",
    "job_lock_key",
    "replica_identity",
    "slot_of",
]

log = structlog.get_logger("collector.coordination")

T = TypeVar("T")
RunFn = Callable[[ResolvedInstance, str | None], Any]
"""``Runner.run(instance, run_id)``"""

HEARTBEAT_SECONDS = 5.0
MIGRATION_WAIT_SECONDS = 10.0
_CRON_SLOT_SECONDS = 60


def _advisory(function: str, key: int) -> Any:
    return getattr(func, function)(bindparam("key", key, type_=BigInteger))


class SchemaMigrationBusy(RuntimeError):
    """Another replica holds the migration lock; this one waits and tries again."""


class DatabaseInUse(RuntimeError):
    """Another daemon holds the SQLite database's lock file (or the lock file cannot be opened)."""


def replica_identity() -> str:
    """``host:pid``: the pod name in Kubernetes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _slot_seconds(schedule: Schedule) -> float:
    return schedule.interval.total_seconds() if schedule.interval is not None else _CRON_SLOT_SECONDS


def slot_of(schedule: Schedule, now: datetime) -> int:
    """The scheduling interval ``now`` falls in, counted from the Unix epoch (cron: the minute)."""
    return int(now.timestamp() // _slot_seconds(schedule))


def catch_up_slot(schedule: Schedule, now: datetime) -> int:
    """The slot a run started off the grid at ``now`` stands for: the one whose start is nearest. Late in a slot
    that is the next one, whose aligned run it replaces; every run is then at least half an interval apart."""
    seconds = _slot_seconds(schedule)
    return int((now.timestamp() + seconds / 2) // seconds)


def job_lock_key(schema: str, name: str) -> int:
    """A signed 64-bit advisory lock key; the schema keeps deployments sharing a database apart."""
    digest = hashlib.sha256(f"evidence-collector:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Coordination(Protocol):
    shared: bool
    """True when several replicas may run: jobs fire on aligned slots and state is reloaded from the database."""

    def run(self, instance: ResolvedInstance, catch_up: bool = False) -> Any:
        """Run the job for the current slot unless it already ran; ``catch_up``: the off-grid run at start-up."""
        ...

    def run_exclusive(self, job: str, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` on one replica at a time (scheduled exports); None when another replica holds ``job``."""
        ...

    def upgrade_schema(self) -> None: ...

    def acquire(self) -> None:
        """Called once as the daemon starts; raises DatabaseInUse when this database cannot take another daemon."""
        ...

    def dispose(self) -> None: ...


class SingleReplica:
    """SQLite (or one replica): run every job when it fires. A daemon holds the database's lock file for its life."""

    shared = False

    def __init__(self, store: Store, run_fn: RunFn) -> None:
        self.store = store
        self.run_fn = run_fn
        self._lock_file: int | None = None

    def run(self, instance: ResolvedInstance, catch_up: bool = False) -> Any:
        return self.run_fn(instance, None)

    def run_exclusive(self, job: str, fn: Callable[[], T]) -> T | None:
        return fn()

    def upgrade_schema(self) -> None:
        self.store.upgrade()

    def acquire(self) -> None:
        """Take ``<database>.lock`` (an OS lock, released when the process ends however it ends) and write this
        daemon's identity into it; a second daemon on the same file is refused, naming the first."""
        path = self.lock_path()
        if path is None or self._lock_file is not None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatabaseInUse(f"cannot open the database lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUse(
                f"another daemon already runs on this SQLite database ({holder}; lock file {path}). "
                "SQLite takes one daemon: stop the other one, or use PostgreSQL to run several replicas."
            ) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        identity = f"pid {os.getpid()} on host {socket.gethostname()}, started {started}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, identity, 0)
        self._lock_file = fd
        log.info("database_lock_acquired", lock_file=path)

    def lock_path(self) -> str | None:
        """``<database>.lock`` beside a SQLite file; None for an in-memory database."""
        database = (make_url(self.store.url).database or "").removeprefix("file:")
        if not database or database.startswith(":memory:"):
            return None
        return f"{os.path.abspath(database)}.lock"

    def dispose(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None


@dataclass(frozen=True, slots=True)
class _Lease:
    run_id: str
    slot: int
    holder: str
    state: str
    started_at: datetime
    heartbeat_at: datetime


class _Heartbeat:
    """Refreshes the lease's heartbeat on the lock connection while the run is in progress."""

    def __init__(self, conn: Connection, name: str, run_id: str, clock: Callable[[], datetime]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(conn, name, run_id, clock), name=f"heartbeat-{name}", daemon=True
        )

    def _beat(self, conn: Connection, name: str, run_id: str, clock: Callable[[], datetime]) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                conn.execute(
                    update(run_leases)
                    .where(run_leases.c.instance == name, run_leases.c.run_id == run_id)
                    .values(heartbeat_at=clock())
                )
            except SQLAlchemyError as exc:
                log.warning("lease_heartbeat_failed", instance=name, run_id=run_id, error=f"{type(exc).__name__}")

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class PostgresCoordination:
    """Advisory lock per job + a lease row per job: once per slot across replicas, dead runs taken over."""

    shared = True

    def __init__(
        self,
        store: Store,
        run_fn: RunFn,
        on_interrupted: Callable[[RunRecord], None] = lambda _run: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.run_fn = run_fn
        self.on_interrupted = on_interrupted
        self.clock = clock
        self.holder = holder or replica_identity()
        self.engine: Engine = create_engine(store.url, poolclass=NullPool, connect_args={"connect_timeout": 5})

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema -----------------------------------------------------------------------------------
    def upgrade_schema(self) -> None:
        """Migrate under a database-wide lock, so replicas starting together migrate once and the rest wait."""
        with self._lock_connection() as conn:
            key = job_lock_key(self._schema(conn), "(schema migration)")
            conn.execute(text(f"SET lock_timeout = '{int(MIGRATION_WAIT_SECONDS * 1000)}ms'"))
            try:
                conn.execute(select(_advisory("pg_advisory_lock", key)))
            except SQLAlchemyError as exc:
                raise SchemaMigrationBusy(
                    f"another replica is still migrating the database schema after {MIGRATION_WAIT_SECONDS:g}s"
                ) from exc
            try:
                self.store.upgrade()
            finally:
                conn.execute(select(_advisory("pg_advisory_unlock", key)))

    def acquire(self) -> None:
        return None

    # -- runs -------------------------------------------------------------------------------------
    def run(self, instance: ResolvedInstance, catch_up: bool = False) -> Any:
        name = instance.config.name
        started: list[bool] = []
        error = ""
        try:
            with self._try_job_lock(name) as (conn, locked):
                if not locked:
                    self._held_elsewhere(conn, name)
                    return None
                return self._run_locked(conn, instance, catch_up, started)
        except SQLAlchemyError as exc:
            if started:
                log.error("coordination_unavailable", instance=name, error=f"{type(exc).__name__}: {exc}")
                return None
            error = f"{type(exc).__name__}: {exc}"
        # The database cannot be reached to claim the slot: collect anyway (the run is spooled and counted).
        # Replicas that all lost the database may each collect this slot; evidence is duplicated, never lost.
        log.error("coordination_unavailable_running_unclaimed", instance=name, error=error)
        return self.run_fn(instance, None)

    def run_exclusive(self, job: str, fn: Callable[[], T]) -> T | None:
        """Run ``fn`` unless another replica holds ``job``'s advisory lock (then it is skipped: None)."""
        try:
            with self._try_job_lock(job) as (_conn, locked):
                if not locked:
                    log.debug("run_skipped", job=job, reason="running on another replica")
                    return None
                return fn()
        except SQLAlchemyError as exc:
            log.error("coordination_unavailable", job=job, error=f"{type(exc).__name__}: {exc}")
            return None

    def _run_locked(self, conn: Connection, instance: ResolvedInstance, catch_up: bool, started: list[bool]) -> Any:
        name = instance.config.name
        now = self.clock()
        schedule = instance.config.schedule
        slot = slot_of(schedule, now)
        lease = self._lease(conn, name)
        if lease is not None and lease.state == "running":
            self._take_over(conn, instance, lease, now)
        elif lease is not None and lease.slot >= slot:
            log.debug("run_skipped", instance=name, reason="already ran in this interval", holder=lease.holder)
            return None
        if catch_up:
            slot = catch_up_slot(schedule, now)
        run_id = str(uuid.uuid4())
        self._claim(conn, name, run_id, slot, now)
        started.append(True)
        with _Heartbeat(conn, name, run_id, self.clock):
            outcome = self.run_fn(instance, run_id)
        conn.execute(
            update(run_leases)
            .where(run_leases.c.instance == name, run_leases.c.run_id == run_id)
            .values(state="done", heartbeat_at=self.clock())
        )
        return outcome

    def _take_over(self, conn: Connection, instance: ResolvedInstance, lease: _Lease, now: datetime) -> None:
        """The lease's holder died mid-run (its lock is gone): record the run interrupted unless it was stored."""
        name = instance.config.name
        stored = conn.execute(select(collection_runs.c.status).where(collection_runs.c.id == lease.run_id)).scalar()
        if stored is None:
            run = RunRecord(
                id=lease.run_id,
                connector_type=instance.config.type,
                instance=name,
                started_at=lease.started_at,
                finished_at=now,
                status="interrupted",
                observations=0,
                error=(
                    f"replica {lease.holder} stopped mid-run (last heartbeat {lease.heartbeat_at.isoformat()}); "
                    f"re-run by {self.holder}"
                ),
                config_hash=instance.config_hash,
            )
            self.store.commit_run(run, [])
            self.on_interrupted(run)
        log.warning("run_taken_over", instance=name, run_id=lease.run_id, dead_holder=lease.holder, stored=stored)

    def _held_elsewhere(self, conn: Connection, name: str) -> None:
        lease = self._lease(conn, name)
        if lease is None:
            return
        silent_seconds = (self.clock() - lease.heartbeat_at).total_seconds()
        if lease.state == "running" and silent_seconds > 3 * HEARTBEAT_SECONDS:
            log.warning("lease_holder_unresponsive", instance=name, holder=lease.holder, silent_seconds=silent_seconds)
        else:
            log.debug("run_skipped", instance=name, reason="running on another replica", holder=lease.holder)

    # -- plumbing ---------------------------------------------------------------------------------
    def _lock_connection(self) -> Any:
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def _try_job_lock(self, job: str) -> Iterator[tuple[Connection, bool]]:
        """The lock connection and whether ``job``'s advisory lock was taken; released on leaving."""
        with self._lock_connection() as conn:
            key = job_lock_key(self._schema(conn), job)
            locked = bool(conn.execute(select(_advisory("pg_try_advisory_lock", key))).scalar_one())
            try:
                yield conn, locked
            finally:
                if locked:
                    conn.execute(select(_advisory("pg_advisory_unlock", key)))

    @staticmethod
    def _schema(conn: Connection) -> str:
        return str(conn.execute(text("SELECT current_schema()")).scalar_one())

    @staticmethod
    def _lease(conn: Connection, name: str) -> _Lease | None:
        row = conn.execute(select(run_leases).where(run_leases.c.instance == name)).one_or_none()
        if row is None:
            return None
        return _Lease(row.run_id, row.slot, row.holder, row.state, row.started_at, row.heartbeat_at)

    def _claim(self, conn: Connection, name: str, run_id: str, slot: int, now: datetime) -> None:
        values = {"run_id": run_id, "slot": slot, "holder": self.holder, "state": "running"}
        values |= {"started_at": now, "heartbeat_at": now}
        stmt = postgresql.insert(run_leases).values(instance=name, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["instance"], set_=values))


def coordination_for(
    store: Store, run_fn: RunFn, on_interrupted: Callable[[RunRecord], None] = lambda _run: None
) -> Coordination:
    if store.dialect == "postgresql":
        return PostgresCoordination(store, run_fn, on_interrupted)
    return SingleReplica(store, run_fn)
