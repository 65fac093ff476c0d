"""The evidence store: SQLAlchemy 2 Core over SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from collector import freshness
from collector.errors import extra_needed
from collector.store import summary
from collector.store.records import (
    GENESIS_HASH,
    PreparedRecord,
    RunRecord,
    StoredRecord,
    record_link,
)
from collector.store.schema import (
    chain_head,
    collection_runs,
    cursors,
    evidence,
    evidence_content,
    evidence_counts,
    evidence_latest,
    run_counts,
)

__all__ = [
    "ChainBreak",
    "ChainHead",
    "EvidenceFilter",
    "PreparedRecord",
    "RunRecord",
    "RunSummary",
    "StateSummary",
    "Store",
    "StoredRecord",
    "SubjectLatest",
]

_BATCH = 5000
_EVIDENCE_COLUMNS = (
    "id",
    "run_id",
    "connector_type",
    "instance",
    "connector_version",
    "kind",
    "subject_type",
    "subject_id",
    "observed_at",
    "valid_until",
    "collected_at",
    "stored_at",
    "content_sha256",
    "source",
    "config_hash",
    "controls",
    "checks",
    "prev_hash",
    "chain_hash",
)


def _sqlite_datetime(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DATETIME reads back (naive UTC): ``%Y-%m-%d %H:%M:%S.%f``, by
    ``isoformat`` (several times faster than ``strftime``; every record has its own ``observed_at``)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _cached_json(cache: dict[tuple[str, ...], str], value: list[str]) -> str:
    """A run repeats the same few control lists: encode each distinct one once."""
    key = tuple(value)
    text = cache.get(key)
    if text is None:
        text = json.dumps(value)
        cache[key] = text
    return text


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    record_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The chain's last link: its sequence number and chain hash (seq 0 and the genesis hash when empty)."""

    seq: int
    chain_hash: str


@dataclass(frozen=True, slots=True)
class SubjectLatest:
    instance: str
    connector_type: str
    kind: str
    subject_type: str
    subject_id: str
    observed_at: datetime
    valid_until: datetime | None
    controls: list[str]
    checks: list[dict[str, Any]]
    collected_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunSummary:
    instance: str
    connector_type: str
    status: str
    finished_at: datetime
    duration_seconds: float
    problems: int = 0
    observations: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StateSummary:
    """What the in-memory state is built from, read in one snapshot: every (kind, subject)'s latest record (and its
    latest that counts for freshness, when the latest does not) in stored order, the counters, the recent runs."""

    latest: list[SubjectLatest]
    record_counts: dict[tuple[str, str, str], int]
    run_history: dict[str, list[RunSummary]]
    run_counts: dict[tuple[str, str, str], int]
    problem_totals: dict[str, int]
    last_seq: int


@dataclass(frozen=True, slots=True)
class EvidenceFilter:
    kind: str | None = None
    subject: str | None = None
    control: str | None = None
    check: str | None = None
    result: str | None = None
    instance: str | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _subject_latest_columns(c: Any) -> list[Any]:
    return [
        c.instance, c.connector_type, c.kind, c.subject_type, c.subject_id,
        c.observed_at, c.valid_until, c.controls, c.checks, c.collected_at,
    ]  # fmt: skip


def _subject_key(r: SubjectLatest) -> tuple[str, str, str]:
    return (r.kind, r.subject_type, r.subject_id)


def _subject_latest(r: Any) -> SubjectLatest:
    return SubjectLatest(
        instance=r.instance,
        connector_type=r.connector_type,
        kind=r.kind,
        subject_type=r.subject_type,
        subject_id=r.subject_id,
        observed_at=r.observed_at,
        valid_until=r.valid_until,
        controls=json.loads(r.controls),
        checks=json.loads(r.checks),
        collected_at=r.collected_at,
    )


