"""What every command module shares: the Typer app and its error handling, the output consoles, the common
options, and loading the configuration and the store. Command modules import this, never :mod:`collector.cli`,
which assembles them (so the command line has no import cycle)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
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
    from collector.store import Store

__all__ = [
    "EXIT_CODES",
    "ConfigOption",
    "OutputFormat",
    "ResultFilter",
    "app",
    "check_framework",
    "config_app",
    "db_app",
    "err",
    "out",
]

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
