"""The ``evidence-collector`` command line."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from collector import __version__
from collector.config import CONFIG_ENV, LoadedConfig, load_and_resolve
from collector.errors import ConfigurationError
from collector.freshness import Freshness
from collector.logging import configure_logging
from collector.state import State, evaluate_controls
from collector.store import EvidenceFilter, Store, StoredRecord
from collector.urls import REDACTED, is_secret_name, redact_text

__all__ = ["app", "evidence_document", "main", "status_document"]

app = typer.Typer(
    help="Continuous-compliance evidence collector for AI/ML systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration file.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

_PIPED_WIDTH = 160
"""Rich assumes 80 columns when not on a terminal; tables and messages read better wider in logs and pipes."""
out = Console(width=None if sys.stdout.isatty() else _PIPED_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() else _PIPED_WIDTH)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class ResultFilter(StrEnum):
    passed = "pass"
    fail = "fail"
    error = "error"
    not_applicable = "not_applicable"


@dataclass
class _Options:
    config: Path | None


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar=CONFIG_ENV, help="Configuration YAML file.", show_default=False),
]


@app.callback()
def _root(
    ctx: typer.Context,
    config: ConfigOption = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit(0)
    ctx.obj = _Options(config)


def _load(ctx: typer.Context, config: Path | None = None) -> LoadedConfig:
    """The configuration named after the command, else before it, else by EVIDENCE_COLLECTOR_CONFIG."""
    opts: _Options = ctx.obj
    try:
        loaded = load_and_resolve(config or opts.config)
    except ConfigurationError as exc:
        err.print(f"[bold red]configuration error[/]\n{escape(redact_text(str(exc)))}", highlight=False)
        raise typer.Exit(2) from exc
    configure_logging(loaded.app.log.level, loaded.app.log.format)
    for warning in loaded.warnings:
        structlog.get_logger("collector.config").warning("config_warning", problem=warning)
    return loaded


def _open_store(loaded: LoadedConfig, *, migrate: bool = True) -> Store:
    store = Store(loaded.app.database.url)
    try:
        if migrate:
            store.upgrade()
        else:
            store.ping()
    except Exception as exc:
        reason = redact_text(f"{type(exc).__name__}: {exc}")
        err.print(f"database error ({_safe_url(store.url)}): {reason}", highlight=False)
        raise typer.Exit(3) from exc
    return store


def _safe_url(url: str) -> str:
    """The database URL as printed: password masked, secret query parameters (``?password=``) redacted."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    query = {name: REDACTED if is_secret_name(name) else value for name, value in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def _emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


