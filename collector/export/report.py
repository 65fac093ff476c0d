"""index.html: a self-contained report for auditors (inline CSS and SVG, no scripts, nothing fetched)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from collector.export.charts import Chart, chart_svg
from collector.export.master_matrix import MatrixRow, matrix_table_html
from collector.export.matrix import ControlSummary, Window
from collector.export.narratives import Narratives
from collector.freshness import Freshness

__all__ = ["ReportContent", "index_html"]

_GAPS_LISTED = 10


@dataclass(frozen=True)
class ReportContent:
    """What the report shows beyond the control table: narratives, the master matrix and the charts."""

    narratives: Narratives = field(default_factory=Narratives)
    matrix: Sequence[MatrixRow] = ()
    frameworks: Sequence[str] = ()
    charts: Sequence[Chart] = ()


_TIMELINE_WIDTH = 200
_STATUS_COLOUR = {
    Freshness.FRESH: "#1a7f37",
    Freshness.AT_RISK: "#b7791f",
    Freshness.STALE: "#c62828",
    Freshness.MISSING: "#6e1b1b",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1f2328;
background:#f6f8fa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.meta{color:#57606a;font-size:13px;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de;width:100%;font-size:12px}
td.kinds,td.when{white-space:nowrap}
th,td{padding:6px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{background:#eaeef2}
.status{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.ok{color:#1a7f37}.bad{color:#c62828}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
footer{margin-top:24px;color:#57606a;font-size:12px}
section.control{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:10px 0;
break-inside:avoid}section.control h3{font-size:15px;margin:0 0 6px}.narrative{font-style:italic;max-width:900px}
figure{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px;margin:10px 0;break-inside:avoid}
figcaption{font-size:12px;color:#57606a}dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;
font-size:12px;margin:6px 0}dt{color:#57606a}dd{margin:0}table.matrix td.own{font-weight:600}
"""


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat()


def _when(value: datetime | None) -> str:
    """Date and time on two lines, so the column stays narrow."""
    if value is None:
        return "-"
    text = value.isoformat()
    return f"{escape(text[:10])}<br>{escape(text[11:])}"


