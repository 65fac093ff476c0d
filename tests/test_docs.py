"""The docs site: the generated reference sections cover the code, and the README stays a short door into it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
import yaml
from prometheus_client.core import CounterMetricFamily

from collector.cli import app
from collector.connector import available_connectors, load_connector
from collector.mappings import load_mappings
from collector.metrics import EvidenceMetrics
from collector.state import State

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_commands() -> list[str]:
    """Every command path of the typer app, walked through click's own listing."""
    root = typer.main.get_command(app)

    def walk(group: Any, ctx: Any, path: list[str]) -> list[str]:
        found = []
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            sub_ctx = typer.Context(command, info_name=name, parent=ctx)
            if isinstance(command, typer.core.TyperGroup):
                found += walk(command, sub_ctx, [*path, name])
            else:
                found.append(" ".join([*path, name]))
        return found

    return walk(root, typer.Context(root, info_name="evidence-collector"), [])


def test_every_registered_command_has_a_section_in_the_cli_reference(hooks: ModuleType) -> None:
    page = hooks.generate("cli")
    headings = set(re.findall(r"^#{2,3} `evidence-collector (.+)`$", page, re.MULTILINE))
    commands = registered_commands()
    assert {"run", "collect", "export", "db upgrade", "config check"} <= set(commands)
    assert set(commands) <= headings, set(commands) - headings
    for command in commands:
        assert f"evidence-collector {command} [OPTIONS]" in page, command


def test_the_cli_reference_lists_each_commands_options(hooks: ModuleType) -> None:
    page = hooks.generate("cli")
    export = page.split("\n## `evidence-collector export`\n", 1)[1].split("\n## ", 1)[0]
    for option in ("--framework", "--out", "--as-of", "--period", "--sign-key", "--control"):
        assert f"`{option} " in export, option
    assert "`--help" not in page


def test_the_docs_and_the_cli_share_one_reference_with_every_exit_code(hooks: ModuleType) -> None:
    from collector.cli import EXIT_CODES
    from collector.cli_reference import render

    page = hooks.generate("cli")
    assert page in render()
    for code in EXIT_CODES:
        assert f"\n| {code} | " in page, code
    assert "| code |" not in (DOCS / "cli.md").read_text().lower(), "the exit codes are generated, not hand-kept"


def test_every_metric_family_is_in_the_metrics_table(hooks: ModuleType) -> None:
    table = hooks.generate("metrics")
    for family in EvidenceMetrics(State(), load_mappings(ROOT / "mappings")).describe():
        name = f"{family.name}_total" if isinstance(family, CounterMetricFamily) else family.name
        assert f"| `{name}` |" in table, name


def test_every_connector_has_a_page_with_its_settings_and_mappings(hooks: ModuleType) -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    connector_pages = {p for section in nav if isinstance(section, dict) for p in _pages(section)}
    for type_name in available_connectors():
        page = DOCS / "connectors" / f"{type_name}.md"
        text = page.read_text()
        assert f"<!-- generated: settings {type_name} -->" in text, page
        assert f"<!-- generated: mappings {type_name} -->" in text, page
        assert f"connectors/{type_name}.md" in connector_pages, f"{page} is not in the mkdocs nav"
        settings = hooks.generate("settings", type_name)
        for field in load_connector(type_name).Settings.model_fields:
            assert f"| `{field}` |" in settings, (type_name, field)


def test_the_settings_table_reads_defaults_and_field_docstrings(hooks: ModuleType) -> None:
    table = hooks.generate("settings", "container_scan")
    assert "| `paths` | list of string | **required** | Globs of report files; `**` matches any depth. |" in table
    assert "| `max_age` | duration | `1w` |" in table
    assert "| `fail_on_severity` | `CRITICAL` \\| `HIGH` \\| `MEDIUM` \\| `LOW` | `HIGH` |" in table


def test_every_marker_in_the_docs_is_filled(hooks: ModuleType) -> None:
    for page in DOCS.rglob("*.md"):
        filled = hooks.on_page_markdown(page.read_text())
        assert "<!-- generated:" not in filled, page


def _pages(section: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for value in section.values():
        if isinstance(value, str):
            out.append(value)
        else:
            for item in value:
                out += _pages(item) if isinstance(item, dict) else [item]
    return out


def test_the_readme_is_a_short_door_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert readme.count("```sh\n") == 2, "exactly two set-up commands"
    assert "bash .ci/run" in readme
    assert "--config deploy/demo/config.yaml run" in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
