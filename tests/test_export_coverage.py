"""Observation-window gaps as pure functions of arrivals, the period and the TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.export.coverage import Arrival, CoverageSweep, Gap, Period, control_gaps
from collector.freshness import Freshness, KindEvidence, control_freshness
from collector.mappings import FreshnessPolicy
from collector.model import ControlRef

REF = ControlRef("soc2", "CC7.1")
T0 = datetime(2026, 9, 1, tzinfo=UTC)
WEEK = FreshnessPolicy(ttl=timedelta(days=7), at_risk=timedelta(days=1))
SCAN = {"container.scan": WEEK}


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def scan(stored: float, observed: float | None = None, kind: str = "container.scan") -> Arrival:
    return Arrival(day(stored), kind, day(stored if observed is None else observed))


def spans(gaps: tuple[Gap, ...]) -> list[tuple[datetime, datetime, str]]:
    return [(g.start, g.end, g.reason) for g in gaps]


def test_planted_gaps_are_reported_exactly() -> None:
    arrivals = [scan(0), scan(2), scan(12), scan(13), scan(30)]
    coverage = control_gaps(REF, arrivals, Period(day(0), day(35)), SCAN)
    assert spans(coverage.gaps) == [(day(9), day(12), "stale"), (day(20), day(30), "stale")]
    assert coverage.gap_seconds == timedelta(days=13).total_seconds()
    assert coverage.covered_share == pytest.approx(22 / 35)
    assert coverage.freshness.status is Freshness.FRESH


def test_no_evidence_yet_is_a_missing_gap_until_the_first_record_is_stored() -> None:
    coverage = control_gaps(REF, [scan(5)], Period(day(0), day(10)), SCAN)
    assert spans(coverage.gaps) == [(day(0), day(5), "missing")]


def test_a_control_never_evidenced_is_missing_for_the_whole_period() -> None:
    coverage = control_gaps(REF, [], Period(day(0), day(10)), SCAN)
    assert spans(coverage.gaps) == [(day(0), day(10), "missing")]
    assert coverage.covered_share == 0.0
    assert coverage.freshness.status is Freshness.MISSING


def test_evidence_stored_before_the_period_is_the_state_at_its_start() -> None:
    coverage = control_gaps(REF, [scan(-3), scan(6)], Period(day(0), day(10)), SCAN)
    assert spans(coverage.gaps) == [(day(4), day(6), "stale")]


def test_what_counts_is_when_evidence_was_stored_not_when_it_was_observed() -> None:
    """A scan observed on day 1 but stored on day 5 could not have covered days 0-5."""
    coverage = control_gaps(REF, [scan(5, observed=1)], Period(day(0), day(10)), SCAN)
    assert spans(coverage.gaps) == [(day(0), day(5), "missing"), (day(8), day(10), "stale")]


def test_an_older_observation_stored_later_does_not_extend_coverage() -> None:
    coverage = control_gaps(REF, [scan(0, observed=0), scan(3, observed=-5)], Period(day(0), day(10)), SCAN)
    assert spans(coverage.gaps) == [(day(7), day(10), "stale")]


def test_any_fresh_kind_covers_the_control() -> None:
    policies = {"container.scan": WEEK, "k8s.workload": FreshnessPolicy(ttl=timedelta(days=2))}
    arrivals = [scan(0), scan(6, kind="k8s.workload")]
    coverage = control_gaps(REF, arrivals, Period(day(0), day(12)), policies)
    assert spans(coverage.gaps) == [(day(8), day(12), "stale")]


def test_attestations_expire_at_their_valid_until_unless_the_control_policy_is_overridden() -> None:
    policies = {"attestation.statement": FreshnessPolicy(ttl=timedelta(days=365))}
    signed = Arrival(day(0), "attestation.statement", day(0), valid_until=day(4))
    period = Period(day(0), day(10))
    assert spans(control_gaps(REF, [signed], period, policies).gaps) == [(day(4), day(10), "stale")]
    override = FreshnessPolicy(ttl=timedelta(days=8))
    assert spans(control_gaps(REF, [signed], period, policies, override).gaps) == [(day(8), day(10), "stale")]


def test_arrivals_of_kinds_without_a_policy_are_ignored() -> None:
    coverage = control_gaps(REF, [scan(0, kind="other.kind")], Period(day(0), day(3)), SCAN)
    assert spans(coverage.gaps) == [(day(0), day(3), "missing")]


def test_arrivals_out_of_stored_order_are_refused() -> None:
    with pytest.raises(ValueError, match="stored_at order"):
        control_gaps(REF, [scan(3), scan(1)], Period(day(0), day(10)), SCAN)


def test_an_empty_period_is_refused() -> None:
    with pytest.raises(ValueError, match="empty period"):
        Period(day(3), day(3))


def test_without_a_period_the_sweep_only_judges_freshness_as_of() -> None:
    sweep = CoverageSweep(REF, dict(SCAN), as_of=day(6.5))
    sweep.feed(scan(0))
    coverage = sweep.finish()
    assert coverage.gaps == ()
    assert coverage.covered_share is None
    assert coverage.freshness.status is Freshness.AT_RISK


def _covered_by_freshness(arrivals: list[Arrival], at: datetime) -> bool:
    newest: dict[str, datetime] = {}
    for a in arrivals:
        if a.stored_at <= at and (a.kind not in newest or a.observed_at >= newest[a.kind]):
            newest[a.kind] = a.observed_at
    evidence = [KindEvidence(k, SCAN[k], newest.get(k)) for k in SCAN]
    return control_freshness(REF, evidence, at).status in (Freshness.FRESH, Freshness.AT_RISK)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=-200, max_value=700), st.integers(min_value=-300, max_value=0)),
        max_size=12,
    ),
    st.integers(min_value=0, max_value=719),
)
def test_gaps_agree_with_freshness_at_every_instant(raw: list[tuple[int, int]], probe_hour: int) -> None:
    """Outside gap boundaries, an instant is in a gap exactly when `control_freshness` calls it stale or missing."""
    hours = [(stored, stored + lag) for stored, lag in sorted(raw)]
    arrivals = [Arrival(T0 + timedelta(hours=s), "container.scan", T0 + timedelta(hours=o)) for s, o in hours]
    period = Period(T0, T0 + timedelta(hours=720))
    coverage = control_gaps(REF, arrivals, period, SCAN)
    at = T0 + timedelta(hours=probe_hour, minutes=30)
    in_gap = any(g.start < at < g.end for g in coverage.gaps)
    assert in_gap == (not _covered_by_freshness(arrivals, at))
    for earlier, later in zip(coverage.gaps, coverage.gaps[1:], strict=False):
        assert earlier.end < later.start
