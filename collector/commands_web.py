"""Commands ``serve`` (the API and console over a store, without collecting) and ``token new``
(registered on the main app by import)."""

from __future__ import annotations

import errno
import secrets
import signal
import socket
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import typer

from collector.cli_base import ConfigOption, _fail, _load, _open_store, app, out

__all__ = ["serve", "token_new"]

token_app = typer.Typer(help="API and console tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.command()
def serve(
    ctx: typer.Context,
    config: ConfigOption = None,
    refresh: Annotated[float, typer.Option(help="Seconds between reads of what collectors stored.", min=1)] = 15.0,
) -> None:
    """Serve the read API, the console, /metrics, /healthz and /readyz over the configured database, without
    collecting (a read-only replica beside the daemon). The access log is still written to the database.
    Stops on SIGTERM or Ctrl-C."""
    import structlog
    from prometheus_client.registry import CollectorRegistry
    from sqlalchemy.exc import SQLAlchemyError

    from collector import __version__
    from collector.coverage import basis_for_config
    from collector.daemon import load_state, refresh_state
    from collector.http import WebServer, bind
    from collector.metrics import EvidenceMetrics, StateSync
    from collector.state import State
    from collector.web import Sources, build_app, web_context

    log = structlog.get_logger("collector.serve")
    loaded = _load(ctx, config)
    http = loaded.app.http
    try:
        sock = bind(http.host, http.port, http.backlog)
    except OSError as exc:
        if not (isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)):
            raise
        raise _fail(f"cannot listen on {http.listen} (http.listen): {exc.strerror or exc}") from exc
    store = _open_store(loaded, migrate=False)
    state = State()
    sync = StateSync(datetime.now(UTC))
    load_state(store, state)
    sync.synced()
    basis = basis_for_config(loaded)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(
        EvidenceMetrics(
            state,
            loaded.mappings,
            loaded.overrides,
            version=__version__,
            coverage=basis,
            active_kinds=loaded.active_kinds,
            sync=sync,
        )
    )

    def readiness() -> tuple[bool, str]:
        try:
            store.ping()
        except Exception as exc:  # noqa: BLE001 - reported on /readyz
            return False, f"database unreachable: {type(exc).__name__}"
        return True, f"ready (read-only): {len(loaded.mappings.catalogs)} catalogs"

    sources = Sources(loaded, state, store, basis)
    server = WebServer(
        build_app(registry, readiness, web_context(sources, http.auth)),
        sock,
        max_connections=http.max_connections,
        backlog=http.backlog,
        header_timeout_seconds=http.header_timeout.total_seconds(),
        keep_alive_timeout_seconds=http.keep_alive_timeout.total_seconds(),
    )
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    server.start()
    log.info("http_listening", host=http.host, port=server.port, read_only=True)
    while not stop.wait(refresh):
        try:
            refresh_state(store, state)
        except SQLAlchemyError as exc:
            sync.failed(datetime.now(UTC))
            log.warning("state_refresh_failed", error=f"{type(exc).__name__}")
            continue
        sync.synced()
    server.stop()
    store.dispose()
    log.info("shutdown_finished")


@token_app.command("new")
def token_new(
    name: Annotated[str, typer.Option(help="Who holds it (shown in the access log).")],
    config: ConfigOption = None,
    role: Annotated[str, typer.Option(help="viewer, attester or admin.")] = "viewer",
) -> None:
    """Print a new random token (give it to its holder) and the configuration entry that admits it (only its
    SHA-256 is stored). Reads no configuration."""
    from collector.web.auth import ROLES, token_sha256

    if role not in ROLES:
        raise _fail(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    token = "ec_" + secrets.token_urlsafe(32)
    out.print(f"token: {token}", highlight=False, soft_wrap=True)
    out.print(f"- {{name: {name}, role: {role}, sha256: {token_sha256(token)}}}", highlight=False, soft_wrap=True)
