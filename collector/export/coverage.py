"""Observation-window coverage: when, within a period, a control's newest evidence was stale or missing.

Pure functions of the evidence arrivals, the period and the freshness policies. At any instant ``t`` a
control is covered when, for at least one of its evidence kinds, some record stored by ``t`` that counts for
freshness has not expired: its freshness time (:func:`collector.freshness.fresh_from`) plus the TTL for most kinds,
``valid_until`` for evidence that carries one (attestations; a subject's newer attestation replaces its older
one), unless the configuration overrides the control's policy. This is the same rule
:func:`collector.freshness.control_freshness` applies at a single ``now`` over the evidence that keeps the control
fresh longest; ``at_risk`` counts as covered. A gap is a maximal interval in which the control is not covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from collector.freshness import (
    ControlFreshness,
    EvidenceTimes,
    KindEvidence,
    control_freshness,
    expires_at,
    longest_lived,
)
from collector.mappings import FreshnessPolicy
from collector.model import ControlRef

__all__ = ["Arrival", "ControlCoverage", "CoverageSweep", "Gap", "Period", "control_gaps"]


@dataclass(frozen=True, slots=True)
class Period:
    """The observation window ``[start, end]``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty period: end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Arrival:
    """One evidence record of a control becoming known: it was stored at ``stored_at``. Only records that count for
    freshness arrive (:func:`collector.freshness.counts_for_freshness`)."""

    stored_at: datetime
    kind: str
    observed_at: datetime
    """When its freshness counts from: :func:`collector.freshness.fresh_from` of the record."""
    valid_until: datetime | None = None
    subject: str | None = None
    """For evidence with a ``valid_until``: its subject, whose newer record replaces the older one."""


@dataclass(frozen=True, slots=True)
class Gap:
    start: datetime
    end: datetime
    reason: str
    """``missing`` (no evidence stored yet) or ``stale`` (the newest evidence had expired)."""
    newest_observed_at: datetime | None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class ControlCoverage:
    ref: ControlRef
    period: Period | None
    gaps: tuple[Gap, ...]
    freshness: ControlFreshness
    """The control's freshness at the end of the window (the as-of time)."""

    @property
    def gap_seconds(self) -> float:
        return sum(g.seconds for g in self.gaps)

    @property
    def covered_share(self) -> float | None:
        if self.period is None:
            return None
        return max(0.0, 1.0 - self.gap_seconds / self.period.seconds)


@dataclass(slots=True)
class _KindTimes:
    """What can keep a control fresh, of one kind: the newest record without a validity, and per subject the
    latest one with a validity (arrivals naming no subject each count on their own)."""

    newest_untimed: EvidenceTimes | None = None
    timed: dict[str | None, EvidenceTimes] = field(default_factory=dict)

    def add(self, arrival: Arrival) -> None:
        ev = EvidenceTimes(arrival.observed_at, arrival.valid_until)
        if ev.valid_until is None:
            if self.newest_untimed is None or ev.fresh_from >= self.newest_untimed.fresh_from:
                self.newest_untimed = ev
            return
        current = self.timed.get(arrival.subject)
        if current is None:
            self.timed[arrival.subject] = ev
        elif arrival.subject is not None:
            if ev.fresh_from >= current.fresh_from:
                self.timed[arrival.subject] = ev
        elif current.valid_until is not None and ev.valid_until >= current.valid_until:
            self.timed[None] = ev

    @property
    def candidates(self) -> list[EvidenceTimes]:
        return [*([self.newest_untimed] if self.newest_untimed else []), *self.timed.values()]


