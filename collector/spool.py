"""Runs the database could not take, kept on disk until it can; the chain head last seen, kept beside them.

A run whose commit fails (database down, read-only, disk full, file replaced or deleted, or a chain that does not
continue the head this daemon last saw) is written to the spool directory as one JSON file: its run row, its
prepared records and its cursor. Before the next commit the spool is drained oldest first, each run committed in
its own transaction (so chained in order); a run already in the database (it was committed, then the process died
before the file was removed) is not stored twice. The spool is bounded: when a new run does not fit, the oldest
spooled runs are given up, each one logged as an error and counted in
``evidence_collector_spool_refused_runs_total``; nothing leaves the spool silently.

``chain-head.json`` in the same directory holds the chain head after this daemon's last commit. A database whose
chain does not contain that link (rows removed, the chain rebuilt, another database file) is refused, and runs
wait in the spool, until the operator accepts the new chain (``run --accept-new-chain``)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from collector.store import ChainHead, PreparedRecord, RunRecord, Store

__all__ = [
    "ChainNotContinued",
    "DatabaseFileChanged",
    "DurableWriter",
    "Spool",
    "SpooledRun",
    "StoreHealth",
]

log = structlog.get_logger("collector.spool")

SPOOL_FORMAT = 1
_HEAD_FILE = "chain-head.json"
_MIN_FREE_BYTES = 1 << 20
"""Less free space than this beside a SQLite database is reported as disk full before a write fails."""


class ChainNotContinued(RuntimeError):
    """The database's chain does not contain the head this daemon last committed."""


class DatabaseFileChanged(RuntimeError):
    """The SQLite file the daemon opened was replaced or deleted: writes would go to an unlinked file."""


