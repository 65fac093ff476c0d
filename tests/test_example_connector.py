"""examples/connector-example is a separately installable connector: pip builds and installs it from its own
pyproject, its own tests pass with the SDK's conformance kit, and the collector finds its connector and its
evidence map through entry points alone, tagging its evidence with the controls that map names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "connector-example"


def _env(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*paths, ROOT))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed by pip into a directory of its own, so the project's environment stays as it is."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (site / "model_card_connector" / "evidence.yaml").is_file()
    return site


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", *args], env=env, capture_output=True, text=True)


def test_the_examples_own_tests_pass_against_the_sdk(installed: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=_env(installed),
        capture_output=True,
        text=True,
        cwd=EXAMPLE,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout


def test_the_connector_is_small() -> None:
    lines = (EXAMPLE / "src" / "model_card_connector" / "__init__.py").read_text().splitlines()
    assert len(lines) <= 150


def test_installed_plugin_collects_evidence_tagged_by_its_own_map(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""
database: {{url: "sqlite:///{tmp_path / "e.db"}"}}
connectors:
  - name: cards
    type: model_card
    settings: {{paths: ["{EXAMPLE}/tests/data/*/README.md"]}}
"""
    )
    env = _env(installed)
    assert cli(env, "collect", "-c", str(config)).returncode == 0
    done = cli(env, "evidence", "-c", str(config), "--control", "iso42001:A.6.2.7", "--format", "json")
    assert done.returncode == 0, done.stderr
    records = {r["subject"]["id"]: r for r in json.loads(done.stdout)["records"]}
    assert set(records) == {"churn-model", "fraud-detector"}
    checks = {c["id"]: c["result"] for c in records["churn-model"]["checks"]}
    assert checks == {"model_card.complete": "fail", "model_card.reviewed": "fail"}
    assert "nist_ai_rmf:MAP 2.2" in records["fraud-detector"]["controls"]

    without = cli(_env(), "config", "check", "-c", str(config))
    assert without.returncode == 2
    assert "model_card" in without.stderr


def test_a_plugin_map_naming_an_unknown_control_is_an_error_naming_the_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "bad_plugin").mkdir(parents=True)
    (site / "bad_plugin" / "__init__.py").write_text(
        "from pathlib import Path\nMAP = Path(__file__).with_name('evidence.yaml')\n"
    )
    (site / "bad_plugin" / "evidence.yaml").write_text(
        "kinds:\n  - kind: bad.kind\n    title: t\n    freshness: {ttl: 1d, at_risk: 1h}\n"
        "    controls:\n      - control: 'iso42001:A.99'\n        relationship: supports\n"
        "        rationale: a rationale long enough\n"
    )
    dist = site / "bad_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evidence_collector.mappings]\nbad = bad_plugin:MAP\n")
    done = cli(_env(site), "controls", "--framework", "iso42001")
    assert done.returncode != 0
    assert "mappings plugin 'bad'" in done.stderr and "evidence.yaml" in done.stderr
    assert "unknown control 'A.99'" in done.stderr
