from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collector.cli import app
from collector.store import Store
from tests.helpers import tamper

DATA = Path(__file__).resolve().parent / "data" / "scans"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
database: {{url: "sqlite:///{tmp_path / "e.db"}"}}
connectors:
  - name: scans
    type: container_scan
    settings: {{paths: ["{DATA}/*.json"], max_age: 3650d}}
"""
    )
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_collect_then_status_json_has_the_documented_shape(config: Path) -> None:
    code, _ = invoke("--config", str(config), "collect")
    assert code == 0
    code, out = invoke("status", "--config", str(config), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"generated_at", "controls", "connectors"}
    by_id = {(c["framework"], c["control"]): c for c in doc["controls"]}
    cc71 = by_id[("soc2", "CC7.1")]
    assert set(cc71) == {
        "framework", "control", "title", "status", "age_seconds", "ttl_seconds", "expires_at", "evidence_kinds",
        "failing_checks",
    }  # fmt: skip
    assert cc71["status"] in {"fresh", "at_risk", "stale"}
    assert cc71["evidence_kinds"] == ["container.scan"]
    assert cc71["failing_checks"] == ["container.no_fixable_vulns"]
    assert doc["connectors"] == [
        {
            "name": "scans",
            "type": "container_scan",
            "last_success": doc["connectors"][0]["last_success"],
            "last_status": "succeeded",
            "last_error": None,
            "consecutive_failures": 0,
        }
    ]
    assert doc["connectors"][0]["last_success"] is not None


def test_evidence_filters_by_control_alias_check_and_result(config: Path) -> None:
    invoke("--config", str(config), "collect")
    code, out = invoke("evidence", "--config", str(config), "--format", "json")
    assert code == 0
    records = json.loads(out)["records"]
    assert len(records) == 3
    first = records[0]
    assert {"id", "kind", "subject", "observed_at", "collected_at", "connector", "controls", "checks",
            "content_sha256", "payload"} <= set(first)  # fmt: skip
    assert set(first["subject"]) == {"type", "id"}

    code, out = invoke("evidence", "--config", str(config), "--control", "iso27001:A.12.6.1", "--format", "json")
    assert code == 0 and len(json.loads(out)["records"]) == 3  # the 2013 number resolves to A.8.8

    code, out = invoke(
        "evidence", "--config", str(config), "--check", "container.no_fixable_vulns", "--result", "fail",
        "--format", "json",
    )  # fmt: skip
    failing = json.loads(out)["records"]
    assert failing, "the sample Trivy report has fixable CRITICAL/HIGH vulnerabilities"
    assert len(failing) < len(records)
    for rec in failing:
        [check] = [c for c in rec["checks"] if c["id"] == "container.no_fixable_vulns"]
        assert check["result"] == "fail"

    code, _ = invoke("evidence", "--config", str(config), "--control", "soc2:CC99.1")
    assert code == 2


def test_verify_passes_then_names_the_tampered_row(config: Path, tmp_path: Path) -> None:
    invoke("--config", str(config), "collect")
    code, out = invoke("verify", "--config", str(config))
    assert code == 0 and "3 records verified" in out
    tamper(Store(f"sqlite:///{tmp_path / 'e.db'}"), "update evidence set source = 'elsewhere' where seq = 2")
    result = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert result.exit_code == 1
    assert "seq=2" in result.output and "altered" in result.output


def test_unreachable_database_is_exit_3_with_the_password_hidden(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('database: {url: "postgresql+psycopg://u:sekrit@127.0.0.1:1/x"}\n')
    result = CliRunner().invoke(app, ["--config", str(path), "verify"])
    assert result.exit_code == 3
    assert "sekrit" not in result.output


def test_controls_lists_the_catalog_with_mapped_kinds(config: Path) -> None:
    code, out = invoke("controls", "--config", str(config), "--framework", "iso27001", "--format", "json")
    assert code == 0
    controls = {c["control"]: c for c in json.loads(out)["controls"]}
    assert len(controls) == 93
    assert "container.scan" in controls["A.8.8"]["evidence_kinds"]


# -- every user error: one line naming the thing, a hint, a documented exit code, no traceback ----------------


def run_cli(*args: str) -> tuple[int, str, BaseException | None]:
    """The exit code, stderr, and any exception that escaped the CLI (there should be none but SystemExit)."""
    result = CliRunner().invoke(app, list(args))
    escaped = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.stderr, escaped


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def cli_commands() -> list[tuple[str, ...]]:
    """Every command a user can run (groups such as `db` excluded), walked from the click tree."""
    from typer.core import TyperGroup

    from collector.cli_reference import commands

    return [path for path, command in commands() if path and not isinstance(command, TyperGroup)]


def test_version_alone_prints_the_version() -> None:
    from collector import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


HEAVY_MODULES = (
    "sqlalchemy",
    "alembic",
    "boto3",
    "botocore",
    "mlflow",
    "kubernetes",
    "prometheus_client",
    "cryptography",
    "collector.store",
    "collector.export",
    "connectors",
)
_IMPORTS_AFTER = """
import contextlib, io, json, sys
from collector.cli import main
argvs, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for argv in argvs:
    sys.argv = ["evidence-collector", *argv]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, (argv, exc.code)
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def heavy_imports(*argvs: list[str]) -> list[str]:
    """The heavy modules a fresh process has imported after running the command line with each ``argv``."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER, json.dumps(argvs), json.dumps(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[str] = json.loads(proc.stdout)
    return found


def test_version_imports_no_database_export_or_connector_library() -> None:
    assert heavy_imports(["--version"]) == []


def test_help_imports_no_database_export_or_connector_library() -> None:
    helps = [["--help"], *([*path, "--help"] for path, _ in _all_commands() if path)]
    assert len(helps) > 10
    assert heavy_imports(*helps) == []


def _all_commands() -> list[tuple[tuple[str, ...], object]]:
    from collector.cli_reference import commands

    return list(commands())


@pytest.mark.parametrize("path", cli_commands(), ids=" ".join)
def test_config_is_accepted_before_or_after_every_command(path: tuple[str, ...], config: Path) -> None:
    for args in (["--config", str(config), *path, "--help"], [*path, "-c", str(config), "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)


def test_every_command_is_covered_by_the_config_test() -> None:
    assert {" ".join(p) for p in cli_commands()} >= {
        "run", "collect", "status", "controls", "evidence", "verify", "attest", "coverage", "controls-suggest",
        "export", "verify-bundle", "db upgrade", "config check",
    }  # fmt: skip


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("yaml_text", "args", "code", "says"),
    [
        ("", ["collect", "--connector", "nosuch"], 2, "no connector named 'nosuch'"),
        ('database: {url: "mysql://"}\n', ["config", "check"], 2, "database.url: unsupported database 'mysql'"),
        ('database: {url: "mysql://"}\n', ["status"], 2, "database.url: unsupported database 'mysql'"),
        ('database: {url: "garbage"}\n', ["collect"], 2, "database.url: not a database URL: use sqlite:///"),
        ('database: {url: "postgresql+nosuch://h/d"}\n', ["config", "check"], 2, "unknown postgresql driver"),
        ("", ["controls", "--framework", "nope"], 2, "unknown framework 'nope' (known: iso27001"),
        ("", ["coverage", "--framework", "nope", "--no-store"], 2, "unknown framework 'nope'"),
        ("", ["verify-bundle", "missing.zip"], 2, "'missing.zip' does not exist"),
        (
            "",
            ["attest", "--title", "t", "--by", "me", "--control", "soc2:CC1.1", "--file", "missing.pdf"],
            2,
            "cannot attest: --file: missing.pdf: no such file",
        ),
        (
            'database: {url: "postgresql+psycopg://u:sekrit@127.0.0.1:1/x"}\n',
            ["verify"],
            3,
            "database error (postgresql+psycopg://u:***@127.0.0.1:1/x): connection failed",
        ),
    ],
)
def test_a_user_error_is_one_line_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_text: str, args: list[str], code: int, says: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path, yaml_text)
    exit_code, stderr, escaped = run_cli("--config", str(path), *args)
    assert escaped is None
    assert exit_code == code
    assert says in one_line(stderr)
    assert "sekrit" not in stderr


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    exit_code, stderr, escaped = run_cli("status", "--config", str(tmp_path / "nope.yaml"))
    assert (exit_code, escaped) == (2, None)
    assert "nope.yaml' does not exist" in one_line(stderr)


@pytest.mark.timeout(60)
def test_run_with_the_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(
            tmp_path, f'database: {{url: "sqlite:///{tmp_path / "e.db"}"}}\nhttp: {{listen: "127.0.0.1:{port}"}}\n'
        )
        exit_code, stderr, escaped = run_cli("run", "--config", str(path))
    assert (exit_code, escaped) == (2, None)
    line = one_line(stderr)
    assert f"cannot listen on 127.0.0.1:{port} (http.listen)" in line and "in use" in line


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["evidence"],
        ["verify"],
        ["coverage"],
        ["export", "--framework", "soc2", "--out", "b.zip", "--as-of", "2026-01-01", "--sign-key", "key.pem"],
    ],
    ids=lambda a: a[0],
)
def test_read_only_commands_on_a_missing_sqlite_file_say_so_and_create_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    monkeypatch.chdir(tmp_path)
    (tmp_path / "key.pem").write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    db = tmp_path / "fresh" / "evidence.db"
    path = write_config(tmp_path, f'database: {{url: "sqlite:///{db}"}}\n')
    exit_code, stderr, escaped = run_cli(*args, "--config", str(path))
    assert (exit_code, escaped) == (3, None)
    assert f"no evidence database at {db}" in one_line(stderr)
    assert not db.parent.exists()


def test_controls_needs_no_database_and_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "evidence.db"
    path = write_config(tmp_path, f'database: {{url: "sqlite:///{db}"}}\n')
    exit_code, _, escaped = run_cli("controls", "--config", str(path), "--format", "json")
    assert (exit_code, escaped) == (0, None)
    assert not db.parent.exists()


def test_an_unexpected_error_is_one_line_and_its_traceback_needs_debug(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import collector.config

    def broken(_path: Path | None) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(collector.config, "load_and_resolve", broken)
    exit_code, stderr, escaped = run_cli("status", "--config", str(config))
    assert (exit_code, escaped) == (70, None)
    assert one_line(stderr) == "unexpected error: RuntimeError: boom (rerun with --debug for the traceback)"
    _, _, escaped = run_cli("--debug", "status", "--config", str(config))
    assert isinstance(escaped, RuntimeError)


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write_config(tmp_path, 'database: {url: "mysql://"}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "collector", "--config", str(path), "status"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "unsupported database 'mysql'" in one_line(proc.stderr)


def test_the_generated_reference_lists_every_command_and_its_options() -> None:
    import re

    import typer

    from collector.cli_reference import render

    text = render()
    sections = dict(re.findall(r"^#+ `([^`]+)`\n(.*?)(?=^#+ `|^## Exit codes)", text, flags=re.M | re.S))

    def walk(command: typer.core.TyperGroup | typer.core.TyperCommand, path: tuple[str, ...]) -> int:
        section = sections[" ".join(("evidence-collector", *path))]
        for param in command.params:
            if not param.hidden and isinstance(param, typer.core.TyperOption):
                assert param.opts[-1] in section, (path, param.opts)
        subs = command.commands if isinstance(command, typer.core.TyperGroup) else {}
        return 1 + sum(walk(sub, (*path, name)) for name, sub in subs.items() if not sub.hidden)

    assert walk(typer.main.get_command(app), ()) == len(sections) >= 16
    assert "| 3 | database error" in text
