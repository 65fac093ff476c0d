"""The master control matrix: one table across frameworks.

Each row is one control with evidence mapped to it; beside it, in one column per framework, the controls it is
linked to — through a crosswalk pair (``mappings/crosswalks``) or because the same evidence kind is mapped to
both — then its evidence kinds and its status over the window. Crosswalks only relate rows here; they never
tag evidence, so a linked control's status is its own, from its own evidence.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from collector.crosswalk import Crosswalk
from collector.export.matrix import ControlSummary, Window
from collector.mappings import Mappings
from collector.model import ControlRef

__all__ = [
    "FRAMEWORK_ORDER",
    "MATRIX_COLUMNS",
    "Link",
    "MatrixRow",
    "framework_columns",
    "links_by_control",
    "matrix_csv",
    "matrix_html",
    "matrix_json",
    "matrix_rows",
]

FRAMEWORK_ORDER = ("soc2", "iso27001", "nist_ai_rmf", "iso42001")
SHARED_EVIDENCE = "shared evidence"


@dataclass(frozen=True, slots=True)
class Link:
    control: ControlRef
    via: tuple[str, ...]
    """Crosswalk names, and ``shared evidence`` when an evidence kind is mapped to both controls."""
    kinds: tuple[str, ...] = ()
    """The evidence kinds the two controls share."""

    def text(self) -> str:
        return f"{self.control.control} ({', '.join(self.via)})"


@dataclass(frozen=True, slots=True)
class MatrixRow:
    summary: ControlSummary
    links: tuple[Link, ...]

    @property
    def ref(self) -> ControlRef:
        return self.summary.ref

    def linked(self, framework: str) -> list[Link]:
        return [link for link in self.links if link.control.framework == framework]


def framework_columns(mappings: Mappings) -> list[str]:
    known = [f for f in FRAMEWORK_ORDER if f in mappings.catalogs]
    return known + sorted(set(mappings.catalogs) - set(known))


def links_by_control(mappings: Mappings, crosswalks: Sequence[Crosswalk]) -> dict[ControlRef, list[Link]]:
    """Both directions of every crosswalk pair, and every pair of controls in different frameworks that share a
    mapped evidence kind (kinds whose records name their own controls, such as attestations, relate nothing)."""
    via: dict[ControlRef, dict[ControlRef, set[str]]] = defaultdict(lambda: defaultdict(set))
    shared: dict[ControlRef, dict[ControlRef, set[str]]] = defaultdict(lambda: defaultdict(set))
    for crosswalk in crosswalks:
        for left, right in crosswalk.pairs():
            via[left][right].add(crosswalk.name)
            via[right][left].add(crosswalk.name)
    controls_by_kind: dict[str, set[ControlRef]] = defaultdict(set)
    for ref, kinds in mappings.kinds_by_control.items():
        for kind in kinds:
            mapping = mappings.kinds.get(kind)
            if mapping is not None and not mapping.declared_controls:
                controls_by_kind[kind].add(ref)
    for kind, refs in controls_by_kind.items():
        for a in refs:
            for b in refs:
                if a.framework != b.framework:
                    shared[a][b].add(kind)
    out: dict[ControlRef, list[Link]] = {}
    for ref in set(via) | set(shared):
        others = set(via.get(ref, {})) | set(shared.get(ref, {}))
        links = []
        for other in others:
            names = sorted(via.get(ref, {}).get(other, set()))
            kinds = tuple(sorted(shared.get(ref, {}).get(other, set())))
            links.append(Link(other, (*names, *((SHARED_EVIDENCE,) if kinds else ())), kinds))
        out[ref] = sorted(links, key=lambda link: _order(link.control))
    return out


def _order(ref: ControlRef) -> tuple[int, str, tuple[Any, ...]]:
    rank = FRAMEWORK_ORDER.index(ref.framework) if ref.framework in FRAMEWORK_ORDER else len(FRAMEWORK_ORDER)
    natural = tuple(int(p) if p.isdigit() else p for p in ref.control.replace(".", " ").split())
    return rank, ref.framework, natural


def matrix_rows(
    summaries: Iterable[ControlSummary], mappings: Mappings, crosswalks: Sequence[Crosswalk]
) -> list[MatrixRow]:
    links = links_by_control(mappings, crosswalks)
    rows = [MatrixRow(s, tuple(links.get(s.ref, ()))) for s in summaries]
    return sorted(rows, key=lambda r: _order(r.ref))


MATRIX_COLUMNS = (
    "framework",
    "control",
    "title",
    "evidence_kinds",
    "status_at_as_of",
    "covered_share",
    "gap_count",
    "failing_checks",
    "satisfied",
)


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _share(summary: ControlSummary) -> str:
    share = summary.coverage.covered_share
    return "" if share is None else f"{share:.4f}"


def _gaps(summary: ControlSummary) -> str:
    return str(len(summary.coverage.gaps)) if summary.coverage.period is not None else ""


def matrix_csv(rows: Sequence[MatrixRow], frameworks: Sequence[str]) -> bytes:
    """One line per control; a column per framework lists the linked controls there (``id (via)``, ``;``-separated).
    UTF-8 with a byte-order mark, as controls.csv."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*MATRIX_COLUMNS[:3], *(f"linked_{f}" for f in frameworks), *MATRIX_COLUMNS[3:]])
    for row in rows:
        s = row.summary
        writer.writerow(
            [
                s.ref.framework,
                _cell(s.ref.control),
                _cell(s.title),
                *(_cell("; ".join(link.text() for link in row.linked(f))) for f in frameworks),
                " ".join(s.evidence_kinds),
                s.status.value,
                _share(s),
                _gaps(s),
                s.failing,
                "yes" if s.satisfied else "no",
            ]
        )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def matrix_json(rows: Sequence[MatrixRow], window: Window) -> dict[str, Any]:
    out = []
    for row in rows:
        s = row.summary
        share = s.coverage.covered_share
        out.append(
            {
                "control": str(s.ref),
                "framework": s.ref.framework,
                "title": s.title,
                "linked": [
                    {"control": str(link.control), "via": list(link.via), "shared_kinds": list(link.kinds)}
                    for link in row.links
                ],
                "evidence_kinds": list(s.evidence_kinds),
                "status_at_as_of": s.status.value,
                "covered_share": None if share is None else round(share, 6),
                "gap_count": len(s.coverage.gaps) if s.coverage.period is not None else None,
                "failing_checks": s.failing,
                "satisfied": s.satisfied,
            }
        )
    return {**window.as_json(), "rows": out}


