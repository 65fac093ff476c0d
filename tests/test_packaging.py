"""The core installs and runs without any connector library; a missing library names the extra that brings it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import load_and_resolve
from collector.connector import load_connector
from collector.errors import ConfigurationError, MissingExtraError, extra_needed
from collector.export.schedule import destination_for
from collector.mappings import default_mappings_dir
from collector.store import Store

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR_LIBRARIES = ("boto3", "botocore", "mlflow", "kubernetes", "psycopg")


def without(monkeypatch: pytest.MonkeyPatch, *libraries: str) -> None:
    """Make these libraries absent for the test: importing them raises ModuleNotFoundError; connectors re-import."""
    for name in list(sys.modules):
        top = name.partition(".")[0]
        if top in libraries or top == "connectors":
            monkeypatch.delitem(sys.modules, name)
    for library in libraries:
        monkeypatch.setitem(sys.modules, library, None)


def test_core_modules_import_no_connector_library() -> None:
    blocked = ", ".join(repr(name) for name in CONNECTOR_LIBRARIES)
    script = f"""
import importlib, pkgutil, sys
for name in ({blocked}):
    sys.modules[name] = None
import collector
modules = [
    m.name for m in pkgutil.walk_packages(collector.__path__, "collector.")
    if ".migrations" not in m.name and m.name != "collector.__main__"
]
for name in modules:
    importlib.import_module(name)
for name in ("connectors.container_scan", "connectors.attestations"):
    importlib.import_module(name)
print(len(modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 25


@pytest.mark.parametrize(
    ("connector", "libraries", "extra"),
    [
        ("mlflow", ("mlflow",), "mlflow"),
        ("aws", ("boto3", "botocore"), "aws"),
        ("model_monitor", ("boto3", "botocore"), "aws"),
        ("kubernetes", ("kubernetes",), "kubernetes"),
        ("data_access", ("orjson",), "aws"),
    ],
)
def test_a_connector_whose_library_is_missing_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, connector: str, libraries: tuple[str, ...], extra: str
) -> None:
    without(monkeypatch, *libraries)
    with pytest.raises(MissingExtraError) as caught:
        load_connector(connector)
    assert str(caught.value).startswith(f"connector {connector!r} needs ")
    assert str(caught.value).endswith(f"which is not installed: pip install 'evidence-collector[{extra}]'")
    assert isinstance(caught.value, LookupError)


def test_core_connectors_load_without_any_connector_library(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, *CONNECTOR_LIBRARIES)
    assert load_connector("container_scan").type == "container_scan"
    assert load_connector("attestations").type == "attestations"


def test_configuration_with_a_missing_library_reports_the_extra_at_its_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    without(monkeypatch, "mlflow")
    config = tmp_path / "collector.yaml"
    config.write_text("connectors:\n  - name: models\n    type: mlflow\n    settings: {}\n")
    with pytest.raises(ConfigurationError) as caught:
        load_and_resolve(config)
    assert f"{config}:3: connectors[0].type: connector 'mlflow' needs mlflow" in str(caught.value)
    assert "pip install 'evidence-collector[mlflow]'" in str(caught.value)


def test_s3_export_destination_without_boto3_names_the_aws_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "boto3", "botocore")
    with pytest.raises(MissingExtraError, match=r"s3:// export destination needs boto3.*\[aws\]'$"):
        destination_for("s3://evidence/bundles")
    assert destination_for("/var/lib/evidence/bundles").location("a.zip") == "/var/lib/evidence/bundles/a.zip"


def test_postgres_url_without_psycopg_names_the_postgres_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "psycopg")
    with pytest.raises(MissingExtraError, match=r"postgresql\+psycopg:// needs psycopg.*\[postgres\]'$"):
        Store("postgresql+psycopg://evidence@127.0.0.1:5432/evidence")


def test_a_missing_submodule_of_an_installed_library_is_not_blamed_on_the_extra() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"mlflow\.no_such_module"), extra_needed("a test"):
        import mlflow.no_such_module  # type: ignore[import-not-found]  # noqa: F401


def test_checkout_reads_the_top_level_mappings() -> None:
    assert default_mappings_dir() == ROOT / "mappings"
