"""Stdlib loggers (APScheduler, alembic, botocore, urllib3) log through the same structlog chain."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from collector.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_a_stdlib_record_is_one_redacted_json_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    logging.getLogger("apscheduler.scheduler").warning(
        "Run time of job %r was missed against %s", "collect:scans", "postgresql://app:hunter2@db:5432/evidence"
    )
    structlog.get_logger().info("collected", token="abc")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["event"] == "Run time of job 'collect:scans' was missed against postgresql://db:5432/evidence"
    assert record["level"] == "warning"
    assert record["logger"] == "apscheduler.scheduler"
    assert record["timestamp"].endswith("Z")
    assert "hunter2" not in lines[0]
    assert json.loads(lines[1])["token"] == "**redacted**"


def test_a_stdlib_exception_stays_on_one_line_with_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    try:
        raise ConnectionError("https://user:s3cret@bucket.example.com/key refused")
    except ConnectionError:
        logging.getLogger("botocore").exception("request failed")
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert "ConnectionError: https://bucket.example.com/key refused" in record["exception"]
    assert "s3cret" not in line


def test_stdlib_records_below_the_level_are_dropped_and_reconfiguring_does_not_duplicate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("warning", "json")
    configure_logging("warning", "json")
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    logging.getLogger("alembic.runtime.migration").warning("Will assume transactional DDL.")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["logger"] == "alembic.runtime.migration"


def test_loggers_mlflow_took_over_on_import_log_through_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.utils.logging_utils import _configure_mlflow_loggers

    _configure_mlflow_loggers(root_module_name="mlflow")  # what importing mlflow does unless told not to
    configure_logging("info", "json")
    logging.getLogger("alembic.runtime.migration").warning("Running upgrade 0001 -> 0002")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["logger"] == "alembic.runtime.migration"


def test_alembic_chatter_is_kept_out_below_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert capsys.readouterr().err == ""
    configure_logging("debug", "json")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert json.loads(capsys.readouterr().err.strip())["event"] == "Context impl SQLiteImpl."
