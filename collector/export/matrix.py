"""The control matrix of a bundle: one summary per control, written as controls.csv and coverage.json."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.export.coverage import ControlCoverage, Period
from collector.freshness import Freshness
from collector.model import ControlRef

__all__ = ["CSV_COLUMNS", "ControlSummary", "Window", "controls_csv", "coverage_json"]

_FAILING = ("fail", "error")
_COVERED = (Freshness.FRESH, Freshness.AT_RISK)


@dataclass(frozen=True, slots=True)
class Window:
    """What an export looks at: the state as of ``as_of``, and with a period its full history."""

    as_of: datetime
    period: Period | None = None

    def as_json(self) -> dict[str, Any]:
        period = None if self.period is None else {"start": _iso(self.period.start), "end": _iso(self.period.end)}
        return {"as_of": _iso(self.as_of), "period": period}

    def describe(self) -> str:
        if self.period is None:
            return f"as of {_iso(self.as_of)}"
        return f"{_iso(self.period.start)} .. {_iso(self.period.end)}"


@dataclass(slots=True)
class ControlSummary:
    ref: ControlRef
    title: str
    coverage: ControlCoverage
    records: int = 0
    records_file: str | None = None
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    """Check id → outcome counts over the latest record per subject as of the window's end."""
    kind_records: dict[str, int] = field(default_factory=dict)
    """Evidence kind → records of it in the bundle for this control."""
    attestations: list[dict[str, Any]] = field(default_factory=list)
    """The attestation records in the bundle for this control (title, by whom, when, until when)."""

    @property
    def status(self) -> Freshness:
        return self.coverage.freshness.status

    @property
    def newest_observed_at(self) -> datetime | None:
        return self.coverage.freshness.newest_observed_at

    @property
    def evidence_kinds(self) -> tuple[str, ...]:
        return self.coverage.freshness.evidence_kinds

    @property
    def failing(self) -> int:
        return sum(counts[result] for counts in self.outcomes.values() for result in _FAILING)

    @property
    def satisfied(self) -> bool:
        """Fresh (or at risk) at the end, no failing check on the latest evidence, and no gap in the period."""
        return self.status in _COVERED and self.failing == 0 and not self.coverage.gaps

    def outcomes_text(self) -> str:
        parts = []
        for check_id, counts in sorted(self.outcomes.items()):
            tally = ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
            parts.append(f"{check_id}: {tally}")
        return "; ".join(parts)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


CSV_COLUMNS = (
    "framework",
    "control",
    "title",
    "evidence_kinds",
    "records",
    "newest_observation",
    "status_at_as_of",
    "check_outcomes",
    "covered_share",
    "gap_count",
    "records_file",
)


def _cell(text: str) -> str:
    """Keep spreadsheets from reading a text cell as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def controls_csv(summaries: list[ControlSummary]) -> bytes:
    """UTF-8 with a byte-order mark and CRLF rows, which spreadsheet programs open without an import dialog."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for s in summaries:
        share = s.coverage.covered_share
        writer.writerow(
            [
                s.ref.framework,
                _cell(s.ref.control),
                _cell(s.title),
                " ".join(s.evidence_kinds),
                s.records,
                _iso(s.newest_observed_at) or "",
                s.status.value,
                _cell(s.outcomes_text()),
                "" if share is None else f"{share:.4f}",
                len(s.coverage.gaps) if s.coverage.period is not None else "",
                s.records_file or "",
            ]
        )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def coverage_json(window: Window, summaries: list[ControlSummary]) -> bytes:
    controls = []
    for s in summaries:
        fresh = s.coverage.freshness
        share = s.coverage.covered_share
        controls.append(
            {
                "control": str(s.ref),
                "title": s.title,
                "evidence_kinds": list(s.evidence_kinds),
                "status_at_as_of": s.status.value,
                "newest_observed_at": _iso(fresh.newest_observed_at),
                "expires_at": _iso(fresh.expires_at),
                "ttl_seconds": fresh.ttl.total_seconds(),
                "covered_share": None if share is None else round(share, 6),
                "gap_seconds": s.coverage.gap_seconds,
                "gaps": [
                    {
                        "start": _iso(g.start),
                        "end": _iso(g.end),
                        "duration_seconds": g.seconds,
                        "reason": g.reason,
                        "newest_observed_at": _iso(g.newest_observed_at),
                    }
                    for g in s.coverage.gaps
                ],
            }
        )
    document = {**window.as_json(), "controls": controls}
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
