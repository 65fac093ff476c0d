"""One collection run: connector → observations → checks, tags, hashes → one transaction → state."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from tenacity import RetryCallState

from collector.canonical import canonical_json, sha256_hex
from collector.config import ResolvedInstance
from collector.connector import CollectContext, Connector, Problem, RunCancelled
from collector.durations import format_duration
from collector.errors import Disposition, classify
from collector.freshness import counts_for_freshness
from collector.mappings import Mappings
from collector.model import Observation
from collector.retry import retrying
from collector.skew import in_the_future
from collector.spool import DurableWriter
from collector.state import RUN_SUCCESS, State
from collector.store import PreparedRecord, RunRecord, Store
from collector.urls import redact_text

__all__ = ["RunOutcome", "RunTimedOut", "Runner", "future_dated", "inconclusive", "prepare_record"]


class RunTimedOut(Exception):
    """The run went past its schedule's timeout and was cancelled."""


@dataclass
class RunOutcome:
    run: RunRecord
    stored: int = 0
    records: list[PreparedRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.run.status in RUN_SUCCESS


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def prepare_record(
    obs: Observation,
    connector: Connector[Any],
    instance: ResolvedInstance,
    mappings: Mappings,
    run_id: str,
    collected_at: datetime,
) -> PreparedRecord:
    """Everything the core adds to an observation; raises ValueError for one that cannot be stored."""
    if not isinstance(obs, Observation):
        raise ValueError(f"connector yielded {type(obs).__name__}, not an Observation")
    if obs.kind not in connector.kinds:
        raise ValueError(f"connector does not declare evidence kind {obs.kind!r}")
    try:
        payload_bytes = canonical_json(obs.payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not canonical JSON: {exc}") from exc
    skew = instance.clock_skew_tolerance
    results = [
        c.run(obs, connector.settings, collected_at, skew, payload_is_finite=True)  # canonical_json refused NaN/±Inf
        for c in connector.checks
        if c.kind == obs.kind
    ]
    checks = [r.as_json() for r in results]
    return PreparedRecord(
        id=str(uuid.uuid4()),
        run_id=run_id,
        connector_type=instance.config.type,
        instance=instance.config.name,
        connector_version=connector.version,
        kind=obs.kind,
        subject_type=obs.subject.type,
        subject_id=obs.subject.id,
        observed_at=_utc(obs.observed_at),
        valid_until=_utc(obs.valid_until) if obs.valid_until else None,
        collected_at=collected_at,
        content_sha256=sha256_hex(payload_bytes),
        payload_json=payload_bytes.decode("utf-8"),
        source=obs.source,
        config_hash=instance.config_hash,
        controls=mappings.tags_for(obs.kind, [r.check_id for r in results], obs.controls),
        checks=checks,
    )


def future_dated(rec: PreparedRecord, tolerance: timedelta) -> str | None:
    """Why a record's source dated it later than it was collected (beyond the clock-skew tolerance), else None."""
    if in_the_future(rec.observed_at, rec.collected_at, tolerance) is None:
        return None
    return (
        f"{rec.kind} {rec.subject_type}:{rec.subject_id}: observed_at {rec.observed_at.isoformat()} is in the future: "
        f"later than its collection ({rec.collected_at.isoformat()}) by more than the clock-skew tolerance "
        f"({format_duration(tolerance)}); stored as stated, its freshness counts from the collection time"
    )


def inconclusive(records: list[PreparedRecord], problems: Sequence[Problem] = ()) -> str | None:
    """Why a run proved nothing, else None: every input was a problem and nothing was collected (a source that
    could not be opened is not an empty source), or every stored record's checks are ``error``."""
    if not records and problems:
        problem = problems[0]
        return (
            f"nothing collected and {len(problems)} problem{'s' if len(problems) > 1 else ''} "
            f"(first: {problem.source}: {problem.reason})"
        )
    if not records or any(counts_for_freshness(r.checks) for r in records):
        return None
    first = records[0]
    check = first.checks[0]
    return (
        f"every one of the {len(records)} records has only error checks, so none counts as evidence "
        f"(first: {first.kind} {first.subject_type}:{first.subject_id}: {check['id']}: {check['message']})"
    )


class Runner:
    def __init__(
        self,
        store: Store,
        state: State,
        mappings: Mappings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shutdown: threading.Event | None = None,
        observe: bool = True,
        writer: DurableWriter | None = None,
    ) -> None:
        self.store = store
        self.writer = writer or DurableWriter(store)
        """Commits each run, or keeps it in the spool when the store cannot take it (the daemon's has a spool)."""
        self.state = state
        self.mappings = mappings
        self.clock = clock
        self.shutdown = shutdown or threading.Event()
        self.observe = observe
        """Update the in-memory state with each committed run (off when the daemon's refresh does it)."""

    def run(self, instance: ResolvedInstance, run_id: str | None = None) -> RunOutcome:
        name = instance.config.name
        run_id = run_id or str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(connector=instance.config.type, instance=name, run_id=run_id)
        log = structlog.get_logger("collector.run")
        started = self.clock()
        t0 = time.monotonic()
        records: list[PreparedRecord] = []
        problems: list[Problem] = []
        new_cursor: Any = None
        error: str | None = None
        status = "succeeded"
        policy = instance.config.retry

        def on_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("run_retry", attempt=state.attempt_number, error=f"{type(exc).__name__}: {exc}")

        try:
            try:
                cursor = self.store.get_cursor(name)
            except Exception as exc:
                if self.writer.spool is None:
                    raise
                cursor = self.writer.last_cursor(name)
                log.warning("cursor_unavailable", error=f"{type(exc).__name__}: {exc}", using_cursor=cursor)
            for attempt in retrying(policy.attempts, policy.initial, policy.max, on_retry):
                with attempt:
                    records, problems, new_cursor = self._collect(instance, run_id, cursor, log)
            if problems:
                status = "partial"
            if (why := inconclusive(records, problems)) is not None:
                status, error = "inconclusive", why
        except RunCancelled as exc:
            status, error = ("interrupted" if self.shutdown.is_set() else "failed"), str(exc)
        except RunTimedOut as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - recorded in the run row, the log and metrics
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            if classify(exc) is Disposition.CONFIGURATION:
                error = f"configuration error: {exc}"
        error = redact_text(error)
        if status in ("failed", "interrupted"):
            records = []
        finished = self.clock()
        run = RunRecord(
            id=run_id,
            connector_type=instance.config.type,
            instance=name,
            started_at=started,
            finished_at=finished,
            status=status,
            observations=len(records),
            problems=[{"source": p.source, "reason": p.reason} for p in problems],
            error=error,
            config_hash=instance.config_hash,
        )
        stored = 0
        save_cursor = status not in ("failed", "interrupted") and new_cursor is not None
        try:
            for attempt in retrying(policy.attempts, policy.initial, policy.max, on_retry):
                with attempt:
                    self.writer.commit(run, records, cursor=new_cursor, save_cursor=save_cursor)
            stored = len(records)
            stored_run = True
            if self.observe:
                self.state.observe_records(records, instance.config.type, name)
        except Exception as exc:  # noqa: BLE001 - the run counts as failed; its records wait in the spool
            stored_run = False
            why = f"{type(exc).__name__}: {exc}"
            kept = self._keep(run, records, new_cursor, save_cursor, log)
            run.status, run.observations = "failed", 0
            run.error = redact_text(f"could not store the run: {why}; {kept}")
        duration = time.monotonic() - t0
        self.state.record_run(
            name,
            instance.config.type,
            run.status,
            finished,
            duration,
            len(problems),
            observations=run.observations,
            error=run.error,
            stored=stored_run,
        )
        log_fn = log.info if run.status == "succeeded" else log.warning
        log_fn(
            "run_finished",
            status=run.status,
            observations=run.observations,
            stored=stored,
            problems=len(problems),
            duration_seconds=round(duration, 3),
            error=run.error,
        )
        for p in problems[:20]:
            log.warning("run_problem", source=p.source, reason=p.reason)
        structlog.contextvars.unbind_contextvars("connector", "instance", "run_id")
        return RunOutcome(run, stored, records)

    def _keep(self, run: RunRecord, records: list[PreparedRecord], cursor: Any, save_cursor: bool, log: Any) -> str:
        """Spool a run the store did not take, as it was prepared; say where its records went."""
        if self.writer.spool is None:
            return f"{len(records)} records not stored"
        spooled = replace(run)
        try:
            self.writer.keep(spooled, records, cursor=cursor, save_cursor=save_cursor)
        except OSError as exc:
            log.error("spool_failed", error=f"{type(exc).__name__}: {exc}", records=len(records))
            return f"{len(records)} records lost: the spool could not take them ({exc})"
        return f"{len(records)} records kept in the spool until the database takes them"

    def _collect(
        self, instance: ResolvedInstance, run_id: str, cursor: Any, log: Any
    ) -> tuple[list[PreparedRecord], list[Problem], Any]:
        connector = instance.build()
        ctx = CollectContext(
            instance=instance.config.name,
            run_id=run_id,
            now=self.clock(),
            cursor=cursor,
            log=log,
            mappings=self.mappings,
        )
        box: dict[str, Any] = {}
        context = structlog.contextvars.get_contextvars()

        def work() -> None:
            structlog.contextvars.bind_contextvars(**context)
            out: list[PreparedRecord] = []
            try:
                for obs in connector.collect(ctx):
                    source = getattr(obs, "source", "") or instance.config.name
                    try:
                        rec = prepare_record(obs, connector, instance, self.mappings, run_id, ctx.now)
                    except ValueError as exc:
                        ctx.problem(source, str(exc))
                    else:
                        out.append(rec)
                        if (why := future_dated(rec, instance.clock_skew_tolerance)) is not None:
                            ctx.problem(source, why)
                    ctx.raise_if_cancelled()
                box["records"] = out
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which decides
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"collect-{instance.config.name}", daemon=True)
        worker.start()
        timeout = instance.config.schedule.timeout.total_seconds()
        deadline = time.monotonic() + timeout
        while worker.is_alive():
            worker.join(min(0.2, max(deadline - time.monotonic(), 0.0)))
            if self.shutdown.is_set() and worker.is_alive():
                ctx.cancel_event.set()
                worker.join(2.0)
                raise RunCancelled("the daemon is shutting down")
            if time.monotonic() >= deadline and worker.is_alive():
                ctx.cancel_event.set()
                raise RunTimedOut(f"run exceeded its timeout of {timeout:g}s and was cancelled")
        if "error" in box:
            raise box["error"]
        return box["records"], ctx.problems, ctx.new_cursor
