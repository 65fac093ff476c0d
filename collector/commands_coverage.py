"""Commands ``attest``, ``coverage`` and ``controls-suggest`` (registered on the main app by import)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from collector.cli_base import ConfigOption, _emit_json, _fail, _load, _open_store, app, check_framework, err, out

if TYPE_CHECKING:
    from collector.attestation import AttestationFields
    from collector.config import LoadedConfig
    from collector.coverage import ControlCoverage, CoverageBasis, CoverageReport

__all__ = ["attest_command", "controls_suggest", "coverage_command", "coverage_csv"]


class CoverageFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class SuggestFormat(StrEnum):
    table = "table"
    json = "json"


FrameworkOption = Annotated[
    str | None, typer.Option(help="Only this framework: soc2, iso27001, nist_ai_rmf, iso42001.")
]
AllConnectorsOption = Annotated[
    bool, typer.Option("--all-connectors", help="Count every installed connector type as configured.")
]
_STATE_STYLE = {"automated": "green", "attested": "cyan", "attestable": "yellow", "uncovered": "red"}


def _option(loc: Any) -> str:
    name = str(loc[0]) if loc else ""
    return "--control" if name == "controls" else "--" + name.replace("_", "-")


def _fields(raw: dict[str, Any]) -> AttestationFields:
    from pydantic import ValidationError

    from collector.attestation import AttestationFields

    try:
        return AttestationFields.model_validate({k: v for k, v in raw.items() if v not in (None, [])})
    except ValidationError as exc:
        lines = [f"{_option(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise _fail("cannot attest:\n" + "\n".join(lines)) from exc


@app.command("attest")
def attest_command(
    ctx: typer.Context,
    title: Annotated[str, typer.Option(help="What is attested, e.g. 'Information security policy v3'.")],
    by: Annotated[str, typer.Option(help="Who attests (name, role).")],
    control: Annotated[
        list[str] | None, typer.Option("--control", help="A control it supports, framework:id (repeatable).")
    ] = None,
    template: Annotated[str | None, typer.Option(help="An attestation template: adds its controls.")] = None,
    file: Annotated[Path | None, typer.Option(help="The document; its SHA-256 and size are recorded.")] = None,
    url: Annotated[str | None, typer.Option(help="Where the document lives.")] = None,
    valid_for: Annotated[str | None, typer.Option(help="How long it holds: 365d, 26w ...")] = None,
    valid_until: Annotated[str | None, typer.Option(help="Or until when: 2027-01-31.")] = None,
    observed_at: Annotated[str | None, typer.Option(help="Approval date (default now; UTC if no offset).")] = None,
    subject: Annotated[str | None, typer.Option(help="Stable id of what is attested (default: the title).")] = None,
    config: ConfigOption = None,
) -> None:
    """Store a dated, expiring attestation that a document supports controls; it goes stale like any evidence."""
    from collector.attest import prepare_attestation
    from collector.attestation import AttestationError

    loaded = _load(ctx, config)
    fields = _fields(
        {
            "title": title,
            "by": by,
            "controls": control or [],
            "template": template,
            "valid_for": valid_for,
            "valid_until": valid_until,
            "observed_at": observed_at,
            "url": url,
            "subject": subject,
        }
    )
    basis = _basis(loaded, all_connectors=False)
    try:
        run, record = prepare_attestation(
            loaded.mappings, fields, file, now=datetime.now(UTC), templates=basis.templates
        )
    except AttestationError as exc:
        raise _fail(f"cannot attest: {_option(exc.loc)}: {exc.message}") from exc
    store = _open_store(loaded)
    stored = store.commit_run(run, [record])[0]
    store.dispose()
    out.print(
        f"attested {stored.subject_type}:{stored.subject_id} for {', '.join(stored.controls)}\n"
        f"valid until {stored.valid_until.isoformat() if stored.valid_until else '-'}; "
        f"record {stored.id}, chain hash {stored.chain_hash}",
        highlight=False,
    )


def _basis(loaded: LoadedConfig, *, all_connectors: bool) -> CoverageBasis:
    from collector.coverage import basis_for_config
    from collector.errors import MappingError

    try:
        return basis_for_config(loaded, all_connectors=all_connectors)
    except MappingError as exc:
        raise _fail(f"mappings error: {exc}") from exc


def _newest(loaded: LoadedConfig) -> Any:
    from collector.daemon import load_state
    from collector.state import State

    store = _open_store(loaded, migrate=False)
    state = State()
    load_state(store, state)
    store.dispose()
    return state.snapshot().newest


def _percent(covered: int, total: int) -> str:
    return f"{100 * covered / total:.1f}%" if total else "-"


def _evidenced_by(c: ControlCoverage) -> str:
    from collector.coverage import CoverageState

    if c.state is CoverageState.AUTOMATED:
        return ", ".join([*c.kinds, *c.checks]) + f" ({', '.join(c.connectors)})"
    if c.state is CoverageState.ATTESTED:
        until = [a.valid_until.date().isoformat() for a in c.attestations if a.valid_until]
        return f"attestation until {max(until)}" if until else "attestation"
    if c.state is CoverageState.ATTESTABLE:
        return "template: " + ", ".join(c.templates)
    return f"not configured: {', '.join(c.unconfigured)}" if c.unconfigured else "-"


def _print_table(report: CoverageReport) -> None:
    from rich.table import Table

    from collector.coverage import COVERED, CoverageState

    table = Table("framework", "control", "title", "state", "evidenced by")
    for c in report.controls:
        style = _STATE_STYLE[c.state.value]
        table.add_row(c.ref.framework, c.ref.control, c.title, f"[{style}]{c.state.value}[/]", _evidenced_by(c))
    out.print(table)
    totals = Table("framework", "group", "total", *(s.value for s in CoverageState), "covered", "automated")
    for t in [*report.groups, *report.frameworks]:
        totals.add_row(
            t.framework,
            t.title if t.group is None else f"{t.group} {t.title}" if t.title != t.group else t.group,
            str(t.total),
            *(str(t.counts.get(s, 0)) for s in CoverageState),
            _percent(t.count(COVERED), t.total),
            _percent(t.counts.get(CoverageState.AUTOMATED, 0), t.total),
        )
    out.print(totals)
    goals = Table("goal", "covered", "target", "met")
    for g in report.goals:
        goals.add_row(
            g.goal.label,
            f"{g.covered}/{g.total} = {_percent(g.covered, g.total)}",
            f">= {100 * g.goal.min_share:.0f}%",
            "[green]yes[/]" if g.met else "[red]no[/]",
        )
    out.print(goals)
    for type_name, reason in sorted(report.unavailable.items()):
        err.print(f"connector {type_name} could not be loaded and counts as not configured: {reason}", markup=False)


def coverage_csv(report: CoverageReport) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["framework", "control", "title", "group", "state", "evidence_kinds", "checks", "connectors", "templates"]
    )
    for c in report.controls:
        writer.writerow(
            [
                c.ref.framework,
                c.ref.control,
                c.title,
                c.group,
                c.state.value,
                ";".join(c.kinds),
                ";".join(c.checks),
                ";".join(c.connectors),
                ";".join(c.templates),
            ]
        )
    return buffer.getvalue()


@app.command("coverage")
def coverage_command(
    ctx: typer.Context,
    framework: FrameworkOption = None,
    fmt: Annotated[CoverageFormat, typer.Option("--format")] = CoverageFormat.table,
    all_connectors: AllConnectorsOption = False,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not read stored attestations (no database needed).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Per control: automated (which kinds/checks, which connectors), attested, attestable (a template), or
    uncovered; totals per framework and group; the goals. Reproduce the shipped figures with
    `coverage --all-connectors --no-store`."""
    from collector.coverage import compute_coverage

    loaded = _load(ctx, config)
    check_framework(loaded, framework)
    basis = _basis(loaded, all_connectors=all_connectors)
    newest = {} if no_store else _newest(loaded)
    report = compute_coverage(loaded.mappings, basis, newest, datetime.now(UTC), framework)
    if fmt is CoverageFormat.json:
        _emit_json(report.as_json())
    elif fmt is CoverageFormat.csv:
        sys.stdout.write(coverage_csv(report))
    else:
        _print_table(report)


