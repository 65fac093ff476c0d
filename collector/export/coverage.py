"""Observation-window coverage: when, within a period, a control's newest evidence was stale or missing.

Pure functions of the evidence arrivals, the period and the freshness policies. At any instant ``t`` a
control is covered when, for at least one of its evidence kinds, the newest record stored by ``t`` (newest
by ``observed_at``) has not expired: ``observed_at + ttl`` for most kinds, ``valid_until`` for evidence that
carries one (attestations), unless the configuration overrides the control's policy. This is the same
rule :func:`collector.freshness.control_freshness` applies at a single ``now``; ``at_risk`` counts as
covered. A gap is a maximal interval in which the control is not covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from collector.freshness import ControlFreshness, KindEvidence, control_freshness, expires_at
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
    """One evidence record of a control becoming known: it was stored at ``stored_at``."""

    stored_at: datetime
    kind: str
    observed_at: datetime
    valid_until: datetime | None = None


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
class _Newest:
    observed_at: datetime
    valid_until: datetime | None


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
    _newest: dict[str, _Newest] = field(default_factory=dict)
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
        current = self._newest.get(arrival.kind)
        if current is None or arrival.observed_at >= current.observed_at:
            self._newest[arrival.kind] = _Newest(arrival.observed_at, arrival.valid_until)

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
        newest = self._newest.get(kind)
        return (None, None) if newest is None else (newest.observed_at, newest.valid_until)

    def _expires_at(self, kind: str, newest: _Newest) -> datetime:
        return expires_at(newest.observed_at, newest.valid_until, self.policies[kind], self.override)

    def _covered_until(self) -> datetime | None:
        expiries = [self._expires_at(kind, newest) for kind, newest in self._newest.items()]
        return max(expiries) if expiries else None

    def _newest_observed(self) -> datetime | None:
        return max((n.observed_at for n in self._newest.values()), default=None)

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
