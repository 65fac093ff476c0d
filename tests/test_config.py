from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.attestation import parse_sidecar
from collector.cli import app
from collector.config import Schedule, load_and_resolve, load_config
from collector.errors import ConfigurationError, MappingError
from collector.mappings import load_mappings
from collector.yamlfile import MAX_YAML_BYTES


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


def test_the_top_level_clock_skew_tolerance_is_each_connectors_default(tmp_path: Path) -> None:
    text = "clock_skew_tolerance: 1h\n" + GOOD % {"db": tmp_path / "e.db", "reports": tmp_path}
    text += """\
  - name: strict
    type: container_scan
    settings: {paths: ["x/*.json"], clock_skew_tolerance: 10s}
"""
    loaded = load_and_resolve(write(tmp_path, text))
    tolerances = {i.config.name: i.settings.clock_skew_tolerance.total_seconds() for i in loaded.instances}
    assert tolerances == {"scans": 3600, "strict": 10}


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


ROOT = Path(__file__).resolve().parent.parent


def test_relative_paths_resolve_against_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "maps").symlink_to(ROOT / "mappings", target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = conf / "config.yaml"
    path.write_text(
        """\
database: {url: "sqlite:///data/e.db"}
mappings: maps
connectors:
  - name: scans
    type: container_scan
    settings: {paths: ["reports/*.json", "/abs/*.json", "~/home/*.json"]}
  - name: docs
    type: attestations
    settings: {directory: policies}
  - name: monitor
    type: model_monitor
    settings: {reports: [{path: "drift/*.json"}, {path: "s3://bucket/prefix"}]}
exports:
  - {name: q, cron: "0 0 1 * *", framework: soc2, destination: bundles, sign_key_file: keys/k.pem}
  - {name: s3, cron: "0 0 1 * *", framework: soc2, destination: "s3://b/p", sign_key_env: KEY}
"""
    )
    loaded = load_and_resolve(Path("..") / "conf" / "config.yaml")
    assert loaded.app.database.url == f"sqlite:///{conf / 'data' / 'e.db'}"
    assert loaded.app.mappings == conf / "maps"
    scans, docs, monitor = (i.settings for i in loaded.instances)
    assert scans.paths == [f"{conf}/reports/*.json", "/abs/*.json", "~/home/*.json"]
    assert docs.directory == str(conf / "policies")
    assert [r.path for r in monitor.reports] == [f"{conf}/drift/*.json", "s3://bucket/prefix"]
    local, s3 = loaded.app.exports
    assert (local.destination, local.sign_key_file) == (str(conf / "bundles"), conf / "keys" / "k.pem")
    assert s3.destination == "s3://b/p"


def test_the_default_database_stays_in_the_working_directory_not_beside_a_read_only_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the image the config is mounted read-only under /etc and the working directory is the data volume."""
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "config.yaml").write_text("connectors: []\n")
    monkeypatch.chdir(tmp_path)
    assert load_and_resolve(conf / "config.yaml").app.database.url == "sqlite:///evidence.db"
    (conf / "config.yaml").write_text('database: {url: "sqlite:///evidence.db"}\nconnectors: []\n')
    assert load_and_resolve(conf / "config.yaml").app.database.url == f"sqlite:///{conf / 'evidence.db'}"


def test_the_demo_runs_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    demo = tmp_path / "demo"
    shutil.copytree(ROOT / "deploy" / "demo", demo, ignore=shutil.ignore_patterns(".evidence"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["collect", "--config", "../demo/config.yaml"])
    assert result.exit_code == 0, result.output
    assert (demo / ".evidence" / "demo.db").is_file()
    assert list(elsewhere.iterdir()) == []
    evidence = CliRunner().invoke(app, ["evidence", "-c", str(demo / "config.yaml"), "--format", "json"])
    assert evidence.exit_code == 0, evidence.output
    sources = sorted(Path(r["source"]).name for r in json.loads(evidence.stdout)["records"])
    assert sources == ["grype-feature-pipeline.json", "trivy-fraud-model-serving.json"]


def test_every_problem_of_every_stage_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EC_TEST_UNSET", raising=False)
    path = write(
        tmp_path,
        """http: {listen: nonsense}
database: {url: "${EC_TEST_UNSET}"}
freshness:
  overrides:
    'soc2:CC99.9': {ttl: 1d}
connectors:
  - name: scans
    type: container_scan
    settings: {paths: [], fail_on_severity: SEVERE}
  - name: Bad Name
    type: nosuch
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_and_resolve(path)
    problems = str(info.value).splitlines()
    assert f"{path}:1: http.listen: 'nonsense' is not host:port" in problems
    assert f"{path}:2: database.url: environment variable EC_TEST_UNSET is not set" in problems
    assert (
        f"{path}:9: connectors[0].settings.paths: List should have at least 1 item after validation, not 0" in problems
    )
    assert any(p.startswith(f"{path}:9: connectors[0].settings.fail_on_severity:") for p in problems)
    assert any(p.startswith(f"{path}:10: connectors[1].name:") for p in problems)
    assert any(p.startswith(f"{path}:11: connectors[1].type: unknown connector type 'nosuch'") for p in problems)
    assert any("freshness.overrides" in p and "unknown control 'CC99.9'" in p for p in problems)
    assert len(problems) == 7, problems


def test_a_bad_value_from_an_environment_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EC_TEST_DB", "mysql://db/evidence")
    monkeypatch.setenv("EC_TEST_PATHS", "")
    path = write(
        tmp_path,
        """database: {url: "${EC_TEST_DB}"}
connectors:
  - name: scans
    type: container_scan
    settings: {paths: ["${EC_TEST_PATHS}"]}
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_and_resolve(path)
    problems = str(info.value).splitlines()
    assert problems[0].startswith("environment variable EC_TEST_DB: database.url: unsupported database 'mysql'")
    assert problems[1].startswith(f"{path}:5 (with environment variable EC_TEST_PATHS): connectors[0].settings.paths")
    assert str(path) not in problems[0]

    monkeypatch.setenv("EVIDENCE_COLLECTOR_HTTP__LISTEN", "nowhere")
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, 'http: {listen: "127.0.0.1:9464"}\n'))
    assert (
        str(info.value)
        == "environment variable EVIDENCE_COLLECTOR_HTTP__LISTEN: http.listen: 'nowhere' is not host:port"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("garbage", "not a database URL"),
        ("postgresql+nosuch://h/db", "unknown postgresql driver 'nosuch'"),
        ("postgresql+asyncpg://h/db", "'asyncpg' is an asyncio driver"),
        ("postgresql+psycopg2://h/db", "the postgresql driver 'psycopg2' is not installed"),
    ],
)
def test_database_urls_are_checked_for_dialect_and_driver(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=f"database.url: {re.escape(says)}: use sqlite:///"):
        load_config(write(tmp_path, f'database: {{url: "{url}"}}\n'))


def test_supported_database_urls_pass(tmp_path: Path) -> None:
    for url in ("sqlite:///e.db", "sqlite://", "postgresql+psycopg://u:p@h:5432/db", "postgresql://u@h/db"):
        app_config, _ = load_config(write(tmp_path, f'database: {{url: "{url}"}}\n'))
        assert app_config.database.url.startswith(url.partition(":")[0])


def test_an_unparseable_environment_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVIDENCE_COLLECTOR_HTTP", "{not json")
    with pytest.raises(
        ConfigurationError, match=r"^environment variable EVIDENCE_COLLECTOR_HTTP: http: not valid JSON"
    ):
        load_and_resolve(write(tmp_path, "log: {level: info}\n"))


# -- hostile configuration files: fail fast, one line per problem naming file:line and key --------------------

ALIAS_BOMB = """\
connectors:
  - name: scans
    type: container_scan
    settings:
      paths: ["/r/*.json"]
      labels:
        a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
        g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
        h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
        i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.timeout(20)
def test_a_yaml_alias_bomb_fails_fast_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, ALIAS_BOMB)
    with pytest.raises(ConfigurationError, match="expands to more than") as info:
        load_and_resolve(path)
    assert str(info.value).startswith(f"{path}:")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: &a [*a]\n", "refers to itself"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        ("retention: " + "9" * 5000 + "\n", "not valid YAML"),
    ],
)
@pytest.mark.timeout(20)
def test_recursive_deep_or_unconvertible_yaml_is_a_one_line_error(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as info:
        load_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_a_configuration_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, "# padding\n" * (MAX_YAML_BYTES // 10 + 1))
    with pytest.raises(ConfigurationError, match=r"larger than 1 MiB"):
        load_config(path)


def test_the_same_limits_guard_mappings_and_attestation_sidecars(tmp_path: Path) -> None:
    (tmp_path / "catalogs").mkdir()
    (tmp_path / "catalogs" / "bomb.yaml").write_text(ALIAS_BOMB)
    with pytest.raises(MappingError, match="expands to more than"):
        load_mappings(tmp_path)
    with pytest.raises(ValueError, match=r"^doc\.attestation\.yaml:\d+: YAML expands to more than"):
        parse_sidecar(ALIAS_BOMB, "doc.attestation.yaml")


HOSTILE_SCHEDULES = """\
http: {listen: "%(listen)s"}
connectors:
  - name: a
    type: container_scan
    schedule: {interval: 1.0e+400}
    settings: {paths: ["/r/*.json"]}
  - name: b
    type: container_scan
    schedule: {interval: 99999999999999999999d, timeout: 99999999999999999999d}
    settings: {paths: ["/r/*.json"]}
  - name: c
    type: container_scan
    schedule: {interval: 1h, jitter: 100000000000000000000000000000, misfire_grace: .nan}
    settings: {paths: ["/r/*.json"]}
  - name: d
    type: container_scan
    schedule: {interval: 0.001s}
    settings: {paths: ["/r/*.json"]}
  - name: e
    type: container_scan
    schedule: {interval: 1h, timeout: 0s}
    settings: {paths: ["/r/*.json"]}
  - name: f
    type: container_scan
    schedule: {cron: "0 0 31 2 *"}
    settings: {paths: ["/r/*.json"]}
"""


def test_hostile_numbers_and_schedules_are_all_reported_at_once_without_overflow(tmp_path: Path) -> None:
    path = write(tmp_path, HOSTILE_SCHEDULES % {"listen": "127.0.0.1:99999999999999999999"})
    with pytest.raises(ConfigurationError) as info:
        load_and_resolve(path)
    problems = str(info.value).splitlines()
    expected = [
        (1, "http.listen", "port 99999999999999999999 is out of range"),
        (5, "connectors[0].schedule.interval", "inf is not a duration"),
        (9, "connectors[1].schedule.interval", "longer than the longest duration accepted, 36500d"),
        (9, "connectors[1].schedule.timeout", "longer than the longest duration accepted"),
        (13, "connectors[2].schedule.jitter", "longer than the longest duration accepted"),
        (13, "connectors[2].schedule.misfire_grace", "nan is not a duration"),
        (17, "connectors[3].schedule.interval", "0.001s is shorter than the minimum interval, 1s"),
        (21, "connectors[4].schedule.timeout", "timeout must be positive"),
        (25, "connectors[5].schedule.cron", "'0 0 31 2 *' never fires"),
    ]
    for line, key, says in expected:
        assert any(p.startswith(f"{path}:{line}: {key}: ") and says in p for p in problems), (key, problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("127.0.0.1:70000", "port 70000 is out of range"),
        ("not a host!:80", "'not a host!' is not an IP address or host name"),
        ("1.2.3:80", "'1.2.3' is not an IP address or host name"),
        ("[localhost]:80", "'[localhost]' is not an IP address or host name"),
    ],
)
def test_unusable_listen_addresses_are_refused(tmp_path: Path, listen: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"{tmp_path / 'config.yaml'}:1: http.listen: ")) as info:
        load_config(write(tmp_path, f'http: {{listen: "{listen}"}}\n'))
    assert says in str(info.value)


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:9464", "[::1]:9464", ":9464", "localhost:80", "::1:9464", "a-b.example:1"]
)
def test_usable_listen_addresses_pass(tmp_path: Path, listen: str) -> None:
    app, _ = load_config(write(tmp_path, f'http: {{listen: "{listen}"}}\n'))
    assert app.http.listen == listen


def test_a_leap_day_cron_is_possible() -> None:
    assert Schedule(cron="0 0 29 2 *").cron == "0 0 29 2 *"
