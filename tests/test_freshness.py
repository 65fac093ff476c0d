from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from collector.freshness import Freshness, KindEvidence, control_freshness
from collector.mappings import FreshnessPolicy
from collector.model import ControlRef

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WEEK = FreshnessPolicy(ttl=timedelta(days=7), at_risk=timedelta(days=1))
REF = ControlRef("soc2", "CC7.1")


def status_at_age(age: timedelta) -> Freshness:
    return control_freshness(REF, [KindEvidence("container.scan", WEEK, NOW - age)], NOW).status


def test_boundaries_of_fresh_at_risk_and_stale() -> None:
    assert status_at_age(timedelta(days=6)) is Freshness.FRESH
    assert status_at_age(timedelta(days=6, seconds=1)) is Freshness.AT_RISK
    assert status_at_age(timedelta(days=7)) is Freshness.AT_RISK
    assert status_at_age(timedelta(days=7, seconds=1)) is Freshness.STALE


def test_evidence_from_the_future_counts_as_just_observed() -> None:
    assert status_at_age(timedelta(hours=-3)) is Freshness.FRESH


@given(st.integers(min_value=1, max_value=10**9))
def test_stale_evidence_is_never_reported_fresh(extra_seconds: int) -> None:
    assert status_at_age(WEEK.ttl + timedelta(seconds=extra_seconds)) is Freshness.STALE


@given(st.integers(min_value=0, max_value=7 * 86400))
def test_evidence_within_its_ttl_is_never_stale(seconds: int) -> None:
    assert status_at_age(timedelta(seconds=seconds)) is not Freshness.STALE


def test_a_control_without_evidence_is_missing_not_fresh() -> None:
    result = control_freshness(REF, [KindEvidence("container.scan", WEEK)], NOW)
    assert result.status is Freshness.MISSING
    assert result.age is None
    assert result.ttl == WEEK.ttl


def test_the_freshest_kind_decides_and_reports_its_own_ttl() -> None:
    day = FreshnessPolicy(ttl=timedelta(days=1))
    result = control_freshness(
        REF,
        [KindEvidence("a.kind", WEEK, NOW - timedelta(days=3)), KindEvidence("b.kind", day, NOW - timedelta(days=2))],
        NOW,
    )
    assert result.status is Freshness.FRESH
    assert result.age == timedelta(days=3)
    assert result.ttl == WEEK.ttl


def test_a_control_override_replaces_the_kind_policy() -> None:
    strict = FreshnessPolicy(ttl=timedelta(hours=12), at_risk=timedelta(hours=2))
    result = control_freshness(REF, [KindEvidence("container.scan", WEEK, NOW - timedelta(days=1))], NOW, strict)
    assert result.status is Freshness.STALE
    assert result.ttl == timedelta(hours=12)


def test_explicit_validity_decides_for_attested_evidence() -> None:
    year = FreshnessPolicy(ttl=timedelta(days=365), at_risk=timedelta(days=30))
    signed = NOW - timedelta(days=400)
    valid = KindEvidence("attestation", year, signed, valid_until=NOW + timedelta(days=60))
    assert control_freshness(REF, [valid], NOW).status is Freshness.FRESH
    expiring = KindEvidence("attestation", year, signed, valid_until=NOW + timedelta(days=10))
    assert control_freshness(REF, [expiring], NOW).status is Freshness.AT_RISK
    expired = KindEvidence("attestation", year, NOW - timedelta(days=2), valid_until=NOW - timedelta(days=1))
    assert control_freshness(REF, [expired], NOW).status is Freshness.STALE
