"""Evidence freshness per control: pure functions of the newest observation times and ``now``."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.mappings import FreshnessPolicy
from collector.model import ControlRef

__all__ = ["Freshness", "ControlFreshness", "classify_age", "control_freshness", "STATUS_CODE"]


class Freshness(enum.StrEnum):
    FRESH = "fresh"
    AT_RISK = "at_risk"
    STALE = "stale"
    MISSING = "missing"


STATUS_CODE: dict[Freshness, int] = {
    Freshness.FRESH: 0,
    Freshness.AT_RISK: 1,
    Freshness.STALE: 2,
    Freshness.MISSING: 3,
}


@dataclass(frozen=True, slots=True)
class ControlFreshness:
    ref: ControlRef
    status: Freshness
    newest_observed_at: datetime | None
    age: timedelta | None
    ttl: timedelta
    at_risk: timedelta
    evidence_kinds: tuple[str, ...]


def classify_age(age: timedelta, policy: FreshnessPolicy) -> Freshness:
    """``at_risk`` within the tolerance before expiry, ``stale`` past the TTL. Future timestamps count as age 0."""
    age = max(age, timedelta(0))
    if age > policy.ttl:
        return Freshness.STALE
    if age > policy.ttl - policy.at_risk:
        return Freshness.AT_RISK
    return Freshness.FRESH


def control_freshness(
    ref: ControlRef,
    kinds: Sequence[str],
    newest_by_kind: Mapping[str, datetime],
    policies: Mapping[str, FreshnessPolicy],
    now: datetime,
    override: FreshnessPolicy | None = None,
) -> ControlFreshness:
    """The best status over the evidence kinds mapped to the control, each judged by its own TTL
    (or by the control's override, when the configuration sets one)."""
    best: ControlFreshness | None = None
    for kind in kinds:
        policy = override or policies[kind]
        newest = newest_by_kind.get(kind)
        if newest is None:
            candidate = ControlFreshness(ref, Freshness.MISSING, None, None, policy.ttl, policy.at_risk, tuple(kinds))
        else:
            age = now - newest
            candidate = ControlFreshness(
                ref, classify_age(age, policy), newest, age, policy.ttl, policy.at_risk, tuple(kinds)
            )
        if best is None or _better(candidate, best):
            best = candidate
    if best is None:
        policy = override or FreshnessPolicy(ttl=timedelta(days=1))
        return ControlFreshness(ref, Freshness.MISSING, None, None, policy.ttl, policy.at_risk, ())
    return best


def _better(a: ControlFreshness, b: ControlFreshness) -> bool:
    if STATUS_CODE[a.status] != STATUS_CODE[b.status]:
        return STATUS_CODE[a.status] < STATUS_CODE[b.status]
    if a.age is not None and b.age is not None:
        return a.age < b.age
    return False
