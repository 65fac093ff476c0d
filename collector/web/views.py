"""What the API and the console show, as plain JSON-able dicts: built from the in-memory state (control status,
connector health, coverage) and the store's reads (records, runs, a control's history). Time is passed in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from collector.config import LoadedConfig
from collector.coverage import CoverageBasis, compute_coverage
from collector.freshness import STATUS_CODE, Freshness, counts_for_freshness, expires_at, fresh_from
from collector.mappings import FreshnessPolicy
from collector.model import ControlRef
from collector.state import State, evaluate_controls
from collector.store import EvidenceFilter, Store, StoredRecord
from collector.store.browse import EvidenceTimesRow, control_times, evidence_page, record_by_id, runs

__all__ = [
    "Coalesced",
    "Sources",
    "connector_rows",
    "control_detail",
    "control_rows",
    "coverage_document",
    "freshness_gaps",
    "record_document",
    "run_rows",
]

T = TypeVar("T")


class Coalesced:
    """Results shared by concurrent and repeated callers for ``seconds``: while one caller computes a key, the
    others wait for its result instead of computing it again (200 simultaneous requests cost one computation)."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._values: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.seconds:
                return hit[1]  # type: ignore[no-any-return]
            value = compute()
            self._values[key] = (time.monotonic(), value)
            return value


