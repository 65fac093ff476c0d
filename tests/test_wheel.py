"""The wheel built from this repository, installed (core only, no extras) into a fresh virtualenv outside the
checkout, runs from a directory that is not the checkout: its mappings travel inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from collector.attestation import default_templates_dir, load_templates
from collector.coverage import compute_coverage, coverage_basis
from collector.crosswalk import default_crosswalks_dir, load_crosswalks, suggest_links
from collector.mappings import default_mappings_dir, load_mappings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCAN = ROOT / "tests" / "fixtures" / "trivy" / "trivy-alpine-39-critical.json"
CORE_CONNECTORS = ["alerts", "attestations", "container_scan", "data_validation", "github", "vault"]
EXTRA_OF = {"aws": "aws", "data_access": "aws", "kubernetes": "kubernetes", "mlflow": "mlflow", "model_monitor": "aws"}


@dataclass(frozen=True)
class Installed:
    bin: Path
    workdir: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``evidence-collector ARGS`` from the work directory, with nothing pointing back at the checkout."""
        return self.exec("evidence-collector", *args, **env)

    def exec(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("EVIDENCE_")}
        return subprocess.run(
            [str(self.bin / script), *args],
            cwd=self.workdir, env={**clean, **env}, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(ROOT)], check=True, timeout=600)
    [wheel] = (root / "dist").glob("evidence_collector-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    venv_pip = [str(root / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*venv_pip, "install", "-q", str(wheel)], check=True, timeout=900)
    workdir = root / "elsewhere"
    workdir.mkdir()
    return Installed(root / "venv" / "bin", workdir)


def test_the_installed_package_is_not_the_checkout_and_carries_no_connector_library(installed: Installed) -> None:
    probe = "import collector, importlib.util as u; print(collector.__file__); print(u.find_spec('boto3'))"
    result = installed.exec("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    where, boto3 = result.stdout.splitlines()
    assert not Path(where).is_relative_to(ROOT)
    assert sorted(p.name for p in (Path(where).parent / "_mappings" / "catalogs").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "mappings" / "catalogs").glob("*.yaml")
    )
    assert boto3 == "None"


def test_coverage_of_every_installed_connector_from_the_wheel(installed: Installed) -> None:
    result = installed.run("coverage", "--all-connectors", "--no-store", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    mappings = load_mappings()
    expected = compute_coverage(
        mappings,
        coverage_basis(CORE_CONNECTORS, load_templates(default_templates_dir(), mappings)),
        {},
        datetime.now(UTC),
    ).as_json()
    assert len(doc["controls"]) == len(mappings.all_controls()) > 200
    assert [(c["framework"], c["control"], c["state"]) for c in doc["controls"]] == [
        (c["framework"], c["control"], c["state"]) for c in expected["controls"]
    ]
    assert sum(c["state"] == "automated" for c in doc["controls"]) > 0
    assert len(doc["goals"]) == 6
    assert sorted(doc["unavailable_connectors"]) == sorted(EXTRA_OF)
    for connector, extra in EXTRA_OF.items():
        assert doc["unavailable_connectors"][connector].endswith(f"pip install 'evidence-collector[{extra}]'")


def test_controls_suggest_from_the_wheel_honours_the_configured_mappings(installed: Installed) -> None:
    result = installed.run("controls-suggest", "--all-connectors", "--format", "json")
    assert result.returncode == 0, result.stderr
    mappings = load_mappings()
    report = compute_coverage(
        mappings, coverage_basis(CORE_CONNECTORS, load_templates(default_templates_dir(), mappings)), {},
        datetime.now(UTC),
    )  # fmt: skip
    expected = suggest_links(report, load_crosswalks(default_crosswalks_dir(), mappings))
    suggestions = json.loads(result.stdout)["suggestions"]
    assert len(suggestions) == len(expected) > 0
    assert suggestions == [s.as_json() for s in expected]

    custom = installed.workdir / "my-mappings"
    shutil.copytree(default_mappings_dir(), custom, dirs_exist_ok=True)
    shutil.rmtree(custom / "crosswalks")
    mine = installed.run(
        "controls-suggest", "--all-connectors", "--format", "json", EVIDENCE_COLLECTOR_MAPPINGS=str(custom)
    )
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout)["suggestions"] == []


def test_collect_a_shipped_scan_report_from_the_wheel(installed: Installed) -> None:
    reports = installed.workdir / "reports"
    reports.mkdir(exist_ok=True)
    shutil.copy(SCAN, reports / SCAN.name)
    config = installed.workdir / "collector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{installed.workdir / 'evidence.db'}"},
                "log": {"format": "json", "level": "warning"},
                "connectors": [
                    {"name": "scans", "type": "container_scan", "settings": {"paths": [f"{reports}/*.json"]}}
                ],
            }
        )
    )
    collected = installed.run("--config", str(config), "collect")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    row = next(line for line in collected.stdout.splitlines() if "scans" in line)
    assert "container_scan" in row and "succeeded" in row and " 1 " in row

    evidence = installed.run("--config", str(config), "evidence", "--format", "json")
    assert evidence.returncode == 0, evidence.stderr
    [record] = json.loads(evidence.stdout)["records"]
    assert record["kind"] == "container.scan"
    assert record["connector"] == "container_scan"
    assert "soc2:CC7.1" in record["controls"]
    checks = {c["id"]: c["result"] for c in record["checks"]}
    assert checks["container.no_fixable_vulns"] == "fail"  # two fixable CRITICAL findings


def test_a_connector_without_its_extra_is_a_configuration_error_naming_it(installed: Installed) -> None:
    config = installed.workdir / "models.yaml"
    config.write_text(yaml.safe_dump({"connectors": [{"name": "models", "type": "mlflow", "settings": {}}]}))
    result = installed.run("--config", str(config), "config", "check")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert "models.yaml:4: connectors[0].type: connector 'mlflow' needs mlflow, which is not installed" in message
    assert "pip install 'evidence-collector[mlflow]'" in message
    assert "Traceback" not in result.stderr