class Store:
    """Append-only evidence with a hash chain. All writes of one run happen in one transaction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        connect_args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"timeout": 30, "check_same_thread": False}
        elif self.dialect == "postgresql":
            connect_args = {"connect_timeout": 5}
        with extra_needed(f"database URL {parsed.drivername}://"):
            self.engine: Engine = create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.Lock()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------------
    def _alembic_config(self, connection: Connection) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(files("collector") / "migrations"))
        cfg.attributes["connection"] = connection
        return cfg

    def upgrade(self) -> str:
        """Apply Alembic migrations up to head; returns the revision now in force."""
        with self.engine.begin() as conn:
            command.upgrade(self._alembic_config(conn), "head")
        return self.current_revision() or ""

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()

    def sqlite_path(self) -> Path | None:
        """The SQLite database file, absolute; None for PostgreSQL or an in-memory database."""
        if self.dialect != "sqlite":
            return None
        database = (make_url(self.url).database or "").removeprefix("file:")
        if not database or database.startswith(":memory:"):
            return None
        return Path(database).absolute()

    def ping(self) -> None:
        """Raise unless the database answers and its schema is at head."""
        current = self.current_revision()
        head = self.head_revision()
        if current != head:
            raise RuntimeError(f"database schema is at {current or 'nothing'}, expected {head}: run `db upgrade`")

    # -- writes ---------------------------------------------------------------------------------
    def commit_run(
        self,
        run: RunRecord,
        records: Sequence[PreparedRecord],
        *,
        cursor: Any = None,
        save_cursor: bool = False,
        now: datetime | None = None,
        return_records: bool = True,
    ) -> list[StoredRecord]:
        """Store a run row, its evidence and (optionally) its cursor in one transaction.

        Returns the stored records (with sequence numbers and chain hashes) unless ``return_records`` is false,
        for callers that already hold what they need, such as the runner's bulk path."""
        stored_at = now or datetime.now(UTC)
        out: list[StoredRecord] = []
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(
                collection_runs.insert(),
                {
                    "id": run.id,
                    "connector_type": run.connector_type,
                    "instance": run.instance,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "status": run.status,
                    "observations": run.observations,
                    "problems": len(run.problems),
                    "problem_details": json.dumps(run.problems, sort_keys=True),
                    "error": run.error,
                    "config_hash": run.config_hash,
                },
            )
            summary.add_run(conn, self.dialect, run.connector_type, run.instance, run.status, len(run.problems))
            if records:
                out = self._append(conn, records, stored_at, return_records)
            if save_cursor:
                self._save_cursor(conn, run.instance, cursor, run.id, stored_at)
        return out

    def _append(
        self, conn: Connection, records: Sequence[PreparedRecord], stored_at: datetime, return_records: bool
    ) -> list[StoredRecord]:
        head_query = select(chain_head.c.seq, chain_head.c.chain_hash).where(chain_head.c.id == 1)
        if self.dialect == "postgresql":
            head_query = head_query.with_for_update()
        head = conn.execute(head_query).one()
        prev = head.chain_hash
        contents: dict[str, str] = {}
        rows: list[tuple[Any, ...]] = []
        links: list[tuple[str, str]] = []
        bind = _sqlite_datetime if self.dialect == "sqlite" else _as_utc
        json_cache: dict[tuple[str, ...], str] = {}
        stored_bound = bind(stored_at)
        fresh: list[Any] = []
        for rec in records:
            contents.setdefault(rec.content_sha256, rec.payload_json)
            controls_json = _cached_json(json_cache, rec.controls)
            checks_json = rec.checks_json
            link = record_link(prev, rec, stored_at, controls_json, checks_json)
            observed = bind(rec.observed_at)
            collected = bind(rec.collected_at)
            fresh.append(observed if rec.observed_at <= rec.collected_at else collected)
            rows.append(
                (
                    rec.id,
                    rec.run_id,
                    rec.connector_type,
                    rec.instance,
                    rec.connector_version,
                    rec.kind,
                    rec.subject_type,
                    rec.subject_id,
                    observed,
                    None if rec.valid_until is None else bind(rec.valid_until),
                    collected,
                    stored_bound,
                    rec.content_sha256,
                    rec.source,
                    rec.config_hash,
                    controls_json,
                    checks_json,
                    prev,
                    link,
                )
            )
            links.append((prev, link))
            prev = link
        self._insert_contents(conn, contents)
        self._insert_evidence(conn, rows)
        last_seq = conn.execute(select(func.max(evidence.c.seq))).scalar_one()
        conn.execute(update(chain_head).where(chain_head.c.id == 1).values(seq=last_seq, chain_hash=prev))
        first_seq = last_seq - len(rows) + 1
        summary.add_records(conn, self.dialect, records, first_seq, fresh)
        if not return_records:
            return []
        return [
            StoredRecord.from_prepared(rec, seq=first_seq + offset, stored_at=stored_at, prev_hash=p, chain_hash=link)
            for offset, (rec, (p, link)) in enumerate(zip(records, links, strict=True))
        ]

    def _insert_evidence(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """The hot path: COPY on PostgreSQL, the driver's executemany on SQLite, inside the run's transaction."""
        columns = ", ".join(_EVIDENCE_COLUMNS)
        if self.dialect == "postgresql":
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY evidence ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        sql = f"INSERT INTO evidence ({columns}) VALUES ({', '.join(['?'] * len(_EVIDENCE_COLUMNS))})"
        for i in range(0, len(rows), _BATCH):
            conn.exec_driver_sql(sql, rows[i : i + _BATCH])

    def _insert_contents(self, conn: Connection, contents: dict[str, str]) -> None:
        """Content-addressed blobs: each distinct payload stored once, whatever is already there."""
        marker = "?" if self.dialect == "sqlite" else "%s"
        sql = (
            f"INSERT INTO evidence_content (sha256, payload, size_bytes) VALUES ({marker}, {marker}, {marker}) "
            "ON CONFLICT (sha256) DO NOTHING"
        )
        items = [(k, v, len(v.encode())) for k, v in contents.items()]
        for i in range(0, len(items), _BATCH):
            conn.exec_driver_sql(sql, items[i : i + _BATCH])

    def _save_cursor(self, conn: Connection, instance: str, value: Any, run_id: str, now: datetime) -> None:
        payload = json.dumps(value, sort_keys=True)
        values = {"instance": instance, "value": payload, "run_id": run_id, "updated_at": now}
        stmt: Any
        if self.dialect == "postgresql":
            stmt = postgresql.insert(cursors).values(values)
        else:
            stmt = sqlite.insert(cursors).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["instance"], set_={"value": payload, "run_id": run_id, "updated_at": now}
        )
        conn.execute(stmt)

    # -- reads ----------------------------------------------------------------------------------
    def get_cursor(self, instance: str) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(select(cursors.c.value).where(cursors.c.instance == instance)).scalar()
        return None if value is None else json.loads(value)

    def chain_head(self) -> ChainHead:
        with self.engine.connect() as conn:
            row = conn.execute(select(chain_head.c.seq, chain_head.c.chain_hash).where(chain_head.c.id == 1)).one()
        return ChainHead(int(row.seq), str(row.chain_hash))

    def chain_hash_at(self, seq: int) -> str | None:
        """The chain hash of the record ``seq``; the genesis hash for 0; None when no such record is stored."""
        if seq == 0:
            return GENESIS_HASH
        with self.engine.connect() as conn:
            value = conn.execute(select(evidence.c.chain_hash).where(evidence.c.seq == seq)).scalar()
        return None if value is None else str(value)

    def has_run(self, run_id: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(select(collection_runs.c.id).where(collection_runs.c.id == run_id)).scalar()
        return found is not None

    def count_records(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(evidence)).scalar_one())

    def max_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(evidence.c.seq), 0))).scalar_one())

    def records_after(self, seq: int, limit: int = 20_000) -> list[tuple[int, SubjectLatest]]:
        """Records stored after ``seq``, oldest first (appends are serialised, so seq order is commit order)."""
        query = (
            select(evidence.c.seq, *_subject_latest_columns(evidence.c))
            .where(evidence.c.seq > seq)
            .order_by(evidence.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(r.seq, _subject_latest(r)) for r in conn.execute(query)]

    def latest_per_subject(self, max_seq: int | None = None) -> Iterator[SubjectLatest]:
        """The same rows as :attr:`StateSummary.latest`, ranked from every stored record up to ``max_seq``: for
        checking the summary and for reading the store as of an earlier seq, not for start-up (O(records))."""
        rows = self._subjects_latest(max_seq)
        uncounted = {_subject_key(r) for _, r in rows if not freshness.counts_for_freshness(r.checks)}
        if uncounted:
            rows += [
                (seq, r) for seq, r in self._subjects_latest(max_seq, counted_only=True) if _subject_key(r) in uncounted
            ]
        for _, row in sorted(rows, key=lambda item: item[0]):
            yield row

    def _subjects_latest(self, max_seq: int | None, *, counted_only: bool = False) -> list[tuple[int, SubjectLatest]]:
        latest = summary.latest_query(self.dialect, max_seq, counted_only=counted_only).subquery()
        query = select(latest.c.seq, *_subject_latest_columns(latest.c))
        with self.engine.connect() as conn:
            return [(r.seq, _subject_latest(r)) for r in conn.execute(query)]

    def record_counts(self, max_seq: int | None = None) -> dict[tuple[str, str, str], int]:
        """Stored records per (connector type, instance, kind), up to ``max_seq`` (counted row by row when given;
        otherwise read from the summary)."""
        with self.engine.connect() as conn:
            if max_seq is None:
                return _record_counts(conn)
            query = (
                select(evidence.c.connector_type, evidence.c.instance, evidence.c.kind, func.count())
                .where(evidence.c.seq <= max_seq)
                .group_by(evidence.c.connector_type, evidence.c.instance, evidence.c.kind)
            )
            return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(query)}

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read-only transaction whose queries all see the same committed state."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    yield conn
            else:
                # pysqlite opens no transaction for reads: without BEGIN each SELECT would see its own state
                conn.exec_driver_sql("BEGIN")
                try:
                    yield conn
                finally:
                    conn.rollback()

    def state_summary(self, per_instance: int = 100) -> StateSummary:
        """What the in-memory state is built from, from the summary tables in one snapshot: O(subjects +
        instances x ``per_instance``) rows, never O(records)."""
        with self._snapshot() as conn:
            last_seq = int(conn.execute(select(chain_head.c.seq).where(chain_head.c.id == 1)).scalar_one())
            rows = sorted(((r.seq, _subject_latest(r)) for r in conn.execute(_summary_latest_query())), key=_seq)
            return StateSummary(
                latest=[r for _, r in rows],
                record_counts=_record_counts(conn),
                run_history=_run_history(conn, per_instance),
                run_counts=_run_status_counts(conn),
                problem_totals=_problem_totals(conn),
                last_seq=last_seq,
            )

    def run_history(self, per_instance: int = 100) -> dict[str, list[RunSummary]]:
        """Recent runs per instance, newest first (for connector health after a restart)."""
        with self.engine.connect() as conn:
            return _run_history(conn, per_instance)

    def problem_totals(self) -> dict[str, int]:
        """Inputs skipped as bad, summed over every stored run, per instance."""
        with self.engine.connect() as conn:
            return _problem_totals(conn)

    def run_status_counts(self) -> dict[tuple[str, str, str], int]:
        with self.engine.connect() as conn:
            return _run_status_counts(conn)

    def latest_records(self, filt: EvidenceFilter, *, with_payload: bool = True) -> list[StoredRecord]:
        """The latest record per subject, filtered; what `evidence-collector evidence` prints. Reads the summary's
        latest seq per subject and those rows by primary key: O(subjects matching the kind/subject filter)."""
        out: list[StoredRecord] = []
        with self.engine.connect() as conn:
            for row in conn.execute(_latest_records_query(filt)):
                rec = StoredRecord.from_row(row, json.loads(row.payload) if with_payload else None)
                if filt.control and filt.control not in rec.controls:
                    continue
                if filt.check or filt.result:
                    matching = [
                        c
                        for c in rec.checks
                        if (not filt.check or c["id"] == filt.check) and (not filt.result or c["result"] == filt.result)
                    ]
                    if not matching:
                        continue
                out.append(rec)
        return out

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A connection that reads one consistent snapshot until it is closed, whatever writers commit meanwhile:
        REPEATABLE READ on PostgreSQL, one read transaction (WAL) on SQLite."""
        if self.dialect == "postgresql":
            with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
                yield conn
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")  # pysqlite opens no transaction for reads on its own
            try:
                yield conn
            finally:
                conn.rollback()

    def verify(self) -> tuple[int, ChainBreak | None]:
        """Walk the chain from the first row, in one snapshot; return rows checked and the first break, if any."""
        prev = GENESIS_HASH
        checked = 0
        last_seq = 0
        with self.snapshot() as conn:
            while True:
                rows = conn.execute(
                    select(evidence, evidence_content.c.payload)
                    .join(evidence_content, evidence_content.c.sha256 == evidence.c.content_sha256, isouter=True)
                    .where(evidence.c.seq > last_seq)
                    .order_by(evidence.c.seq)
                    .limit(_BATCH)
                ).all()
                if not rows:
                    break
                for row in rows:
                    rec = StoredRecord.from_row(row)
                    brk = _check_row(rec, row.payload, prev, row._mapping["controls"], row._mapping["checks"])
                    if brk:
                        return checked, brk
                    prev = rec.chain_hash
                    checked += 1
                    last_seq = rec.seq
            head = conn.execute(select(chain_head.c.seq, chain_head.c.chain_hash)).one()
        if head.chain_hash != prev or head.seq != last_seq:
            return checked, ChainBreak(head.seq, "(chain head)", "chain head does not match the last row: rows removed")
        return checked, None


def _summary_latest_query() -> Any:
    """Each subject's latest record, and its latest that counts for freshness when that is another one, by seq."""
    cols = _subject_latest_columns(evidence.c)
    by_latest = select(evidence.c.seq, *cols).join(evidence_latest, evidence_latest.c.latest_seq == evidence.c.seq)
    by_counted = (
        select(evidence.c.seq, *cols)
        .join(evidence_latest, evidence_latest.c.counted_seq == evidence.c.seq)
        .where(evidence_latest.c.counted_seq != evidence_latest.c.latest_seq)
    )
    return union_all(by_latest, by_counted)