_STATUS_CLASS = {"fresh": "fresh", "at_risk": "risk", "stale": "stale", "missing": "missing"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1f2328}
table{border-collapse:collapse;width:100%;font-size:12px}th,td{padding:5px 7px;border:1px solid #d0d7de;
text-align:left;vertical-align:top}th{background:#eaeef2}.fresh{background:#dafbe1}.risk{background:#fff8c5}
.stale{background:#ffebe9}.missing{background:#ffd7d5}td.own{font-weight:600}small{color:#57606a}
"""


def matrix_table_html(rows: Sequence[MatrixRow], frameworks: Sequence[str]) -> str:
    """The matrix as an HTML table (no scripts, no styles of its own), for the report and matrix.html."""
    head = "".join(f"<th>{escape(f)}</th>" for f in frameworks)
    body = []
    for row in rows:
        s = row.summary
        cells = []
        for framework in frameworks:
            if framework == s.ref.framework:
                cells.append(f'<td class="own">{escape(s.ref.control)}<br><small>{escape(s.title)}</small></td>')
                continue
            linked = "<br>".join(
                f"{escape(link.control.control)} <small>({escape(', '.join(link.via))})</small>"
                for link in row.linked(framework)
            )
            cells.append(f"<td>{linked or '-'}</td>")
        share = s.coverage.covered_share
        status = s.status.value
        verdict = "satisfied" if s.satisfied else "not satisfied"
        cells.append(f"<td>{'<br>'.join(escape(k) for k in s.evidence_kinds) or '-'}</td>")
        cells.append(
            f'<td class="{_STATUS_CLASS.get(status, "")}">{escape(status)}'
            f"{'' if share is None else f'<br>{share:.1%} covered'}"
            f"{'' if s.coverage.period is None else f'<br>{len(s.coverage.gaps)} gaps'}</td>"
        )
        cells.append(f"<td>{escape(verdict)}{f'<br>{s.failing} failing' if s.failing else ''}</td>")
        body.append(f'<tr data-control="{escape(str(s.ref))}">' + "".join(cells) + "</tr>")
    return (
        f'<table class="matrix"><thead><tr>{head}<th>evidence kinds</th><th>status over the window</th>'
        f"<th>result</th></tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"
    )


def matrix_html(rows: Sequence[MatrixRow], frameworks: Sequence[str], window: Window, generator: str) -> bytes:
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Master control matrix</title><style>{_CSS}</style></head>
<body><h1>Master control matrix</h1>
<p>Window: {escape(window.describe())}. Each row is a control with mapped evidence; the framework columns list
the controls it is linked to by a crosswalk or by shared evidence kinds. A linked control's status is its own.</p>
{matrix_table_html(rows, frameworks)}
<p><small>Generated by {escape(generator)}.</small></p></body></html>
"""
    return html.encode("utf-8")


def matrix_json_bytes(rows: Sequence[MatrixRow], window: Window) -> bytes:
    return (json.dumps(matrix_json(rows, window), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