def _timeline(summary: ControlSummary, window: Window) -> str:
    period = window.period
    if period is None:
        return ""
    total = period.seconds
    parts = [
        f'<svg width="{_TIMELINE_WIDTH}" height="14" role="img" aria-label="coverage of {escape(str(summary.ref))}">',
        f'<rect x="0" y="0" width="{_TIMELINE_WIDTH}" height="14" fill="#2da44e"/>',
    ]
    for gap in summary.coverage.gaps:
        x = (gap.start - period.start).total_seconds() / total * _TIMELINE_WIDTH
        width = max(gap.seconds / total * _TIMELINE_WIDTH, 1.0)
        colour = "#6e1b1b" if gap.reason == "missing" else "#cf222e"
        title = f"{gap.reason}: {_iso(gap.start)} to {_iso(gap.end)}"
        parts.append(f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="14" fill="{colour}">')
        parts.append(f"<title>{escape(title)}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def _row(summary: ControlSummary, window: Window) -> str:
    status = summary.status
    share = summary.coverage.covered_share
    link = (
        f'<a href="{escape(summary.records_file)}">{summary.records} records</a>'
        if summary.records_file
        else f"{summary.records} records"
    )
    verdict = '<span class="ok">satisfied</span>' if summary.satisfied else '<span class="bad">not satisfied</span>'
    cells = [
        f"<td>{escape(summary.ref.control)}</td>",
        f"<td>{escape(summary.title)}</td>",
        f'<td><span class="status" style="background:{_STATUS_COLOUR[status]}">{escape(status.value)}</span></td>',
        f"<td>{verdict}</td>",
        f'<td class="when">{_when(summary.newest_observed_at)}</td>',
        f'<td class="kinds">{"<br>".join(escape(k) for k in summary.evidence_kinds) or "-"}</td>',
        f"<td>{escape(summary.outcomes_text()) or '-'}</td>",
        f"<td>{link}</td>",
    ]
    if window.period is not None:
        gaps = len(summary.coverage.gaps)
        cells.append(f"<td>{'-' if share is None else f'{share:.1%}'} · {gaps} gap{'' if gaps == 1 else 's'}</td>")
        cells.append(f"<td>{_timeline(summary, window)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _cards(summaries: list[ControlSummary]) -> str:
    statuses = Counter(s.status for s in summaries)
    satisfied = sum(1 for s in summaries if s.satisfied)
    cards = [("controls", len(summaries)), ("satisfied", satisfied), ("records", sum(s.records for s in summaries))]
    cards += [(status.value.replace("_", " "), statuses.get(status, 0)) for status in Freshness]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{n}</b>{escape(label)}</div>' for label, n in cards)
        + "</div>"
    )


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def _chart_figure(chart: Chart) -> str:
    caption = (
        f"{escape(chart.title)} — bound {escape(chart.describe_bound())}, {chart.breaches} breaching samples, "
        f"{len(chart.gaps)} gaps, from {chart.records} records"
        f"{f' ({chart.error_records} with errors)' if chart.error_records else ''}. "
        f'Numbers: <a href="charts/{escape(chart.slug)}.csv">charts/{escape(chart.slug)}.csv</a>'
    )
    svg = chart_svg(chart).decode("utf-8")
    return f'<figure id="chart-{_anchor(chart.slug)}">{svg}<figcaption>{caption}</figcaption></figure>'


def _detail(summary: ControlSummary, window: Window, content: ReportContent) -> str:
    ref = summary.ref
    narrative = content.narratives.get(ref)
    source = content.narratives.source(ref)
    parts = [f'<section class="control" id="control-{_anchor(str(ref))}">']
    parts.append(f"<h3>{escape(ref.control)} — {escape(summary.title)}</h3>")
    if narrative:
        parts.append(f'<p class="narrative">{escape(narrative)} <small>({escape(source)} narrative)</small></p>')
    else:
        parts.append('<p class="narrative">No narrative for this control.</p>')
    evidence = ", ".join(f"{escape(k)}: {n}" for k, n in sorted(summary.kind_records.items())) or "no records"
    fresh = summary.coverage.freshness
    share = summary.coverage.covered_share
    rows = [
        ("evidence", evidence),
        ("evidence kinds mapped", escape(", ".join(summary.evidence_kinds)) or "-"),
        ("check results", escape(summary.outcomes_text()) or "-"),
        (
            "status at the end",
            f"{escape(summary.status.value)} (newest observation {_iso(fresh.newest_observed_at)},"
            f" expires {_iso(fresh.expires_at)})",
        ),
        ("result", "satisfied" if summary.satisfied else "not satisfied"),
    ]
    if window.period is not None:
        gaps = summary.coverage.gaps
        listed = "<br>".join(
            f"{escape(g.reason)}: {escape(_iso(g.start))} to {escape(_iso(g.end))}" for g in gaps[:_GAPS_LISTED]
        )
        more = f"<br>and {len(gaps) - _GAPS_LISTED} more (coverage.json)" if len(gaps) > _GAPS_LISTED else ""
        rows.append(
            (
                "freshness across the period",
                f"{'-' if share is None else f'{share:.1%}'} covered {_timeline(summary, window)}",
            )
        )
        rows.append(("gaps", (listed + more) or "none"))
    attestations = "<br>".join(
        f"{escape(a['title'])} — by {escape(a['attested_by'])}, {escape(str(a['observed_at'])[:10])}, valid until "
        f"{escape(a['valid_until'][:10])}"
        for a in summary.attestations
    )
    rows.append(("attestations", attestations or "none"))
    charts = [c for c in content.charts if c.kind in summary.evidence_kinds]
    if charts:
        links = ", ".join(f'<a href="#chart-{_anchor(c.slug)}">{escape(c.subject)}</a>' for c in charts)
        rows.append(("charts", links))
    parts.append("<dl>" + "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows) + "</dl>")
    parts.append("</section>")
    return "".join(parts)


def index_html(
    framework_name: str,
    window: Window,
    summaries: list[ControlSummary],
    generator: str,
    content: ReportContent | None = None,
) -> bytes:
    content = content or ReportContent()
    headers = ["control", "title", "status at as-of", "result", "newest observation", "evidence kinds"]
    headers += ["check outcomes", "evidence"]
    legend = ""
    if window.period is not None:
        headers += ["coverage", "freshness timeline"]
        legend = (
            '<p class="legend">Timeline across the period:<span style="background:#2da44e"></span>fresh'
            '<span style="background:#cf222e"></span>stale<span style="background:#6e1b1b"></span>missing</p>'
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    rows = "\n".join(_row(s, window) for s in summaries)
    matrix = ""
    if content.matrix:
        matrix = (
            "<h2>Master control matrix</h2><p>Each control of this bundle with the controls of other frameworks it is"
            " linked to, by a crosswalk or by shared evidence kinds (also matrix.csv and matrix.html).</p>"
            + matrix_table_html(content.matrix, content.frameworks)
        )
    charts = ""
    if content.charts:
        charts = (
            "<h2>Monitored metrics</h2><p>Each chart is drawn from the stored evidence records; grey bands are spans"
            " with no data, the dashed red lines the bound, red dots breaches.</p>"
            + "\n".join(_chart_figure(c) for c in content.charts)
        )
    details = "\n".join(_detail(s, window, content) for s in summaries)
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evidence report: {escape(framework_name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Evidence report: {escape(framework_name)}</h1>
<div class="meta">Window: {escape(window.describe())} ·
evidence as stored at or before {escape(_iso(window.as_of))}</div>
<h2>Summary</h2>
{_cards(summaries)}
<h2>Controls</h2>
{legend}
<table><thead><tr>{head}</tr></thead>
<tbody>
{rows}
</tbody></table>
{matrix}
{charts}
<h2>Controls in detail</h2>
{details}
<footer>Generated by {escape(generator)}. Every file of this bundle is listed with its SHA-256 in manifest.json,
which is signed (Ed25519) in the file <code>signature</code>; check with <code>evidence-collector verify-bundle</code>.
</footer>
</body></html>
"""
    return html.encode("utf-8")
