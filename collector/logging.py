"""One structlog chain, configured in one place: ISO UTC times, contextvars, secret redaction.

Records of stdlib loggers (APScheduler, alembic, botocore, urllib3 ...) go through the same processors by way of
structlog's ``ProcessorFormatter``, so every line is one JSON object (or one console line on a terminal)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from collector.urls import SECRET_KEY_PATTERN, redact_text

__all__ = ["SECRET_KEY_PATTERN", "configure_logging", "redact_secrets"]

REDACTED = "**redacted**"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY_PATTERN.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Blank fields named like secrets, and credentials inside URLs, at any depth."""
    for key in list(event_dict):
        if SECRET_KEY_PATTERN.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it out and close it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    sink: Any = stream or _CurrentStderr()
    json_output = fmt == "json" or (fmt == "auto" and not sink.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    threshold = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(sink),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(sink, threshold, shared, renderer)


_TAKEN_OVER_BY_MLFLOW = ("mlflow", "sqlalchemy.engine", "alembic", "huey")
"""Importing ``mlflow`` gives these loggers its own plain-text stderr handler and stops them propagating, unless
``MLFLOW_CONFIGURE_LOGGING`` is false (set before it is imported); if it was imported first, they are handed back."""


class _StructlogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler :func:`configure_logging` installs (and replaces when called again)."""


def _route_stdlib_logging(sink: Any, threshold: int, shared: list[Any], renderer: Any) -> None:
    handler = _StructlogHandler(sink)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                renderer,
            ],
        )
    )
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    for name in _TAKEN_OVER_BY_MLFLOW:
        taken = logging.getLogger(name)
        if not taken.propagate:
            taken.handlers, taken.propagate = [], True
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StructlogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    # alembic says which SQL dialect and DDL mode it uses at INFO every time a command opens the store
    logging.getLogger("alembic").setLevel(logging.NOTSET if threshold <= logging.DEBUG else logging.WARNING)
