"""The ``evidence-collector`` command line. Every error is one line on stderr with an exit code from
:data:`EXIT_CODES`."""

from __future__ import annotations

import errno
import json
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from collector import __version__
from collector.envvars import CONFIG_ENV
from collector.errors import ConfigurationError
from collector.urls import REDACTED, is_secret_name, redact_text

if TYPE_CHECKING:
    from collector.config import LoadedConfig
    from collector.state import State
    from collector.store import Store, StoredRecord

__all__ = ["EXIT_CODES", "app", "evidence_document", "main", "status_document"]

EXIT_CODES = {
    0: "success",
    1: "the command ran and found a failure: a failed or inconclusive run, a broken evidence chain, a bundle that "
    "does not verify",
    2: "usage or configuration error: a bad option, an unknown connector, framework or control, a missing file, "
    "an invalid configuration, a listen address that is taken or unusable",
    3: "database error: unreachable, no SQLite file yet, schema not migrated, a SQLite database in use by another "
    "daemon",
    70: "unexpected internal error (rerun with --debug for the traceback)",
    130: "collect stopped by SIGINT (Ctrl-C): the run in progress is recorded as interrupted",
    143: "collect stopped by SIGTERM: the run in progress is recorded as interrupted",
}
_EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning.partition(':')[0]}" for code, meaning in EXIT_CODES.items())


def _say(message: str) -> None:
    """One plain line on stderr (no markup, no highlighting, no wrapping)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return redact_text((str(cause).strip().splitlines() or [type(cause).__name__])[0])


class _Commands(TyperGroup):
    """Every error is one line on stderr with a documented exit code; a traceback only with ``--debug``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # click's usage errors (the help for no arguments prints itself)
            message = exc.format_message()
            if message:
                usage = getattr(exc, "ctx", None)
                hint = f" (see '{usage.command_path} --help')" if usage is not None else ""
                _say(f"error: {message}{hint}")
            sys.exit(exc.exit_code)
        except typer.Abort:
            _say("aborted")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            code, message = _explain(exc)
            _say(message)
            raise typer.Exit(code) from exc


def _explain(exc: Exception) -> tuple[int, str]:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, ConfigurationError):
        return 2, f"configuration error: {_first_line(exc)}"
    if isinstance(exc, SQLAlchemyError):
        return 3, f"database error: {_first_line(exc)} (check database.url and that the database is running)"
    return 70, f"unexpected error: {type(exc).__name__}: {_first_line(exc)} (rerun with --debug for the traceback)"


app = typer.Typer(
    cls=_Commands,
    help="Continuous-compliance evidence collector for AI/ML systems.",
    epilog=_EPILOG,
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
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        help="Configuration YAML file (before or after the command).",
        show_default=False,
        exists=True,
        dir_okay=False,
    ),
]
"""Every command takes it, so ``-c FILE`` works before or after the command name."""


