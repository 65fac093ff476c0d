"""URLs lose their credentials: the helper, the core's refusal, logging, the CLI and the configuration warning."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from collector.cli import _safe_url, app
from collector.config import load_and_resolve
from collector.connector import CollectContext
from collector.logging import configure_logging
from collector.model import Observation, Subject
from collector.urls import redact_text, redact_url, url_credentials

NOW = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@prom:9090/api?a=1", "http://prom:9090/api?a=1"),
        ("https://ghp_TOKEN@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://u:p@[::1]:8080/", "http://[::1]:8080/"),
        ("https://s3/b/k?X-Amz-Credential=AK&X-Amz-Signature=S&X-Amz-Date=1",
         "https://s3/b/k?X-Amz-Credential=redacted&X-Amz-Signature=redacted&X-Amz-Date=1"),
        ("https://blob/c?sv=2020&sig=S", "https://blob/c?sv=2020&sig=redacted"),
        ("https://maps/api?key=K&q=x", "https://maps/api?key=redacted&q=x"),
        ("http://h/x?access_token=T", "http://h/x?access_token=redacted"),
        ("sqlite:////var/lib/e.db?password=P", "sqlite:////var/lib/e.db?password=redacted"),
        ("postgresql+psycopg://app:P@db:5432/ev", "postgresql+psycopg://db:5432/ev"),
        ("http://prom:9090", "http://prom:9090"),
        ("/var/reports/scan.json", "/var/reports/scan.json"),
        ("s3://bucket/a@b.json", "s3://bucket/a@b.json"),
    ],
)  # fmt: skip
def test_redact_url_removes_user_info_and_secret_query_values(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert url_credentials(expected) == []


def test_url_credentials_names_what_it_found() -> None:
    assert url_credentials("http://u:p@h/?token=t&x=1") == ["user info", "query parameter 'token'"]
    assert url_credentials("http://h/?token=redacted") == []
    assert url_credentials("http://h/?monkey=1&author=me") == []


def test_redact_text_cleans_urls_quoted_in_error_messages() -> None:
    message = (
        "API request to http://ml:pw@mlflow:5000/api/2.0/x failed; Max retries exceeded with url:"
        " /api/v1/query?token=T&x=1 (Caused by ...); see http://u:p@h:9090."
    )
    cleaned = redact_text(message)
    assert "pw" not in cleaned and "token=T" not in cleaned and "u:p@" not in cleaned
    assert "http://mlflow:5000/api/2.0/x" in cleaned and "/api/v1/query?token=redacted&x=1" in cleaned
    assert redact_text(None) is None


def test_an_observation_with_credentials_in_its_source_is_refused() -> None:
    with pytest.raises(ValueError, match="carries credentials") as raised:
        Observation("monitor.metric", Subject("monitor", "m"), NOW, {}, source="http://u:SECRET@prom:9090")
    assert "SECRET" not in str(raised.value)
    ok = Observation("monitor.metric", Subject("monitor", "m"), NOW, {}, source=redact_url("http://u:S@prom:9090"))
    assert ok.source == "http://prom:9090"


def test_a_problem_keeps_no_credentials() -> None:
    ctx = CollectContext(instance="i", run_id="r", now=NOW)
    ctx.problem("http://u:SECRET@h/x", "GET http://h/x?token=SECRET2 failed")
    assert ctx.problems[0].source == "http://h/x"
    assert ctx.problems[0].reason == "GET http://h/x?token=redacted failed"


def test_log_values_lose_credentials_inside_urls() -> None:
    sink = io.StringIO()
    configure_logging("info", "json", stream=sink)
    structlog.get_logger("t").info(
        "database_ready", url="sqlite:///e.db?password=SECRET", nested={"u": "http://a:SECRET@h"}
    )
    configure_logging()
    line = json.loads(sink.getvalue())
    assert "SECRET" not in sink.getvalue()
    assert line["url"] == "sqlite:///e.db?password=redacted" and line["nested"] == {"u": "http://h"}


def test_the_database_url_is_printed_masked() -> None:
    assert _safe_url("postgresql+psycopg://app:SECRET@db/ev?password=SECRET2&sslmode=require") == (
        "postgresql+psycopg://app:***@db/ev?password=redacted&sslmode=require"
    )


def test_a_connector_url_with_credentials_is_a_warning_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
database: {{url: "sqlite:///{tmp_path / "e.db"}?password=db-secret"}}
connectors:
  - name: models
    type: mlflow
    settings:
      tracking_uri: "http://ml:SECRET@mlflow:5000"
  - name: monitors
    type: model_monitor
    settings:
      prometheus: {{url: "http://127.0.0.1:1/?token=SECRET", attempts: 1}}
      monitors: [{{name: m, query: up, bound: {{min: 1}}}}]
"""
    )
    loaded = load_and_resolve(path)
    assert loaded.warnings == [
        f"{path}:6: connectors[0].settings.tracking_uri: the URL carries credentials (user info); put credentials"
        " in the connector's secret settings (basic auth username/password, token, or their _env forms), not in"
        " the URL",
        f"{path}:10: connectors[1].settings.prometheus.url: the URL carries credentials (query parameter 'token');"
        " put credentials in the connector's secret settings (basic auth username/password, token, or their _env"
        " forms), not in the URL",
    ]
    result = CliRunner().invoke(app, ["--config", str(path), "config", "check"])
    assert result.exit_code == 0, result.output
    assert "2 warnings" in result.stdout
    assert "SECRET" not in result.output


def test_the_config_hash_does_not_depend_on_credentials_in_a_url(tmp_path: Path) -> None:
    hashes = []
    for password in ("one", "two"):
        path = tmp_path / f"{password}.yaml"
        path.write_text(
            "connectors:\n  - name: models\n    type: mlflow\n"
            f"    settings: {{tracking_uri: 'http://ml:{password}@mlflow:5000'}}\n"
        )
        hashes.append(load_and_resolve(path).instances[0].config_hash)
    assert hashes[0] == hashes[1], "like a SecretStr setting, a URL's password is not hashed into provenance"
