"""``evidence-collector export`` and ``verify-bundle``, registered on the main typer app."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from collector import __version__
from collector.cli_base import ConfigOption, _load, _open_store, app, err, out

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["export", "matrix_command", "parse_instant", "parse_period", "verify_bundle_command"]

SIGNING_KEY_FILE_ENV = "EVIDENCE_COLLECTOR_SIGNING_KEY_FILE"


class MatrixFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def parse_instant(text: str, what: str) -> datetime:
    """ISO 8601 date or date-time; a date means 00:00 UTC, a time without an offset means UTC."""
    from collector.export.errors import ExportError

    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        except ValueError as exc:
            raise ExportError(f"{what} {text!r} is not an ISO 8601 date or time (e.g. 2026-11-30T00:00:00Z)") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_period(text: str) -> tuple[datetime, datetime]:
    from collector.export.errors import ExportError

    start, sep, end = text.partition("..")
    if not sep or not start.strip() or not end.strip():
        raise ExportError(f"--period {text!r} must be START..END, e.g. 2026-09-01..2026-12-01")
    return parse_instant(start, "--period start"), parse_instant(end, "--period end")


class _BarProgress:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> _BarProgress:
        if err.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("exporting evidence"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, total: int | None) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task("export", total=total)

    def advance(self, records: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, records)


@app.command()
def export(
    ctx: typer.Context,
    framework: Annotated[str, typer.Option(help="soc2, iso27001, nist_ai_rmf or iso42001.")],
    out_path: Annotated[Path, typer.Option("--out", help="Bundle to write (a .zip).")],
    control: Annotated[
        list[str] | None, typer.Option("--control", help="Only this control (repeatable), e.g. CC7.1.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The evidence as stored at T (ISO 8601).", show_default=False)
    ] = None,
    period: Annotated[
        str | None, typer.Option("--period", help="Full history stored within START..END.", show_default=False)
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            envvar=SIGNING_KEY_FILE_ENV,
            help="Ed25519 private key (PEM); or put the PEM itself in $EVIDENCE_COLLECTOR_SIGNING_KEY.",
            show_default=False,
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also print the report to report.pdf with headless Chromium.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write a signed evidence bundle: records, control matrix, coverage gaps, charts, HTML report and OSCAL."""
    from collector.errors import MappingError
    from collector.export.bundle import build_request, config_digest, export_bundle
    from collector.export.errors import ExportError
    from collector.export.narratives import load_narratives
    from collector.export.signing import load_signing_key

    loaded = _load(ctx, config)
    try:
        narratives = load_narratives(loaded.mappings, loaded.app.narratives)
    except MappingError as exc:
        err.print(f"export: narratives: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    try:
        request = build_request(
            loaded.mappings,
            loaded.overrides,
            config_digest(loaded),
            __version__,
            framework=framework,
            controls=control or [],
            as_of=parse_instant(as_of, "--as-of") if as_of else None,
            period=parse_period(period) if period else None,
            narratives=narratives,
            pdf=pdf,
        )
        key = load_signing_key(sign_key)
    except ExportError as exc:
        err.print(f"export: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    store = _open_store(loaded, migrate=False)
    try:
        with _BarProgress() as progress:
            result = export_bundle(store, request, out_path, key, progress)
    except ExportError as exc:
        err.print(f"export: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    finally:
        store.dispose()
    counts = result.manifest["counts"]
    out.print(
        f"wrote {out_path}: {counts['records']} records, {counts['controls']} controls, {counts['gaps']} gaps, "
        f"signed by {result.manifest['signing']['fingerprint']}",
        highlight=False,
        soft_wrap=True,
    )


def _compare_anchor(ctx: typer.Context, config: Path | None, anchor: Any) -> None:
    """The live store must still hold the bundle's last chain link: else rows were removed or re-chained."""
    if anchor is None:
        out.print("store: the bundle holds no evidence, so no chain anchor to compare", highlight=False)
        return
    if (
        not isinstance(anchor, dict)
        or not isinstance(anchor.get("seq"), int)
        or not isinstance(anchor.get("chain_hash"), str)
    ):
        err.print("bundle does not verify: manifest.json: chain_anchor is not {seq, chain_hash}", highlight=False)
        raise typer.Exit(1)
    live = _open_store(_load(ctx, config), migrate=False)
    try:
        at = live.chain_hash_at(anchor["seq"])
        head = live.chain_head()
    finally:
        live.dispose()
    if at is None:
        why = f"truncated: the store ends at seq {head.seq}, the bundle's anchor is seq {anchor['seq']}"
    elif at != anchor["chain_hash"]:
        why = f"re-chained: record seq {anchor['seq']} has chain hash {at}, the bundle's anchor {anchor['chain_hash']}"
    else:
        out.print(f"store: continues the bundle's chain anchor (seq {anchor['seq']})", highlight=False)
        return
    err.print(f"store does not match the bundle: {why}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
@app.command("matrix")
def matrix_command(
    ctx: typer.Context,
    framework: Annotated[
        list[str] | None, typer.Option("--framework", help="Only rows of this framework (repeatable).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Status as stored at T (ISO 8601); default now.", show_default=False)
    ] = None,
    period: Annotated[
        str | None, typer.Option("--period", help="Status and gaps over START..END.", show_default=False)
    ] = None,
    output: Annotated[MatrixFormat, typer.Option("--format", help="table, json or csv.")] = MatrixFormat.table,
    config: ConfigOption = None,
) -> None:
    """The master control matrix: every control with evidence, the controls of other frameworks it is linked to
    (crosswalks, shared evidence kinds), its evidence kinds and its status over the window."""
    import json
    import sys

    from collector.crosswalk import load_crosswalks
    from collector.errors import MappingError
    from collector.export.bundle import assess_controls, build_request
    from collector.export.errors import ExportError
    from collector.export.master_matrix import framework_columns, matrix_csv, matrix_json, matrix_rows

    loaded = _load(ctx, config)
    mappings = loaded.mappings
    wanted = framework or mappings.frameworks()
    if period and as_of:
        err.print("matrix: give --as-of or --period, not both", highlight=False, markup=False)
        raise typer.Exit(2)
    store = _open_store(loaded, migrate=False)
    try:
        summaries = []
        for name in wanted:
            request = build_request(
                mappings,
                loaded.overrides,
                "",
                __version__,
                framework=name,
                as_of=None if period else (parse_instant(as_of, "--as-of") if as_of else datetime.now(UTC)),
                period=parse_period(period) if period else None,
            )
            summaries += assess_controls(store, request)
        crosswalks = load_crosswalks(mappings.root / "crosswalks", mappings)
    except (ExportError, MappingError) as exc:
        err.print(f"matrix: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    finally:
        store.dispose()
    frameworks = framework_columns(mappings)
    rows = matrix_rows(summaries, mappings, crosswalks)
    if output is MatrixFormat.json:
        window = request.window
        sys.stdout.write(json.dumps(matrix_json(rows, window), indent=2, ensure_ascii=False) + "\n")
        return
    if output is MatrixFormat.csv:
        sys.stdout.write(matrix_csv(rows, frameworks).decode("utf-8").removeprefix("\ufeff"))
        return
    from rich.table import Table

    table = Table("control", "title", *(f for f in frameworks), "evidence kinds", "status", "result")
    for row in rows:
        s = row.summary
        linked = [
            str(s.ref) if f == s.ref.framework else ", ".join(link.control.control for link in row.linked(f)) or "-"
            for f in frameworks
        ]
        share = s.coverage.covered_share
        status = s.status.value + ("" if share is None else f" {share:.0%}")
        table.add_row(
            str(s.ref), s.title, *linked, " ".join(s.evidence_kinds), status, "ok" if s.satisfied else "not satisfied"
        )
    out.print(table)


@app.command("verify-bundle")
def verify_bundle_command(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="The bundle (.zip) to check.", exists=True, dir_okay=False)],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The signer's Ed25519 public key (PEM).",
            show_default=False,
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    store: Annotated[
        bool,
        typer.Option(
            "--store",
            help="Also compare the bundle's chain anchor with the live store (from --config): the record at the "
            "anchor's seq must still carry its chain hash.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Check every file hash, the signature and the evidence chain links. Exits 1 on the first mismatch."""
    from collector.export.errors import BundleMismatch
    from collector.export.signing import load_public_key
    from collector.export.verify import verify_bundle

    try:
        key = load_public_key(public_key) if public_key is not None else None
        report = verify_bundle(bundle, key)
    except BundleMismatch as exc:
        err.print(f"bundle does not verify: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    if store:
        _compare_anchor(ctx, config, report.manifest.get("chain_anchor"))
    out.print(
        f"bundle verified: {report.files} files, {report.records} evidence records, signed by {report.fingerprint}",
        highlight=False,
        soft_wrap=True,
    )
    if not report.key_given:
        err.print(
            "note: checked against the key inside the bundle; pass --public-key to check who signed it",
            highlight=False,
            soft_wrap=True,
        )