def _print_version(value: bool) -> None:
    if value:
        out.print(__version__, highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    config: ConfigOption = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    ctx.obj = _Options(config)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _say(message)
    return typer.Exit(code)


def _config_error(problems: list[str]) -> typer.Exit:
    """One line per problem, each naming where it is."""
    if len(problems) == 1:
        return _fail(f"configuration error: {problems[0]}")
    return _fail("\n".join([f"configuration error: {len(problems)} problems", *problems]))


def _load(ctx: typer.Context, config: Path | None = None) -> LoadedConfig:
    """The configuration named after the command, else before it, else by EVIDENCE_COLLECTOR_CONFIG."""
    import structlog

    from collector.config import load_and_resolve
    from collector.logging import configure_logging

    opts: _Options = ctx.find_root().obj
    try:
        loaded = load_and_resolve(config or opts.config)
    except ConfigurationError as exc:
        raise _config_error(redact_text(str(exc)).splitlines()) from exc
    configure_logging(loaded.app.log.level, loaded.app.log.format)
    for warning in loaded.warnings:
        structlog.get_logger("collector.config").warning("config_warning", problem=warning)
    return loaded


def check_framework(loaded: LoadedConfig, framework: str | None) -> None:
    if framework and framework not in loaded.mappings.catalogs:
        raise _fail(f"unknown framework {framework!r} (known: {', '.join(loaded.mappings.frameworks())})")


def _missing_sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or "uri" in parsed.query:
        return None
    path = Path(database)
    return None if path.exists() else path


def _open_store(loaded: LoadedConfig, *, migrate: bool = True) -> Store:
    """``migrate``: create or upgrade the schema (writers); otherwise the database must exist at head (readers),
    and a missing SQLite file is reported, not created."""
    from collector.store import Store

    url = loaded.app.database.url
    missing = None if migrate else _missing_sqlite_file(url)
    if missing is not None:
        raise _fail(
            f"no evidence database at {missing}: run `evidence-collector collect` (or `db upgrade`) first, "
            "or point database.url at the existing one",
            3,
        )
    store = Store(url)
    try:
        if migrate:
            store.upgrade()
        else:
            store.ping()
    except Exception as exc:
        store.dispose()
        raise _fail(
            f"database error ({_safe_url(store.url)}): {_first_line(exc)} "
            "(check database.url and that the database is running)",
            3,
        ) from exc
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
def run(
    ctx: typer.Context,
    config: ConfigOption = None,
    accept_new_chain: Annotated[
        bool,
        typer.Option(
            "--accept-new-chain",
            help="Take the store's chain as it is now, although it does not continue the last chain head this "
            "daemon saw (kept beside the spool): after restoring a backup or starting a new database.",
        ),
    ] = False,
) -> None:
    """Run the daemon: scheduled collection, /metrics, /healthz, /readyz. Stops cleanly on SIGTERM or Ctrl-C.

    Exits 3 when another daemon already runs on the same SQLite database (SQLite takes one daemon)."""
    from collector.coordination import DatabaseInUse
    from collector.daemon import Daemon

    loaded = _load(ctx, config)
    try:
        Daemon(loaded, accept_new_chain=accept_new_chain).run_forever()
    except DatabaseInUse as exc:
        err.print(f"database error ({_safe_url(loaded.app.database.url)}): {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(3) from exc
    except OSError as exc:
        if not (isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)):
            raise
        raise _fail(
            f"cannot listen on {loaded.app.http.listen} (http.listen): {exc.strerror or exc}; "
            "stop the other process or choose another address"
        ) from exc


@app.command()
def collect(
    ctx: typer.Context,
    config: ConfigOption = None,
    connector: Annotated[
        list[str] | None, typer.Option("--connector", help="Only this connector (repeatable).")
    ] = None,
) -> None:
    """Run every configured connector (or the named ones) once. Exits 1 if a run failed or was inconclusive
    (every record it stored has only errored checks).

    On Ctrl-C or SIGTERM the run in progress is recorded as interrupted, the rest are not started, and the
    command exits 130 (SIGINT) or 143 (SIGTERM); a second signal stops at once."""
    from rich.table import Table

    from collector.daemon import load_state
    from collector.runner import Runner
    from collector.state import State

    loaded = _load(ctx, config)
    try:
        instances = [loaded.instance(n) for n in connector] if connector else loaded.instances
    except ConfigurationError as exc:
        raise _fail(f"{exc}; see `evidence-collector config check`") from exc
    if not instances:
        raise _fail("no connectors configured: add one under connectors: in the configuration file")
    shutdown = threading.Event()
    stopped_by = _stop_on_signals(shutdown)
    store = _open_store(loaded)
    state = State()
    load_state(store, state)
    runner = Runner(store, state, loaded.mappings, shutdown=shutdown)
    table = Table("connector", "type", "status", "observations", "problems", "error")
    failed = False
    interrupted: list[str] = []
    for inst in instances:
        if stopped_by:
            break
        outcome = runner.run(inst)
        run_row = outcome.run
        failed = failed or run_row.status in ("failed", "inconclusive")
        if run_row.status == "interrupted":
            interrupted.append(f"{inst.config.name} (run {run_row.id})")
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
    if stopped_by:
        signum = stopped_by[0]
        recorded = f"recorded as interrupted: {', '.join(interrupted)}" if interrupted else "no run was in progress"
        err.print(f"stopped by {signal.Signals(signum).name}; {recorded}", highlight=False, soft_wrap=True)
        raise typer.Exit(128 + signum)
    raise typer.Exit(1 if failed else 0)


def _stop_on_signals(shutdown: threading.Event) -> list[int]:
    """SIGINT and SIGTERM set ``shutdown`` (the runner cancels and records the run interrupted) and restore the
    default handler, so a second signal stops at once. Returns the list the received signal is put in."""
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        signal.signal(signum, signal.SIG_DFL)
        shutdown.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
    return received


def status_document(loaded: LoadedConfig, state: State, now: datetime, framework: str | None) -> dict[str, Any]:
    from collector.state import evaluate_controls

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
                "expires_at": None if fresh.expires_at is None else fresh.expires_at.isoformat(),
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
                "last_error": health.last_error if health else None,
                "consecutive_failures": health.consecutive_failures if health else 0,
            }
        )
    return {"generated_at": now.isoformat(), "controls": controls, "connectors": connectors}


