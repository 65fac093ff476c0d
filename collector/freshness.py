"""Evidence freshness per control: pure functions of evidence times and ``now``.

Three rules every reader of freshness shares (the in-memory state, status, /metrics, coverage, export):

- a record's freshness counts from :func:`fresh_from`: its ``observed_at``, or its ``collected_at`` when the source
  dated it later (evidence cannot be newer than the moment it was collected, so a future date never keeps it fresh);
- a record whose checks are all ``error`` proved nothing and does not refresh anything (:func:`counts_for_freshness`);
- of the evidence of one kind behind a control, the one whose validity ends last counts (:func:`longest_lived`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from collector.mappings import FreshnessPolicy
from collector.model import ControlRef

__all__ = [
    "STATUS_CODE",
    "ControlFreshness",
    "EvidenceTimes",
    "Freshness",
    "KindEvidence",
    "classify_expiry",
    "control_freshness",
    "counts_for_freshness",
    "expires_at",
    "fresh_from",
    "longest_lived",
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


def fresh_from(observed_at: datetime, collected_at: datetime | None) -> datetime:
    """When a record's freshness starts: the source's ``observed_at``, but never later than ``collected_at``."""
    if collected_at is None or observed_at <= collected_at:
        return observed_at
    return collected_at


def counts_for_freshness(checks: Iterable[Mapping[str, Any]]) -> bool:
    """False for a record whose checks are all ``error`` (access denied, a failed source): it judged nothing.
    A record without checks (an attestation) counts: it is judged by its validity."""
    judged = False
    for check in checks:
        if check.get("result") != "error":
            return True
        judged = True
    return not judged


@dataclass(frozen=True, slots=True, order=True)
class EvidenceTimes:
    """The times of one stored record that freshness reads."""

    fresh_from: datetime
    """See :func:`fresh_from`."""
    valid_until: datetime | None = None


def longest_lived(
    candidates: Iterable[EvidenceTimes], policy: FreshnessPolicy, override: FreshnessPolicy | None = None
) -> EvidenceTimes | None:
    """The evidence that keeps the control fresh longest (the newest on a tie), by :func:`expires_at`."""
    return max(
        candidates,
        key=lambda ev: (expires_at(ev.fresh_from, ev.valid_until, policy, override), ev.fresh_from),
        default=None,
    )


@dataclass(frozen=True, slots=True)
class KindEvidence:
    """The evidence of one kind tagged with a control that keeps it fresh longest (or none yet), with the policy
    that judges it. ``newest_observed_at`` is that record's :func:`fresh_from` time."""

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
    """When evidence whose freshness counts from ``observed_at`` (see :func:`fresh_from`) stops being fresh: its
    explicit validity (attestations), unless the configuration overrides the control's policy; otherwise that time
    plus the TTL."""
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