def _latest_records_query(filt: EvidenceFilter) -> Any:
    """The summary's latest seq per subject, those rows by primary key (and their payloads), filtered."""
    key = evidence_latest.c
    query = select(evidence, evidence_content.c.payload).select_from(
        evidence_latest.join(evidence, evidence.c.seq == key.latest_seq).join(
            evidence_content, evidence_content.c.sha256 == evidence.c.content_sha256
        )
    )
    if filt.kind:
        query = query.where(key.kind == filt.kind)
    if filt.instance:
        query = query.where(evidence.c.instance == filt.instance)
    if filt.subject:
        subject_type, sep, subject_id = filt.subject.partition(":")
        if sep and subject_id:
            query = query.where(
                (key.subject_id == filt.subject) | ((key.subject_type == subject_type) & (key.subject_id == subject_id))
            )
        else:
            query = query.where(key.subject_id == filt.subject)
    if filt.control:
        # a cheap first cut in SQL (the JSON list holds the id as a quoted string); exact match below
        query = query.where(evidence.c.controls.contains(json.dumps(filt.control), autoescape=True))
    return query.order_by(key.kind, key.subject_type, key.subject_id)


def _seq(item: tuple[int, Any]) -> int:
    return int(item[0])


def _record_counts(conn: Connection) -> dict[tuple[str, str, str], int]:
    c = evidence_counts.c
    return {
        (r[0], r[1], r[2]): int(r[3]) for r in conn.execute(select(c.connector_type, c.instance, c.kind, c.records))
    }


