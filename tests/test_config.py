from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.config import load_and_resolve, load_config
from collector.errors import ConfigurationError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


GOOD = """\
database: {url: "sqlite:///%(db)s"}
http: {listen: "127.0.0.1:0"}
connectors:
  - name: scans
    type: container_scan
    schedule: {interval: 1h}
    settings: {paths: ["%(reports)s/*.json"], max_age: 7d, fail_on_severity: HIGH}
"""


def test_a_good_configuration_resolves_every_connector(tmp_path: Path) -> None:
    loaded = load_and_resolve(write(tmp_path, GOOD % {"db": tmp_path / "e.db", "reports": tmp_path}))
    [inst] = loaded.instances
    assert inst.config.name == "scans"
    assert inst.config.schedule.interval is not None and inst.config.schedule.interval.total_seconds() == 3600
    assert len(inst.config_hash) == 64


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
database: {url: "sqlite:///x.db"}
connectors:
  - name: scans
    type: container_scan
    schedule: {interval: soon}
    settings: {paths: ["/r/*.json"]}
  - name: Bad Name
    type: container_scan
    schedule: {cron: "* * *"}
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:5: connectors[0].schedule.interval" in text
    assert "not a duration" in text
    assert f"{path}:7: connectors[1].name" in text
    assert "connectors[1].schedule" in text and "invalid cron" in text


def test_connector_settings_errors_name_the_setting(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
connectors:
  - name: scans
    type: container_scan
    settings:
      paths: []
      fail_on_severity: SEVERE
      unknown_knob: 3
  - name: other
    type: no_such_connector
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_and_resolve(path)
    text = str(info.value)
    assert f"{path}:5: connectors[0].settings.paths" in text
    assert f"{path}:6: connectors[0].settings.fail_on_severity" in text
    assert f"{path}:7: connectors[0].settings.unknown_knob" in text
    assert f"{path}:9: connectors[1].type: unknown connector type 'no_such_connector'" in text


def test_env_references_are_expanded_and_missing_ones_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EC_TEST_DB", str(tmp_path / "from-env.db"))
    app_config, _ = load_config(write(tmp_path, 'database: {url: "sqlite:///${EC_TEST_DB}"}\n'))
    assert app_config.database.url.endswith("from-env.db")
    with pytest.raises(ConfigurationError, match=r"database.url: environment variable EC_TEST_MISSING is not set"):
        load_config(write(tmp_path, 'database: {url: "${EC_TEST_MISSING}"}\n'))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_COLLECTOR_DATABASE__URL", "postgresql+psycopg://u:p@db/evidence")
    app_config, _ = load_config(write(tmp_path, 'database: {url: "sqlite:///file.db"}\n'))
    assert app_config.database.url == "postgresql+psycopg://u:p@db/evidence"


def test_unknown_freshness_override_control_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "freshness:\n  overrides:\n    'soc2:CC99.9': {ttl: 1d}\n")
    with pytest.raises(ConfigurationError, match=r"unknown control 'CC99.9'"):
        load_and_resolve(path)


def test_iso_2013_numbers_are_accepted_as_override_aliases(tmp_path: Path) -> None:
    path = write(tmp_path, "freshness:\n  overrides:\n    'iso27001:A.12.6.1': {ttl: 1d, at_risk: 2h}\n")
    loaded = load_and_resolve(path)
    assert [str(r) for r in loaded.overrides] == ["iso27001:A.8.8"]


def test_config_check_exits_non_zero_and_prints_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "http: {listen: nonsense}\n")
    result = CliRunner().invoke(app, ["--config", str(path), "config", "check"])
    assert result.exit_code == 2
    assert "http.listen" in result.output


def test_malformed_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(write(tmp_path, "connectors: [\n"))