@dataclass(frozen=True)
class SpooledRun:
    path: Path
    run: RunRecord
    records: list[PreparedRecord]
    cursor: Any
    save_cursor: bool


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _encode(run: RunRecord, records: Sequence[PreparedRecord], cursor: Any, save_cursor: bool) -> bytes:
    def plain(obj: Any) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(obj).items()}

    document = {
        "format": SPOOL_FORMAT,
        "run": plain(run),
        "records": [plain(r) for r in records],
        "cursor": cursor,
        "save_cursor": save_cursor,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _decode(path: Path, data: bytes) -> SpooledRun:
    document = json.loads(data)
    if document.get("format") != SPOOL_FORMAT:
        raise ValueError(f"{path}: spool format {document.get('format')!r}, expected {SPOOL_FORMAT}")
    run = dict(document["run"])
    for key in ("started_at", "finished_at"):
        run[key] = _dt(run[key])
    records = []
    for raw in document["records"]:
        rec = dict(raw)
        for key in ("observed_at", "valid_until", "collected_at"):
            rec[key] = _dt(rec[key])
        records.append(PreparedRecord(**rec))
    return SpooledRun(path, RunRecord(**run), records, document["cursor"], bool(document["save_cursor"]))


class Spool:
    """A directory of runs waiting for the database, at most ``max_bytes`` together, drained oldest first."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.refused_runs = 0
        self.refused_records = 0
        self._lock = threading.Lock()
        self._counter = 0
        directory.mkdir(parents=True, exist_ok=True)

    def entries(self) -> list[Path]:
        return sorted(self.directory.glob("run-*.json"))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.entries())

    def put(self, run: RunRecord, records: Sequence[PreparedRecord], cursor: Any, save_cursor: bool) -> Path:
        """Write the run durably; give up the oldest spooled runs (loudly) while it does not fit.

        Raises OSError when the run cannot be written at all (larger than the whole spool, or the disk is full)."""
        data = _encode(run, records, cursor, save_cursor)
        if len(data) > self.max_bytes:
            self._refused(run.id, len(records), f"the run alone ({len(data)} bytes) exceeds spool.max_bytes")
            raise OSError(f"run {run.id} ({len(data)} bytes) is larger than the spool ({self.max_bytes} bytes)")
        with self._lock:
            entries = self.entries()
            used = sum(p.stat().st_size for p in entries)
            while entries and used + len(data) > self.max_bytes:
                oldest = entries.pop(0)
                used -= oldest.stat().st_size
                self._give_up(oldest)
            self._counter += 1
            name = f"run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{self._counter:06d}-{run.id}.json"
            path = self.directory / name
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(self.directory)
        log.warning("run_spooled", run_id=run.id, records=len(records), spool=str(path), spooled_runs=len(entries) + 1)
        return path

    def _give_up(self, path: Path) -> None:
        try:
            spooled = _decode(path, path.read_bytes())
            run_id, records = spooled.run.id, len(spooled.records)
        except (OSError, ValueError, KeyError, TypeError):
            run_id, records = path.name, 0
        path.unlink(missing_ok=True)
        self._refused(run_id, records, "the spool is full (spool.max_bytes); the oldest spooled run is given up")

    def _refused(self, run_id: str, records: int, why: str) -> None:
        self.refused_runs += 1
        self.refused_records += records
        log.error("spooled_run_refused", run_id=run_id, records=records, reason=why)

    def read(self, path: Path) -> SpooledRun:
        return _decode(path, path.read_bytes())

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoreHealth:
    ok: bool
    reason: str


class DurableWriter:
    """The runner's way into the store: commit, or spool when the store cannot take the run; drain before each
    commit; refuse a database whose chain does not continue the last head seen or whose file changed."""

    def __init__(self, store: Store, spool: Spool | None = None, *, accept_new_chain: bool = False) -> None:
        self.store = store
        self.spool = spool
        self.accept_new_chain = accept_new_chain
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._problem: str | None = None
        """Why the last write failed, until one succeeds (read-only, disk full, chain refused, ...)."""
        self._cursors: dict[str, Any] = {}

    # -- identity and chain ---------------------------------------------------------------------
    def remember_identity(self) -> None:
        """Note which SQLite file is open (device and inode), as the daemon's database becomes ready."""
        path = self.store.sqlite_path()
        if path is not None and path.exists():
            st = path.stat()
            self._identity = (st.st_dev, st.st_ino)

    def _check_identity(self) -> None:
        path = self.store.sqlite_path()
        if path is None or self._identity is None:
            return
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DatabaseFileChanged(f"the database file {path} was deleted; writes would be lost") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise DatabaseFileChanged(f"the database file {path} was replaced by another file since it was opened")

    def _head_path(self) -> Path | None:
        return None if self.spool is None else self.spool.directory / _HEAD_FILE

    def known_head(self) -> ChainHead | None:
        path = self._head_path()
        if path is None or not path.exists():
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
        return ChainHead(int(document["seq"]), str(document["chain_hash"]))

    def _save_head(self, head: ChainHead) -> None:
        path = self._head_path()
        if path is None:
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": head.seq, "chain_hash": head.chain_hash}) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def check_chain(self) -> None:
        """Raise ChainNotContinued unless the store's chain holds the last head this daemon saw (or the operator
        accepted a new chain, which then becomes the known head)."""
        if self.spool is None:
            return
        known = self.known_head()
        if known is None or self.accept_new_chain:
            head = self.store.chain_head()
            if known is not None and (known.seq, known.chain_hash) != (head.seq, head.chain_hash):
                log.warning("new_chain_accepted", known_seq=known.seq, known_hash=known.chain_hash, seq=head.seq)
            self._save_head(head)
            self.accept_new_chain = False
            return
        at = self.store.chain_hash_at(known.seq)
        if at == known.chain_hash:
            return
        head = self.store.chain_head()
        if at is None:
            what = f"it ends at seq {head.seq}: rows were removed or this is another database"
        else:
            what = f"its record seq {known.seq} has chain hash {at}: the chain was rebuilt"
        raise ChainNotContinued(
            f"the store's chain does not continue the last known head (seq {known.seq}, {known.chain_hash}): {what}; "
            "runs wait in the spool until an operator restarts with --accept-new-chain"
        )

    def check_disk(self) -> None:
        path = self.store.sqlite_path()
        if path is None:
            return
        directory = path.parent
        if not os.access(path if path.exists() else directory, os.W_OK):
            raise PermissionError(f"the database file {path} is read-only")
        free = shutil.disk_usage(directory).free
        if free < _MIN_FREE_BYTES:
            raise OSError(f"the disk holding {path} is full ({free} bytes free)")

    # -- health ---------------------------------------------------------------------------------
    def health(self) -> StoreHealth:
        """Not ok while the database file changed, cannot be written, or the last write failed."""
        try:
            self._check_identity()
            self.check_disk()
        except (DatabaseFileChanged, OSError) as exc:
            return StoreHealth(False, str(exc))
        problem = self._problem
        if problem is not None:
            return StoreHealth(False, f"the last write failed: {problem}")
        return StoreHealth(True, "ok")

    def note_problem(self, problem: str) -> None:
        """A write-side problem found outside a commit (the chain check at start, a failed drain)."""
        self._problem = problem

    def spooled_runs(self) -> int:
        return 0 if self.spool is None else len(self.spool.entries())

    def last_cursor(self, instance: str) -> Any:
        """The cursor of the instance's last run this process committed or spooled (when the store cannot say)."""
        return self._cursors.get(instance)

    # -- writes ---------------------------------------------------------------------------------
    def _commit(self, run: RunRecord, records: Sequence[PreparedRecord], cursor: Any, save_cursor: bool) -> None:
        self._check_identity()
        self.check_chain()
        try:
            self.store.commit_run(run, records, cursor=cursor, save_cursor=save_cursor, return_records=False)
        except IntegrityError:
            if not self.store.has_run(run.id):
                raise
            log.info("spooled_run_already_stored", run_id=run.id)
        if self.spool is not None:
            self._save_head(self.store.chain_head())

    def drain(self) -> int:
        """Commit spooled runs oldest first; stop at the first that fails (it stays). Returns runs committed."""
        if self.spool is None:
            return 0
        done = 0
        with self._lock:
            for path in self.spool.entries():
                try:
                    spooled = self.spool.read(path)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    bad = path.with_suffix(".unreadable")
                    path.rename(bad)
                    log.error("spooled_run_unreadable", spool=str(bad), error=f"{type(exc).__name__}: {exc}")
                    continue
                self._commit(spooled.run, spooled.records, spooled.cursor, spooled.save_cursor)
                self.spool.remove(path)
                done += 1
                log.info("spooled_run_committed", run_id=spooled.run.id, records=len(spooled.records))
            self._problem = None
        return done

    def commit(
        self, run: RunRecord, records: Sequence[PreparedRecord], *, cursor: Any = None, save_cursor: bool = False
    ) -> None:
        """Commit after draining the spool. Raises when the run cannot be stored; see :meth:`keep`."""
        if save_cursor:
            self._cursors[run.instance] = cursor
        try:
            if self.spool is not None and self.spool.entries():
                self.drain()
            with self._lock:
                self._commit(run, records, cursor, save_cursor)
        except Exception as exc:
            self._problem = f"{type(exc).__name__}: {exc}"
            raise
        self._problem = None

    def keep(
        self, run: RunRecord, records: Sequence[PreparedRecord], *, cursor: Any = None, save_cursor: bool = False
    ) -> Path | None:
        """Spool a run the store refused; None without a spool (the run is then lost, and the caller says so)."""
        if self.spool is None:
            return None
        return self.spool.put(run, records, cursor, save_cursor)