@app.command("controls-suggest")
def controls_suggest(
    ctx: typer.Context,
    framework: FrameworkOption = None,
    fmt: Annotated[SuggestFormat, typer.Option("--format")] = SuggestFormat.table,
    all_connectors: AllConnectorsOption = False,
    config: ConfigOption = None,
) -> None:
    """Controls not automated whose crosswalk partner is: candidate links to review (never applied automatically)."""
    from rich.table import Table

    from collector.coverage import compute_coverage
    from collector.crosswalk import load_crosswalks, suggest_links
    from collector.errors import MappingError

    loaded = _load(ctx, config)
    check_framework(loaded, framework)
    basis = _basis(loaded, all_connectors=all_connectors)
    try:
        crosswalks = load_crosswalks(loaded.mappings.root / "crosswalks", loaded.mappings)
    except MappingError as exc:
        raise _fail(f"mappings error: {exc}") from exc
    report = compute_coverage(loaded.mappings, basis, {}, datetime.now(UTC))
    suggestions = [s for s in suggest_links(report, crosswalks) if framework in (None, s.control.framework)]
    if fmt is SuggestFormat.json:
        _emit_json({"suggestions": [s.as_json() for s in suggestions]})
        return
    table = Table("control", "now", "via (automated)", "its evidence", "crosswalk")
    for s in suggestions:
        table.add_row(str(s.control), s.state.value, str(s.via), ", ".join([*s.kinds, *s.checks]), s.crosswalk)
    out.print(table)
    if not suggestions:
        err.print("no suggestions: no crosswalk partner of a non-automated control is automated")
