"""The import contracts in pyproject.toml: connectors import only collector.sdk, no connector imports another,
and neither reaches the engine. ``lint-imports`` judges them; these tests prove it does, and would notice."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import collector

ROOT = Path(__file__).parents[1]
LINT = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True, no_logo=True))"


def _lint(cwd: Path, *path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (*path, ROOT))}
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _contract(contract_id: str) -> dict[str, Any]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def test_the_import_contracts_are_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_every_collector_module_but_the_sdk_is_forbidden_to_connectors() -> None:
    """A new core module is off limits to connectors from the day it is added."""
    modules = {f"collector.{m.name}" for m in pkgutil.iter_modules(collector.__path__)} - {"collector.sdk"}
    forbidden = set(_contract("connectors-import-only-the-sdk")["forbidden_modules"])
    assert forbidden == modules


def test_the_sdk_root_does_not_load_the_engine() -> None:
    """Importing the SDK (and the connectors) loads neither the mappings loader nor any engine module."""
    engine = _contract("sdk-and-connectors-never-reach-the-engine")["forbidden_modules"]
    code = (
        "import sys, collector.sdk, collector.sdk.vulnerability_scan, connectors.aws, connectors.kubernetes, "
        "connectors.container_scan, connectors.model_monitor; "
        f"print(sorted(m for m in {engine!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        (
            "aws/leak.py",
            "from collector.store import Store\n",
            "connectors.aws.leak -> collector.store",
        ),
        (
            "kubernetes/leak.py",
            "from connectors.container_scan.parsers import parse_report\n",
            "connectors.kubernetes.leak -> connectors.container_scan.parsers",
        ),
        (
            "mlflow/leak.py",
            "from collector.connector import Connector\n",
            "connectors.mlflow.leak -> collector.connector",
        ),
    ],
)
def test_a_connector_that_breaks_a_contract_is_caught(tmp_path: Path, module: str, source: str, broken: str) -> None:
    """The real contracts, run over a copy of the connectors with one bad import added."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "connectors", tmp_path / "connectors", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "connectors" / module).write_text(source)
    result = _lint(tmp_path, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout
    assert "BROKEN" in result.stdout


def _cycles(graph: Any, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module) & modules:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    import grimp

    # imports only a type checker follows are not cycles at run time
    graph = grimp.build_graph("collector", "connectors", cache_dir=None, exclude_type_checking_imports=True)
    assert _cycles(graph, set(graph.modules)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    import grimp

    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph, set(graph.modules)) == [["a.x", "a.y"]]