@app.command()
def run(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Run the daemon: scheduled collection, /metrics, /healthz, /readyz. Stops cleanly on SIGTERM."""
    from collector.daemon import Daemon

    loaded = _load(ctx, config)
    Daemon(loaded).run_forever()


@app.command()
def collect(
    ctx: typer.Context,
    config: ConfigOption = None,
    connector: Annotated[
        list[str] | None, typer.Option("--connector", help="Only this connector (repeatable).")
    ] = None,
) -> None:
    """Run every configured connector (or the named ones) once. Exits 1 if a run failed."""
    from collector.daemon import load_state
    from collector.runner import Runner

    loaded = _load(ctx, config)
    instances = [loaded.instance(n) for n in connector] if connector else loaded.instances
    if not instances:
        err.print("no connectors configured")
        raise typer.Exit(2)
    store = _open_store(loaded)
    state = State()
    load_state(store, state)
    runner = Runner(store, state, loaded.mappings)
    table = Table("connector", "type", "status", "observations", "problems", "error")
    failed = False
    for inst in instances:
        outcome = runner.run(inst)
        run_row = outcome.run
        failed = failed or run_row.status == "failed"
        table.add_row(
            inst.config.name,
            inst.config.type,
            run_row.status,
            str(run_row.observations),
            "\n".join(f"{p['source']}: {p['reason']}" for p in run_row.problems) or "0",
            redact_text(run_row.error) or "",
        )
    out.print(table)
    store.dispose()
    raise typer.Exit(1 if failed else 0)


def status_document(loaded: LoadedConfig, state: State, now: datetime, framework: str | None) -> dict[str, Any]:
    snap = state.snapshot()
    controls = []
    rows = evaluate_controls(snap, loaded.mappings, now, loaded.overrides, framework, loaded.active_kinds)
    for fresh, _failures, failing in rows:
        control = loaded.mappings.control(fresh.ref)
        controls.append(
            {
                "framework": fresh.ref.framework,
                "control": fresh.ref.control,
                "title": control.title,
                "status": fresh.status.value,
                "age_seconds": None if fresh.age is None else round(max(fresh.age.total_seconds(), 0.0), 3),
                "ttl_seconds": fresh.ttl.total_seconds(),
                "evidence_kinds": list(fresh.evidence_kinds),
                "failing_checks": failing,
            }
        )
    connectors = []
    names = {i.config.name: i.config.type for i in loaded.instances}
    for name, known in sorted(snap.connectors.items()):
        names.setdefault(name, known.connector_type)
    for name, type_ in sorted(names.items()):
        health = snap.connectors.get(name)
        connectors.append(
            {
                "name": name,
                "type": type_,
                "last_success": health.last_success.isoformat() if health and health.last_success else None,
                "last_status": health.last_status if health else None,
                "consecutive_failures": health.consecutive_failures if health else 0,
            }
        )
    return {"generated_at": now.isoformat(), "controls": controls, "connectors": connectors}


_STATUS_STYLE = {
    Freshness.FRESH.value: "green",
    Freshness.AT_RISK.value: "yellow",
    Freshness.STALE.value: "red",
    Freshness.MISSING.value: "red",
}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@app.command()
def status(
    ctx: typer.Context,
    config: ConfigOption = None,
    framework: Annotated[str | None, typer.Option(help="soc2, iso27001, nist_ai_rmf or iso42001.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Per control: freshness, age, TTL, evidence kinds, failing checks; per connector: health."""
    from collector.daemon import load_state

    loaded = _load(ctx, config)
    if framework and framework not in loaded.mappings.catalogs:
        err.print(f"unknown framework {framework!r} (known: {', '.join(loaded.mappings.frameworks())})")
        raise typer.Exit(2)
    store = _open_store(loaded, migrate=False)
    state = State()
    load_state(store, state)
    doc = status_document(loaded, state, datetime.now(UTC), framework)
    if fmt is OutputFormat.json:
        _emit_json(doc)
        return
    table = Table("framework", "control", "title", "status", "age", "ttl", "evidence kinds", "failing checks")
    for c in doc["controls"]:
        style = _STATUS_STYLE[c["status"]]
        table.add_row(
            c["framework"],
            c["control"],
            c["title"],
            f"[{style}]{c['status']}[/]",
            _age(c["age_seconds"]),
            _age(c["ttl_seconds"]),
            ", ".join(c["evidence_kinds"]),
            ", ".join(c["failing_checks"]) or "-",
        )
    out.print(table)
    ctable = Table("connector", "type", "last success", "last status", "consecutive failures")
    for c in doc["connectors"]:
        ctable.add_row(
            c["name"], c["type"], c["last_success"] or "never", c["last_status"] or "-", str(c["consecutive_failures"])
        )
    out.print(ctable)


@app.command()
def controls(
    ctx: typer.Context,
    config: ConfigOption = None,
    framework: Annotated[str | None, typer.Option(help="Only this framework.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """The catalogs, with the evidence kinds and checks mapped to each control."""
    loaded = _load(ctx, config)
    m = loaded.mappings
    rows: list[dict[str, Any]] = []
    for ref in m.all_controls(framework):
        control = m.control(ref)
        rows.append(
            {
                "framework": ref.framework,
                "control": ref.control,
                "title": control.title,
                "group": control.group,
                "evidence_kinds": list(m.kinds_by_control.get(ref, ())),
                "checks": list(m.checks_by_control.get(ref, ())),
            }
        )
    if fmt is OutputFormat.json:
        _emit_json({"controls": rows})
        return
    table = Table("framework", "control", "title", "evidence kinds", "checks")
    for r in rows:
        table.add_row(
            r["framework"],
            r["control"],
            r["title"],
            ", ".join(r["evidence_kinds"]) or "-",
            ", ".join(r["checks"]) or "-",
        )
    out.print(table)


def evidence_document(records: list[StoredRecord]) -> dict[str, Any]:
    return {
        "records": [
            {
                "id": r.id,
                "kind": r.kind,
                "subject": {"type": r.subject_type, "id": r.subject_id},
                "observed_at": r.observed_at.isoformat(),
                "collected_at": r.collected_at.isoformat(),
                "stored_at": r.stored_at.isoformat(),
                "connector": r.connector_type,
                "instance": r.instance,
                "controls": r.controls,
                "checks": [{"id": c["id"], "result": c["result"], "message": c["message"]} for c in r.checks],
                "content_sha256": r.content_sha256,
                "chain_hash": r.chain_hash,
                "source": r.source,
                "payload": r.payload,
            }
            for r in records
        ]
    }


@app.command()
def evidence(
    ctx: typer.Context,
    config: ConfigOption = None,
    kind: Annotated[str | None, typer.Option(help="Evidence kind, e.g. container.scan.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject id, or type:id.")] = None,
    control: Annotated[str | None, typer.Option(help="Control, framework:id (2013 ISO ids accepted).")] = None,
    check: Annotated[str | None, typer.Option(help="Only records carrying this check.")] = None,
    result: Annotated[ResultFilter | None, typer.Option(help="With --check: only this result.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """The latest record per subject, with its check results and control tags."""
    loaded = _load(ctx, config)
    controls_wanted: list[str | None] = [None]
    if control:
        try:
            controls_wanted = [str(ref) for ref in loaded.mappings.resolve(control)]
        except (LookupError, ValueError) as exc:
            err.print(str(exc))
            raise typer.Exit(2) from exc
    store = _open_store(loaded, migrate=False)
    seen: dict[str, StoredRecord] = {}
    for wanted in controls_wanted:
        filt = EvidenceFilter(
            kind=kind, subject=subject, control=wanted, check=check, result=result.value if result else None
        )
        for rec in store.latest_records(filt, with_payload=fmt is OutputFormat.json):
            seen[rec.id] = rec
    records = sorted(seen.values(), key=lambda r: (r.kind, r.subject_type, r.subject_id))
    if fmt is OutputFormat.json:
        _emit_json(evidence_document(records))
        return
    table = Table("kind", "subject", "observed at", "checks", "controls")
    for r in records:
        checks_text = "\n".join(f"{c['id']}: {c['result']} — {c['message']}" for c in r.checks) or "-"
        table.add_row(
            r.kind, f"{r.subject_type}:{r.subject_id}", r.observed_at.isoformat(), checks_text, ", ".join(r.controls)
        )
    out.print(table)
    if not records:
        err.print("no evidence matches")


@app.command()
def verify(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Walk the evidence hash chain and name the first broken row. Exits 1 on a break."""
    loaded = _load(ctx, config)
    store = _open_store(loaded, migrate=False)
    checked, brk = store.verify()
    if brk is None:
        out.print(f"chain intact: {checked} records verified")
        return
    err.print(
        f"chain broken at record seq={brk.seq} id={brk.record_id}: {brk.reason} ({checked} records before it verified)"
    )
    raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Apply database migrations (Alembic) up to the newest revision."""
    loaded = _load(ctx, config)
    store = _open_store(loaded, migrate=True)
    out.print(f"database at revision {store.current_revision()} ({_safe_url(store.url)})")


@config_app.command("check")
def config_check(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Validate the configuration, the mappings and every connector's settings; print every problem.

    Connectors whose source is reachable also check what only the source can judge (e.g. PromQL syntax)."""
    loaded = _load(ctx, config)
    rejected = [
        f"connectors[{inst.config.name}] ({inst.config.type}): {problem.source}: {problem.reason}"
        for inst in loaded.instances
        for problem in inst.build().preflight()
    ]
    if rejected:
        err.print("[bold red]configuration error[/]\n" + escape("\n".join(rejected)), highlight=False)
        raise typer.Exit(2)
    out.print(
        f"configuration ok: {len(loaded.instances)} connectors, "
        f"{sum(len(c.controls) for c in loaded.mappings.catalogs.values())} controls in "
        f"{len(loaded.mappings.catalogs)} frameworks, {len(loaded.mappings.kinds)} evidence kinds mapped"
        + (f"; {len(loaded.warnings)} warnings (logged above)" if loaded.warnings else "")
    )


# -- feature commands: each feature module defines its commands on `app`; one import line each --
# (keep this block just above main())
import collector.commands_coverage  # noqa: E402
import collector.export.cli  # noqa: E402,F401


def main() -> None:
    app()