@dataclass
class Sources:
    loaded: LoadedConfig
    state: State
    store: Store
    """The listener's own engine: collection never waits for a connection the API holds."""
    coverage: CoverageBasis
    next_runs: Callable[[], Mapping[str, datetime | None]] = field(default=lambda: {})
    """When each connector instance runs next (the daemon's scheduler; empty for a read-only server)."""
    shared: Coalesced = field(default_factory=Coalesced)
    """The control list and coverage, computed at most once a second per framework."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _red(row: Mapping[str, Any]) -> bool:
    return row["status"] in (Freshness.STALE.value, Freshness.MISSING.value) or row["failures"] > 0


def control_rows(src: Sources, now: datetime, framework: str | None = None) -> list[dict[str, Any]]:
    """Controls with mapped or stored evidence, red first (stale, missing or failing), then by id; shared by the
    requests of the same second (``now`` is then the first one's)."""
    rows = src.shared.get(("controls", framework), lambda: _control_rows(src, now, framework))
    return [dict(r) for r in rows]


def _control_rows(src: Sources, now: datetime, framework: str | None) -> list[dict[str, Any]]:
    m = src.loaded.mappings
    snap = src.state.snapshot()
    coverage = {
        str(c.ref): c.state.value for c in compute_coverage(m, src.coverage, snap.newest, now, framework).controls
    }
    rows = []
    for fresh, failures, failing in evaluate_controls(
        snap, m, now, src.loaded.overrides, framework, src.loaded.active_kinds
    ):
        rows.append(
            {
                "framework": fresh.ref.framework,
                "control": fresh.ref.control,
                "title": m.control(fresh.ref).title,
                "status": fresh.status.value,
                "age_seconds": None if fresh.age is None else round(max(fresh.age.total_seconds(), 0.0), 3),
                "ttl_seconds": fresh.ttl.total_seconds(),
                "newest_observed_at": _iso(fresh.newest_observed_at),
                "expires_at": _iso(fresh.expires_at),
                "evidence_kinds": list(fresh.evidence_kinds),
                "failures": failures,
                "failing_checks": failing,
                "coverage": coverage.get(str(fresh.ref), "uncovered"),
            }
        )
    for row in rows:
        row["red"] = _red(row)
    rows.sort(key=lambda r: (not r["red"], -STATUS_CODE[Freshness(str(r["status"]))], r["framework"], r["control"]))
    return rows


def freshness_gaps(
    times: Iterable[EvidenceTimesRow],
    policies: Mapping[str, FreshnessPolicy],
    override: FreshnessPolicy | None,
    since: datetime,
    until: datetime,
) -> list[tuple[datetime, datetime]]:
    """The stretches of [since, until) when no record that counts for freshness kept the control fresh."""
    spans = []
    for t in times:
        policy = policies.get(t.kind)
        if policy is None or not counts_for_freshness(t.checks):
            continue
        start = fresh_from(t.observed_at, t.collected_at)
        spans.append((start, expires_at(start, t.valid_until, policy, override)))
    gaps = []
    cursor = since
    for start, end in sorted(spans):
        if start > cursor:
            gaps.append((cursor, min(start, until)))
        cursor = max(cursor, end)
        if cursor >= until:
            break
    if cursor < until:
        gaps.append((cursor, until))
    return [(a, b) for a, b in gaps if a < b]


def control_detail(
    src: Sources, ref: ControlRef, now: datetime, since: datetime, until: datetime, limit: int
) -> dict[str, Any]:
    m = src.loaded.mappings
    control = m.control(ref)
    row = next((r for r in control_rows(src, now, ref.framework) if r["control"] == ref.control), None)
    kinds = sorted(set(m.kinds_by_control.get(ref, ())) | set(row["evidence_kinds"] if row else ()))
    policies = {k: m.kinds[k].freshness for k in kinds if k in m.kinds}
    override = src.loaded.overrides.get(ref)
    longest_ttl = max((p.ttl for p in [*policies.values(), *([override] if override else [])]), default=timedelta(0))
    times = list(control_times(src.store, str(ref), since - longest_ttl, until))
    gaps = freshness_gaps(times, policies, override, since, until) if policies else [(since, until)]
    latest = evidence_page(src.store, EvidenceFilter(control=str(ref)), limit=limit).records
    return {
        "framework": ref.framework,
        "control": ref.control,
        "title": control.title,
        "group": control.group,
        "status": row["status"] if row else Freshness.MISSING.value,
        "age_seconds": row["age_seconds"] if row else None,
        "ttl_seconds": row["ttl_seconds"] if row else None,
        "failures": row["failures"] if row else 0,
        "failing_checks": row["failing_checks"] if row else [],
        "coverage": row["coverage"] if row else "uncovered",
        "evidence_kinds": kinds,
        "checks": list(m.checks_by_control.get(ref, ())),
        "latest_records": [record_document(r) for r in latest],
        "period": {"since": since.isoformat(), "until": until.isoformat()},
        "gaps": [{"start": a.isoformat(), "end": b.isoformat(), "seconds": (b - a).total_seconds()} for a, b in gaps],
        "history": [
            {
                "kind": t.kind,
                "observed_at": t.observed_at.isoformat(),
                "failing": sum(1 for c in t.checks if c["result"] in ("fail", "error")),
            }
            for t in times[-500:]
            if t.observed_at >= since
        ],
    }


def record_document(rec: StoredRecord, *, head_seq: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": rec.id,
        "seq": rec.seq,
        "kind": rec.kind,
        "subject": {"type": rec.subject_type, "id": rec.subject_id},
        "observed_at": rec.observed_at.isoformat(),
        "collected_at": rec.collected_at.isoformat(),
        "stored_at": rec.stored_at.isoformat(),
        "valid_until": _iso(rec.valid_until),
        "connector": rec.connector_type,
        "instance": rec.instance,
        "connector_version": rec.connector_version,
        "run_id": rec.run_id,
        "source": rec.source,
        "controls": list(rec.controls),
        "checks": [
            {"id": c["id"], "result": c["result"], "message": c.get("message", ""), "details": c.get("details")}
            for c in rec.checks
        ],
        "content_sha256": rec.content_sha256,
        "prev_hash": rec.prev_hash,
        "chain_hash": rec.chain_hash,
    }
    if rec.payload is not None:
        doc["payload"] = rec.payload
    if head_seq is not None:
        doc["chain"] = {"seq": rec.seq, "head_seq": head_seq, "records_after": max(head_seq - rec.seq, 0)}
    return doc


def one_record(src: Sources, record_id: str) -> dict[str, Any] | None:
    found = record_by_id(src.store, record_id)
    if found is None:
        return None
    rec, head = found
    return record_document(rec, head_seq=head)


def connector_rows(src: Sources) -> list[dict[str, Any]]:
    snap = src.state.snapshot()
    names = {i.config.name: i.config.type for i in src.loaded.instances}
    for name, known in snap.connectors.items():
        names.setdefault(name, known.connector_type)
    upcoming = src.next_runs()
    out = []
    for name, type_ in sorted(names.items()):
        health = snap.connectors.get(name)
        out.append(
            {
                "name": name,
                "type": type_,
                "configured": any(i.config.name == name for i in src.loaded.instances),
                "last_success": _iso(health.last_success) if health else None,
                "last_finished": _iso(health.last_finished) if health else None,
                "last_status": health.last_status if health else None,
                "last_error": health.last_error if health else None,
                "consecutive_failures": health.consecutive_failures if health else 0,
                "last_duration_seconds": health.last_duration_seconds if health else None,
                "problems_total": health.problems_total if health else 0,
                "runs": dict(health.runs) if health else {},
                "next_run": _iso(upcoming.get(name)),
            }
        )
    return out


def run_rows(src: Sources, instance: str | None, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "instance": r.instance,
            "connector": r.connector_type,
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat(),
            "status": r.status,
            "observations": r.observations,
            "problems": [{"source": p.get("source", ""), "reason": p.get("reason", "")} for p in r.problems],
            "error": r.error,
        }
        for r in runs(src.store, instance, limit)
    ]


def coverage_document(src: Sources, now: datetime, framework: str | None) -> dict[str, Any]:
    return src.shared.get(("coverage", framework), lambda: _coverage_document(src, now, framework))


def _coverage_document(src: Sources, now: datetime, framework: str | None) -> dict[str, Any]:
    snap = src.state.snapshot()
    report = compute_coverage(src.loaded.mappings, src.coverage, snap.newest, now, framework)
    doc = report.as_json()
    doc["generated_at"] = now.isoformat()
    return doc