def _run_status_counts(conn: Connection) -> dict[tuple[str, str, str], int]:
    c = run_counts.c
    return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(select(c.connector_type, c.instance, c.status, c.runs))}


def _problem_totals(conn: Connection) -> dict[str, int]:
    query = select(run_counts.c.instance, func.sum(run_counts.c.problems)).group_by(run_counts.c.instance)
    return {r[0]: int(r[1] or 0) for r in conn.execute(query)}


def _run_history(conn: Connection, per_instance: int) -> dict[str, list[RunSummary]]:
    """One index range per instance (``instance, finished_at``), newest first; the instances from ``run_counts``."""
    out: dict[str, list[RunSummary]] = {}
    instances = conn.execute(select(run_counts.c.instance).distinct().order_by(run_counts.c.instance)).scalars().all()
    for instance in instances:
        query = (
            select(collection_runs)
            .where(collection_runs.c.instance == instance)
            .order_by(collection_runs.c.finished_at.desc())
            .limit(per_instance)
        )
        out[instance] = [
            RunSummary(
                instance=r.instance,
                connector_type=r.connector_type,
                status=r.status,
                finished_at=r.finished_at,
                duration_seconds=(r.finished_at - r.started_at).total_seconds(),
                problems=r.problems,
                observations=r.observations,
                error=r.error,
            )
            for r in conn.execute(query)
        ]
    return out


def _check_row(
    rec: StoredRecord, payload: str | None, prev: str, controls_json: str, checks_json: str
) -> ChainBreak | None:
    from collector.canonical import sha256_hex

    if rec.prev_hash != prev:
        return ChainBreak(
            rec.seq, rec.id, "previous-hash link does not match the row before it (row inserted or removed)"
        )
    if payload is None:
        return ChainBreak(rec.seq, rec.id, "content blob is missing")
    if sha256_hex(payload.encode("utf-8")) != rec.content_sha256:
        return ChainBreak(rec.seq, rec.id, "content does not match its SHA-256 (payload altered)")
    expected = record_link(prev, rec, rec.stored_at, controls_json, checks_json)
    if expected != rec.chain_hash:
        return ChainBreak(rec.seq, rec.id, "row fields do not match its chain hash (row altered)")
    return None