@dataclass(slots=True)
class CoverageSweep:
    """Feed arrivals in ``stored_at`` order; arrivals at or before the period start form the state at start.

    Without a period, the sweep only accumulates the state as of ``as_of`` (the matrix of a point-in-time export).
    """

    ref: ControlRef
    policies: dict[str, FreshnessPolicy]
    """Freshness policy per evidence kind of the control; arrivals of other kinds are ignored (see :meth:`admit`)."""
    as_of: datetime
    period: Period | None = None
    override: FreshnessPolicy | None = None
    _kinds: dict[str, _KindTimes] = field(default_factory=dict)
    _clock: datetime | None = None
    _open_gap: tuple[datetime, str, datetime | None] | None = None
    _gaps: list[Gap] = field(default_factory=list)
    _last_stored_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.period is not None and self.period.end != self.as_of:
            raise ValueError("the as-of time of a period export is the period's end")

    def admit(self, kind: str, policy: FreshnessPolicy) -> None:
        """Count evidence of another kind for this control (one found tagged with it in the store)."""
        self.policies.setdefault(kind, policy)

    def feed(self, arrival: Arrival) -> None:
        if arrival.kind not in self.policies:
            return
        if arrival.stored_at > self.as_of:
            raise ValueError(f"arrival stored at {arrival.stored_at.isoformat()} is after {self.as_of.isoformat()}")
        if self._last_stored_at is not None and arrival.stored_at < self._last_stored_at:
            raise ValueError("arrivals must come in stored_at order")
        self._last_stored_at = arrival.stored_at
        if self.period is not None and arrival.stored_at > self.period.start:
            self._advance(arrival.stored_at)
        self._kinds.setdefault(arrival.kind, _KindTimes()).add(arrival)

    def finish(self) -> ControlCoverage:
        if self.period is not None:
            self._advance(self.period.end)
            self._close_gap(self.period.end)
        return ControlCoverage(self.ref, self.period, tuple(self._gaps), self.freshness_now())

    def freshness_now(self) -> ControlFreshness:
        evidence = [
            KindEvidence(kind, policy, *self._newest_of(kind)) for kind, policy in sorted(self.policies.items())
        ]
        return control_freshness(self.ref, evidence, self.as_of, self.override)

    def _newest_of(self, kind: str) -> tuple[datetime | None, datetime | None]:
        best = self._best(kind)
        return (None, None) if best is None else (best.fresh_from, best.valid_until)

    def _best(self, kind: str) -> EvidenceTimes | None:
        times = self._kinds.get(kind)
        return None if times is None else longest_lived(times.candidates, self.policies[kind], self.override)

    def _covered_until(self) -> datetime | None:
        expiries = [
            expires_at(best.fresh_from, best.valid_until, self.policies[kind], self.override)
            for kind in self._kinds
            if (best := self._best(kind)) is not None
        ]
        return max(expiries) if expiries else None

    def _newest_observed(self) -> datetime | None:
        return max((ev.fresh_from for times in self._kinds.values() for ev in times.candidates), default=None)

    def _advance(self, to: datetime) -> None:
        """Account for ``[clock, to)``, during which the newest evidence does not change."""
        assert self.period is not None
        clock = self._clock or self.period.start
        if to <= clock:
            return
        covered_until = self._covered_until()
        uncovered_from = clock if covered_until is None else max(clock, covered_until)
        if uncovered_from >= to:
            self._close_gap(clock)
        elif self._open_gap is not None and uncovered_from == clock:
            pass
        else:
            self._close_gap(clock)
            reason = "missing" if covered_until is None else "stale"
            self._open_gap = (uncovered_from, reason, self._newest_observed())
        self._clock = to

    def _close_gap(self, at: datetime) -> None:
        if self._open_gap is not None:
            start, reason, newest = self._open_gap
            self._gaps.append(Gap(start, at, reason, newest))
            self._open_gap = None


def control_gaps(
    ref: ControlRef,
    arrivals: Iterable[Arrival],
    period: Period,
    policies: Mapping[str, FreshnessPolicy],
    override: FreshnessPolicy | None = None,
) -> ControlCoverage:
    """Gaps of one control over ``period``, given its evidence arrivals in ``stored_at`` order (TTL per kind)."""
    sweep = CoverageSweep(ref, dict(policies), period.end, period, override)
    for arrival in arrivals:
        sweep.feed(arrival)
    return sweep.finish()
