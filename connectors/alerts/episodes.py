"""Pure logic: alert episodes from an ``ALERTS`` range vector, and which silence acknowledged each."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.sdk import UnreadableTimestamp, read_timestamp

__all__ = ["Episode", "Silence", "acknowledge", "episodes_from", "silence_from"]

_DROPPED_LABELS = ("__name__", "alertstate")


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[tuple[str, str, bool, bool], ...]
    """(name, value, is_regex, is_equal) as Alertmanager's API v2 gives them."""
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        for name, value, is_regex, is_equal in self.matchers:
            have = labels.get(name, "")
            hit = re.fullmatch(value, have) is not None if is_regex else have == value
            if hit != is_equal:
                return False
        return True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [{"name": n, "value": v, "isRegex": r, "isEqual": e} for n, v, r, e in self.matchers],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "created_by": self.created_by,
            "comment": self.comment,
            "state": self.state,
        }


def silence_from(item: Mapping[str, Any]) -> Silence:
    """One element of ``GET /api/v2/silences``; a field missing or unreadable raises ``ValueError`` naming it."""
    where = f"silence {item.get('id', '?')}"
    matchers = []
    for m in item.get("matchers") or []:
        if not isinstance(m, Mapping) or not isinstance(m.get("name"), str) or not isinstance(m.get("value"), str):
            raise ValueError(f"{where}: a matcher without a name and value")
        pattern = m["value"]
        if m.get("isRegex"):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{where}: matcher {m['name']}=~{pattern!r} is not a regular expression") from exc
        matchers.append((m["name"], pattern, bool(m.get("isRegex")), m.get("isEqual", True) is not False))
    try:
        starts = read_timestamp(item.get("startsAt"), f"{where} startsAt")
        ends = read_timestamp(item.get("endsAt"), f"{where} endsAt")
    except UnreadableTimestamp as exc:
        raise ValueError(str(exc)) from exc
    if starts is None or ends is None:
        raise ValueError(f"{where}: startsAt/endsAt {item.get('startsAt')!r}/{item.get('endsAt')!r} unreadable")
    status = item.get("status") or {}
    return Silence(
        str(item.get("id", "")),
        tuple(matchers),
        starts,
        ends,
        str(item.get("createdBy", "")),
        str(item.get("comment", "")),
        str(status.get("state", "")) if isinstance(status, Mapping) else "",
    )


@dataclass(frozen=True, slots=True)
class Episode:
    labels: dict[str, str]
    start: datetime
    end: datetime | None
    """None: still firing at the end of the window."""
    began_before_window: bool
    acknowledged_at: datetime | None = None
    silences: tuple[str, ...] = ()

    def unacknowledged_seconds(self, window_end: datetime) -> float:
        until = self.acknowledged_at or self.end or window_end
        return max((until - self.start).total_seconds(), 0.0)

    def firing_seconds(self, window_end: datetime) -> float:
        return ((self.end or window_end) - self.start).total_seconds()


def _episodes_of(
    labels: dict[str, str], times: Sequence[float], step: float, start: float, end: float
) -> list[Episode]:
    out = []
    first = prev = times[0]
    for ts in [*times[1:], None]:
        if ts is not None and ts - prev <= 1.5 * step:
            prev = ts
            continue
        still_firing = prev >= end - 1.5 * step
        out.append(
            Episode(
                labels,
                datetime.fromtimestamp(first, UTC),
                None if still_firing else datetime.fromtimestamp(prev + step, UTC),
                first <= start + 1e-6,
            )
        )
        if ts is not None:
            first = prev = ts
    return out


def episodes_from(
    series: Iterable[tuple[Mapping[str, str], Sequence[float]]], step: float, start: datetime, end: datetime
) -> list[Episode]:
    """Consecutive evaluation steps at which a label set was firing make one episode. An episode whose last sample
    is at the window's last step is still firing (``end`` None); one firing at the first step began earlier."""
    out = []
    for labels, times in series:
        kept = {k: v for k, v in labels.items() if k not in _DROPPED_LABELS}
        ordered = sorted(times)
        if ordered:
            out += _episodes_of(kept, ordered, step, start.timestamp(), end.timestamp())
    return out


def acknowledge(episodes: Iterable[Episode], silences: Sequence[Silence], window_end: datetime) -> list[Episode]:
    """Each episode with the earliest moment a matching silence was in force while it fired."""
    out = []
    for ep in episodes:
        until = ep.end or window_end
        hits = [s for s in silences if s.matches(ep.labels) and s.starts_at <= until and s.ends_at >= ep.start]
        if not hits:
            out.append(ep)
            continue
        at = min(max(s.starts_at, ep.start) for s in hits)
        out.append(Episode(ep.labels, ep.start, ep.end, ep.began_before_window, at, tuple(sorted(s.id for s in hits))))
    return out
