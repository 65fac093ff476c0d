"""Evidence freshness per control: pure functions of the newest observation times and ``now``."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.mappings import FreshnessPolicy
from collector.model import ControlRef

__all__ = [
    "STATUS_CODE",
    "ControlFreshness",
    "Freshness",
    "KindEvidence",
    "classify_age",
    "classify_expiry",
    "control_freshness",
    "expires_at",
]


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
class KindEvidence:
    """The newest evidence of one kind tagged with a control (or none yet), with the policy that judges it."""

    kind: str
    policy: FreshnessPolicy
    newest_observed_at: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ControlFreshness:
    ref: ControlRef
    status: Freshness
    newest_observed_at: datetime | None
    age: timedelta | None
    ttl: timedelta
    at_risk: timedelta
    evidence_kinds: tuple[str, ...]
    expires_at: datetime | None = None


def classify_age(age: timedelta, policy: FreshnessPolicy) -> Freshness:
    """``at_risk`` within the tolerance before expiry, ``stale`` past the TTL. Future timestamps count as age 0."""
    age = max(age, timedelta(0))
    if age > policy.ttl:
        return Freshness.STALE
    if age > policy.ttl - policy.at_risk:
        return Freshness.AT_RISK
    return Freshness.FRESH


def classify_expiry(now: datetime, valid_until: datetime, at_risk: timedelta) -> Freshness:
    """For evidence with an explicit validity (attestations): stale once expired."""
    if now > valid_until:
        return Freshness.STALE
    if now > valid_until - at_risk:
        return Freshness.AT_RISK
    return Freshness.FRESH


def expires_at(
    observed_at: datetime,
    valid_until: datetime | None,
    policy: FreshnessPolicy,
    override: FreshnessPolicy | None = None,
) -> datetime:
    """When evidence observed at ``observed_at`` stops being fresh: its explicit validity (attestations), unless
    the configuration overrides the control's policy; otherwise its observation time plus the TTL."""
    if valid_until is not None and override is None:
        return valid_until
    return observed_at + (override or policy).ttl


def _judge(
    ref: ControlRef, ev: KindEvidence, now: datetime, override: FreshnessPolicy | None, kinds: tuple[str, ...]
) -> ControlFreshness:
    policy = override or ev.policy
    if ev.newest_observed_at is None:
        return ControlFreshness(ref, Freshness.MISSING, None, None, policy.ttl, policy.at_risk, kinds)
    age = now - ev.newest_observed_at
    expires = expires_at(ev.newest_observed_at, ev.valid_until, ev.policy, override)
    ttl = expires - ev.newest_observed_at
    status = classify_expiry(now, expires, policy.at_risk)
    return ControlFreshness(ref, status, ev.newest_observed_at, age, ttl, policy.at_risk, kinds, expires)


def control_freshness(
    ref: ControlRef,
    evidence: Sequence[KindEvidence],
    now: datetime,
    override: FreshnessPolicy | None = None,
) -> ControlFreshness:
    """The best status over the evidence kinds behind the control, each judged by its own TTL (or its explicit
    validity), unless the configuration overrides the control's policy."""
    kinds = tuple(sorted({ev.kind for ev in evidence}))
    best: ControlFreshness | None = None
    for ev in evidence:
        candidate = _judge(ref, ev, now, override, kinds)
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
