"""Charts of monitored metrics over an export's window, drawn from the stored evidence.

Every ``monitor.metric`` record carries the samples its query returned; every ``monitor.drift_report`` one
value (the share of drifted columns) and its threshold. As records stream past, the samples of each monitored
series are folded into a fixed number of time buckets (count, min, mean, max, breaches), so memory stays flat
however long the window. Each chart is a self-contained SVG (no script, nothing fetched) with its bound,
breaches and gaps marked, and the numbers it was drawn from are written beside it as CSV; the raw samples are
the evidence records themselves, hashed in the bundle.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

__all__ = ["BUCKETS", "CHART_KINDS", "Chart", "ChartBook", "chart_csv", "chart_svg", "charts_index"]

KIND_METRIC = "monitor.metric"
KIND_DRIFT = "monitor.drift_report"
CHART_KINDS = frozenset({KIND_METRIC, KIND_DRIFT})
BUCKETS = 480
"""Points per chart: about one per 1.5 px of the plot; a year's minute samples fold into 18-hour buckets."""
_MAX_GAPS = 500
_WIDTH, _HEIGHT = 760, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 16, 34
_COLOURS = ("#0969da", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#57606a", "#0550ae", "#953800")


@dataclass(slots=True)
class _Bucket:
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    breaches: int = 0
    non_finite: int = 0


@dataclass
class _Series:
    labels: str
    buckets: list[_Bucket] = field(default_factory=lambda: [_Bucket() for _ in range(BUCKETS)])
    last_ts: float = -math.inf
    samples: int = 0


@dataclass
class Chart:
    """One monitored quantity of one subject: its series over the window, its bound and where data was missing."""

    kind: str
    subject: str
    title: str
    start: float
    end: float
    bound_min: float | None = None
    bound_max: float | None = None
    step_seconds: float | None = None
    series: dict[str, _Series] = field(default_factory=dict)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    gaps_dropped: int = 0
    records: int = 0
    error_records: int = 0
    _covered_until: float | None = None

    @property
    def slug(self) -> str:
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in f"{self.kind}-{self.subject}")
        return safe[:150]

    @property
    def breaches(self) -> int:
        return sum(b.breaches for s in self.series.values() for b in s.buckets)

    def bucket_of(self, ts: float) -> int | None:
        if not self.start <= ts <= self.end:
            return None
        span = self.end - self.start
        return min(int((ts - self.start) / span * BUCKETS), BUCKETS - 1) if span > 0 else 0

    def within(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return (self.bound_min is None or value >= self.bound_min) and (
            self.bound_max is None or value <= self.bound_max
        )

    def add(self, labels: str, ts: float, value: float) -> None:
        index = self.bucket_of(ts)
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series(labels)
        if index is None or ts <= series.last_ts:
            return  # outside the window, or a sample an earlier record's window already gave
        series.last_ts = ts
        series.samples += 1
        bucket = series.buckets[index]
        if not math.isfinite(value):
            bucket.non_finite += 1
            bucket.breaches += 1
            return
        bucket.count += 1
        bucket.total += value
        bucket.low = min(bucket.low, value)
        bucket.high = max(bucket.high, value)
        if not self.within(value):
            bucket.breaches += 1

    def seen(self, ts: float) -> None:
        """A moment with data: a silence longer than 1.5 steps before it is a gap."""
        if not self.start <= ts <= self.end:
            return
        tolerance = 1.5 * (self.step_seconds or 0)
        previous = self.start if self._covered_until is None else self._covered_until
        if ts > previous and ts - previous > tolerance:
            self._gap(previous, ts)
        self._covered_until = max(ts, previous)

    def finish(self) -> None:
        previous = self.start if self._covered_until is None else self._covered_until
        tolerance = 1.5 * (self.step_seconds or 0)
        if self.end - previous > tolerance:
            self._gap(previous, self.end)

    def _gap(self, start: float, end: float) -> None:
        if self.gaps and start - self.gaps[-1][1] <= 1e-6:
            self.gaps[-1] = (self.gaps[-1][0], end)
        elif len(self.gaps) < _MAX_GAPS:
            self.gaps.append((start, end))
        else:
            self.gaps_dropped += 1

    def describe_bound(self) -> str:
        if self.bound_min is not None and self.bound_max is not None:
            return f"between {self.bound_min:g} and {self.bound_max:g}"
        if self.bound_min is not None:
            return f">= {self.bound_min:g}"
        return f"<= {self.bound_max:g}" if self.bound_max is not None else "no bound"

    def as_json(self, files: dict[str, str]) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "title": self.title,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "bound": {"min": self.bound_min, "max": self.bound_max},
            "series": [{"labels": json.loads(s.labels), "samples": s.samples} for s in self.series.values()],
            "samples": sum(s.samples for s in self.series.values()),
            "breaching_samples": self.breaches,
            "records": self.records,
            "error_records": self.error_records,
            "gaps": [{"start": _iso(a), "end": _iso(b), "seconds": round(b - a, 3)} for a, b in self.gaps],
            "gaps_not_listed": self.gaps_dropped,
            "files": files,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    parsed = datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


class ChartBook:
    """The charts of one export, fed one evidence row at a time (rows of other kinds are ignored cheaply)."""

    def __init__(self, start: datetime | None, end: datetime) -> None:
        self._start = None if start is None else start.timestamp()
        self._end = end.timestamp()
        self.charts: dict[tuple[str, str], Chart] = {}

    def admit(self, kind: str, subject: str, observed_at: Any, payload_json: str) -> None:
        if kind not in CHART_KINDS:
            return
        try:
            payload = json.loads(payload_json)
        except ValueError:
            return  # verify-bundle names a damaged record; a chart does not
        if not isinstance(payload, dict):
            return
        if kind == KIND_METRIC:
            self._metric(subject, payload)
        else:
            self._drift(subject, _timestamp(observed_at), payload)

    def _chart(self, kind: str, subject: str, title: str, start: float, end: float) -> Chart:
        chart = self.charts.get((kind, subject))
        if chart is None:
            lo = self._start if self._start is not None else start
            hi = self._end if self._start is not None else end
            chart = self.charts[(kind, subject)] = Chart(kind, subject, title, lo, hi)
        return chart

    def _metric(self, subject: str, payload: dict[str, Any]) -> None:
        window = payload.get("window") or {}
        try:
            start, end = _timestamp(window["start"]), _timestamp(window["end"])
        except (KeyError, TypeError, ValueError):
            return
        title = f"{payload.get('monitor') or subject}: {payload.get('query', '')}"
        chart = self._chart(KIND_METRIC, subject, title, start, end)
        chart.records += 1
        bound = payload.get("bound") or {}
        chart.bound_min, chart.bound_max = _number(bound.get("min")), _number(bound.get("max"))
        chart.step_seconds = _number(window.get("step_seconds")) or chart.step_seconds
        if payload.get("status") == "error":
            chart.error_records += 1
        times: set[float] = set()
        for series in payload.get("series") or []:
            labels = json.dumps(series.get("labels") or {}, sort_keys=True)
            for item in series.get("values") or []:
                ts, value = _number(item[0]), _number(item[1])
                if ts is None:
                    continue
                chart.add(labels, ts, math.nan if value is None else value)
                if value is not None and math.isfinite(value):
                    times.add(ts)
        for ts in sorted(times):
            chart.seen(ts)

    def _drift(self, subject: str, ts: float, payload: dict[str, Any]) -> None:
        share = _number(payload.get("share_of_drifted_columns"))
        columns, drifted = _number(payload.get("number_of_columns")), _number(payload.get("number_of_drifted_columns"))
        if share is None and columns and drifted is not None:
            share = drifted / columns
        if share is None and payload.get("dataset_drift") is None:
            return  # a report without a drift share (a quality-only document) has nothing to plot
        chart = self._chart(KIND_DRIFT, subject, f"{subject}: share of drifted columns", ts, ts)
        chart.records += 1
        chart.bound_max = _number(payload.get("drift_share_threshold"))
        labels = json.dumps({"report_format": payload.get("format")}, sort_keys=True)
        value = math.nan if share is None else share
        chart.add(labels, ts, value)
        series = chart.series[labels]
        index = chart.bucket_of(ts)
        if payload.get("dataset_drift") is True and chart.within(value) and index is not None and series.last_ts == ts:
            series.buckets[index].breaches += 1  # the report's own drift verdict is a breach whatever the share

    def finished(self) -> list[Chart]:
        out = []
        for key in sorted(self.charts):
            chart = self.charts[key]
            if chart.kind == KIND_METRIC:
                chart.finish()
            out.append(chart)
        return out


def chart_csv(chart: Chart) -> bytes:
    """The numbers behind the chart: one line per series and bucket that holds samples."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["series", "bucket_start", "bucket_end", "samples", "min", "mean", "max", "breaches", "non_finite"])
    width = (chart.end - chart.start) / BUCKETS
    for series in chart.series.values():
        for i, b in enumerate(series.buckets):
            if b.count == 0 and b.non_finite == 0:
                continue
            finite = b.count > 0
            writer.writerow(
                [
                    series.labels,
                    _iso(chart.start + i * width),
                    _iso(chart.start + (i + 1) * width),
                    b.count + b.non_finite,
                    repr(b.low) if finite else "",
                    repr(b.total / b.count) if finite else "",
                    repr(b.high) if finite else "",
                    b.breaches,
                    b.non_finite,
                ]
            )
    return buf.getvalue().encode("utf-8")


def _scale(chart: Chart) -> tuple[float, float]:
    values = [v for s in chart.series.values() for b in s.buckets if b.count for v in (b.low, b.high)]
    values += [v for v in (chart.bound_min, chart.bound_max) if v is not None]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def _label_text(labels: str) -> str:
    parsed = json.loads(labels)
    return ", ".join(f"{k}={v}" for k, v in parsed.items()) or "(no labels)"


def chart_svg(chart: Chart) -> bytes:
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    low, high = _scale(chart)
    span = (chart.end - chart.start) or 1.0

    def x(ts: float) -> float:
        return _LEFT + (ts - chart.start) / span * plot_w

    def y(value: float) -> float:
        return _TOP + (high - value) / (high - low) * plot_h

    width = span / BUCKETS
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" class="chart" data-kind="{escape(chart.kind)}" '
        f'data-series-count="{len(chart.series)}" font-family="DejaVu Sans, sans-serif" font-size="10">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#ffffff" stroke="#d0d7de"/>',
    ]
    for gap_start, gap_end in chart.gaps:
        parts.append(
            f'<rect class="gap" x="{x(gap_start):.1f}" y="{_TOP}" width="{max(x(gap_end) - x(gap_start), 1.0):.1f}" '
            f'height="{plot_h}" fill="#6e7781" fill-opacity="0.18">'
            f"<title>no data {escape(_iso(gap_start))} to {escape(_iso(gap_end))}</title></rect>"
        )
    for limit, name in ((chart.bound_min, "min"), (chart.bound_max, "max")):
        if limit is not None:
            parts.append(
                f'<line class="bound" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
                f'stroke="#cf222e" stroke-dasharray="5 3"><title>bound {name} {limit:g}</title></line>'
            )
    breaches = []
    # points further apart than the gap rule (1.5 steps) are not joined; reports (no step) are always joined
    joined = max(1.5 * chart.step_seconds, 1.5 * width) if chart.step_seconds else math.inf
    for n, series in enumerate(chart.series.values()):
        colour = _COLOURS[n % len(_COLOURS)]
        runs: list[list[str]] = [[]]
        previous: float | None = None
        for i, b in enumerate(series.buckets):
            mid = chart.start + (i + 0.5) * width
            if b.count:
                if previous is not None and mid - previous > joined:
                    runs.append([])  # a stretch with no data: the line is broken there, not drawn across it
                runs[-1].append(f"{x(mid):.1f},{y(b.total / b.count):.1f}")
                previous = mid
            if b.breaches:
                worst = b.low if chart.bound_min is not None and b.count and b.low < chart.bound_min else b.high
                at = y(worst) if b.count else _TOP + 4
                breaches.append(
                    f'<circle class="breach" cx="{x(mid):.1f}" cy="{at:.1f}" r="3" fill="#cf222e">'
                    f"<title>{b.breaches} sample(s) outside the bound</title></circle>"
                )
        paths = "".join(
            f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            if len(run) > 1
            else f'<circle cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}" r="2" fill="{colour}"/>'
            for run in runs
            if run
        )
        parts.append(
            f'<g class="series" data-labels="{escape(series.labels)}"><title>{escape(_label_text(series.labels))}'
            f"</title>{paths}</g>"
        )
    parts += breaches
    at = float(_LEFT)
    for n, series in enumerate(chart.series.values()):
        text = _label_text(series.labels)[:60]
        parts.append(
            f'<rect x="{at:.0f}" y="4" width="10" height="8" fill="{_COLOURS[n % len(_COLOURS)]}"/>'
            f'<text class="legend" x="{at + 13:.0f}" y="12">{escape(text)}</text>'
        )
        at += 24 + 6 * len(text)
    for value in (low, (low + high) / 2, high):
        parts.append(f'<text x="{_LEFT - 4}" y="{y(value) + 3:.1f}" text-anchor="end">{value:.3g}</text>')
    bottom = _TOP + plot_h + 14
    parts.append(f'<text x="{_LEFT}" y="{bottom}">{escape(_iso(chart.start)[:16])}</text>')
    parts.append(f'<text x="{_LEFT + plot_w}" y="{bottom}" text-anchor="end">{escape(_iso(chart.end)[:16])}</text>')
    legend = f"bound {chart.describe_bound()} · {chart.breaches} breaching samples · {len(chart.gaps)} gaps"
    parts.append(f'<text x="{_LEFT}" y="{bottom + 14}" fill="#57606a">{escape(legend)}</text>')
    parts.append("</svg>")
    return "".join(parts).encode("utf-8")


def charts_index(charts: Iterable[Chart], files: dict[str, dict[str, str]]) -> bytes:
    document = {"charts": [c.as_json(files.get(c.slug, {})) for c in charts]}
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
