"""The ``evidence-collector`` command line. Every error is one line on stderr with an exit code from
:data:`EXIT_CODES`."""

from __future__ import annotations

import errno
import signal
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from collector.cli_base import (
    EXIT_CODES,
    ConfigOption,
    OutputFormat,
    ResultFilter,
    _config_error,
    _emit_json,
    _fail,
    _load,
    _open_store,
    _safe_url,
    app,
    check_framework,
    config_app,
    db_app,
    err,
    out,
)
from collector.errors import ConfigurationError
from collector.urls import redact_text

if TYPE_CHECKING:
    from collector.config import LoadedConfig
    from collector.state import State
    from collector.store import StoredRecord

__all__ = ["EXIT_CODES", "app", "evidence_document", "main", "status_document"]


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