def _status_style() -> dict[str, str]:
    from collector.freshness import Freshness

    return {
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
    from rich.table import Table

    from collector.daemon import load_state
    from collector.state import State

    loaded = _load(ctx, config)
    check_framework(loaded, framework)
    store = _open_store(loaded, migrate=False)
    state = State()
    load_state(store, state)
    doc = status_document(loaded, state, datetime.now(UTC), framework)
    if fmt is OutputFormat.json:
        _emit_json(doc)
        return
    table = Table("framework", "control", "title", "status", "age", "ttl", "evidence kinds", "failing checks")
    status_style = _status_style()
    for c in doc["controls"]:
        style = status_style[c["status"]]
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
    ctable = Table("connector", "type", "last success", "last status", "consecutive failures", "last error")
    for c in doc["connectors"]:
        ctable.add_row(
            c["name"],
            c["type"],
            c["last_success"] or "never",
            c["last_status"] or "-",
            str(c["consecutive_failures"]),
            c["last_error"] or "",
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
    from rich.table import Table

    loaded = _load(ctx, config)
    check_framework(loaded, framework)
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
                "checks": [_check_json(c) for c in r.checks],
                "content_sha256": r.content_sha256,
                "chain_hash": r.chain_hash,
                "source": r.source,
                "payload": r.payload,
            }
            for r in records
        ]
    }


def _check_json(check: dict[str, Any]) -> dict[str, Any]:
    out = {"id": check["id"], "result": check["result"], "message": check["message"]}
    if check.get("details"):
        out["details"] = check["details"]
    return out


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
    from rich.table import Table

    from collector.store import EvidenceFilter

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
def verify(
    ctx: typer.Context,
    config: ConfigOption = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint file, or the checkpoint directory (its highest seq is used): the store must still "
            "hold the signed link, else it was truncated or re-chained.",
            exists=True,
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The checkpoint signer's Ed25519 public key (PEM).", exists=True),
    ] = None,
) -> None:
    """Walk the evidence hash chain (one consistent snapshot) and name the first broken row. Exits 1 on a break."""
    loaded = _load(ctx, config)
    store = _open_store(loaded, migrate=False)
    checked, brk = store.verify()
    if brk is not None:
        err.print(
            f"chain broken at record seq={brk.seq} id={brk.record_id}: {brk.reason} "
            f"({checked} records before it verified)"
        )
        raise typer.Exit(1)
    out.print(f"chain intact: {checked} records verified")
    if checkpoint is None:
        return
    from collector.checkpoint import CheckpointProblem, check_against_store, latest_checkpoint
    from collector.export.errors import BundleMismatch
    from collector.export.signing import load_public_key

    try:
        key = load_public_key(public_key) if public_key is not None else None
        cp = latest_checkpoint(checkpoint, key)
    except (CheckpointProblem, BundleMismatch) as exc:
        err.print(f"checkpoint: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    problem = check_against_store(cp, store.chain_head(), store.chain_hash_at(cp.seq))
    if problem is not None:
        err.print(f"chain does not continue the checkpoint: {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    out.print(f"checkpoint: the chain continues the checkpoint of {cp.at.isoformat()} (seq {cp.seq})")
    if key is None:
        err.print("note: checked against the key inside the checkpoint; pass --public-key to check who signed it")


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
        raise _config_error(rejected)
    out.print(
        f"configuration ok: {len(loaded.instances)} connectors, "
        f"{sum(len(c.controls) for c in loaded.mappings.catalogs.values())} controls in "
        f"{len(loaded.mappings.catalogs)} frameworks, {len(loaded.mappings.kinds)} evidence kinds mapped"
        + (f"; {len(loaded.warnings)} warnings (logged above)" if loaded.warnings else "")
    )


# -- feature commands: each feature module defines its commands on `app`; one import line each --
# (keep this block just above main())
import collector.commands_coverage  # noqa: E402
import collector.commands_export  # noqa: E402
import collector.commands_web  # noqa: E402,F401


def main() -> None:
    app()
