"""MkDocs hook: fills the reference sections that must match the code, from the code itself.

A page asks for a section with a marker line, replaced at build time:

    <!-- generated: cli -->                     the command reference and exit codes, from collector.cli_reference
    <!-- generated: metrics -->                 the metric families, from EvidenceMetrics.describe()
    <!-- generated: alerts -->                  the alert rules, from deploy/prometheus/evidence-collector-rules.yaml
    <!-- generated: config -->                  the configuration file's keys, from collector.config.AppConfig
    <!-- generated: settings container_scan --> a connector's settings, from its pydantic Settings model
    <!-- generated: mappings container_scan --> a connector's evidence kinds and checks with their control links

Run ``python docs/hooks.py cli`` (or ``metrics``, ``config``, ``settings aws`` ...) to print one section.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import re
import sys
import textwrap
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the docs describe the code beside them, not another installed copy

from pydantic import BaseModel, SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

_MARKER = re.compile(r"^<!-- generated: (?P<what>[a-z_]+)(?: (?P<arg>[a-z_]+))? -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _MARKER.sub(lambda m: generate(m["what"], m["arg"]), markdown)


def generate(what: str, arg: str | None = None) -> str:
    if what == "cli":
        return cli_reference()
    if what == "metrics":
        return metrics_table()
    if what == "alerts":
        return alerts_table()
    if what == "config":
        return settings_table(_app_config())
    if what == "settings" and arg:
        return settings_table(_connector(arg).Settings)
    if what == "mappings" and arg:
        return mappings_tables(arg)
    raise ValueError(f"unknown generated section {what!r} {arg or ''}".rstrip())


# -- command line -----------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("``", "`")


def cli_reference() -> str:
    """The command reference and the exit codes, from the one generator the CLI ships
    (``python -m collector.cli_reference``)."""
    from collector.cli_reference import sections

    return sections()


def _anchor(heading: str) -> str:
    from markdown.extensions.toc import slugify

    return str(slugify(heading, "-"))


# -- metrics ----------------------------------------------------------------------------------------------------


def metrics_table() -> str:
    from prometheus_client.core import CounterMetricFamily

    from collector.metrics import EvidenceMetrics
    from collector.state import State

    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for family in EvidenceMetrics(State(), _mappings()).describe():
        counter = isinstance(family, CounterMetricFamily)
        name = f"{family.name}_total" if counter else family.name
        labels = ", ".join(getattr(family, "_labelnames", ())) or "-"
        lines.append(f"| `{name}` | {family.type} | {labels} | {_cell(family.documentation)} |")
    return "\n".join(lines) + "\n"


def alerts_table() -> str:
    import yaml

    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "evidence-collector-rules.yaml").read_text())
    lines = ["| alert | severity | fires when | for | runbook |", "|---|---|---|---|---|"]
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule["alert"]
            lines.append(
                f"| `{name}` | {rule['labels']['severity']} | `{_cell(rule['expr'])}` | {rule.get('for', '-')} "
                f"| [runbook](#{_anchor('Runbook: ' + name)}) |"
            )
    return "\n".join(lines) + "\n"


# -- settings ---------------------------------------------------------------------------------------------------


def _app_config() -> type[BaseModel]:
    from collector.config import AppConfig

    return AppConfig


@cache
def _connector(type_name: str) -> Any:
    from collector.connector import load_connector

    return load_connector(type_name)


@cache
def _attribute_docstrings(cls: type) -> dict[str, str]:
    """``field: type = default`` followed by a string literal: that string documents the field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins", "pydantic.main") or not issubclass(klass, BaseModel):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models_in(arg) if m not in found]
    return found


def _container(annotation: Any) -> type | None:
    """``list`` or ``dict`` when the field holds several models (looking through ``| None``)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) in (list, dict):
            return typing.get_origin(candidate)  # type: ignore[no-any-return]
    return None


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{json.dumps(a)}`" if not isinstance(a, str) else f"`{a}`" for a in args)
    if origin in (types.UnionType, typing.Union):
        named = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    simple = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        SecretStr: "secret",
        Path: "path",
        timedelta: "duration",
        Any: "any",
    }
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plain(value: Any) -> Any:
    from collector.durations import format_duration

    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value.model_dump(exclude_none=True).items()}
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "-"
    if isinstance(value, BaseModel):
        return "see below"
    plain = _plain(value)
    text = plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False).replace('"', "")
    return f"`{_cell(text)}`"


def _rows(model: type[BaseModel], prefix: str) -> Iterator[str]:
    docs = _attribute_docstrings(model)
    for name, info in model.model_fields.items():
        key = prefix + name
        yield f"| `{key}` | {_type_name(info.annotation)} | {_default(info)} | {_cell(docs.get(name, ''))} |"
        container = _container(info.annotation)
        for sub in _models_in(info.annotation):
            if container is list:
                yield from _rows(sub, f"{key}[].")
            elif container is dict:
                yield from _rows(sub, f"{key}.<name>.")
            else:
                yield from _rows(sub, f"{key}.")


def settings_table(model: type[BaseModel]) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|", *_rows(model, "")]
    return "\n".join(lines) + "\n"


# -- mappings ---------------------------------------------------------------------------------------------------


@cache
def _mappings() -> Any:
    from collector.mappings import load_mappings

    return load_mappings(ROOT / "mappings")


def mappings_tables(type_name: str) -> str:
    from collector.durations import format_duration

    mappings = _mappings()
    cls = _connector(type_name)
    lines = ["| evidence kind | title | fresh for (TTL) | at risk in the last | controls |", "|---|---|---|---|---|"]
    for kind in sorted(cls.kinds):
        km = mappings.kinds[kind]
        controls = ", ".join(f"`{link.control}`" for link in km.controls) or "declared by each attestation"
        lines.append(
            f"| `{kind}` | {_cell(km.title)} | {format_duration(km.freshness.ttl)} "
            f"| {format_duration(km.freshness.at_risk)} | {controls} |"
        )
    if cls.checks:
        lines += ["", "| check | evidence kind | title | controls |", "|---|---|---|---|"]
    for check in cls.checks:
        cm = mappings.checks.get(check.id)
        controls = ", ".join(f"`{link.control}`" for link in cm.controls) if cm else "not mapped"
        lines.append(f"| `{check.id}` | `{check.kind}` | {_cell(check.title)} | {controls or '-'} |")
    links = [(kind, link) for kind in sorted(cls.kinds) for link in mappings.kinds[kind].controls]
    links += [(c.id, link) for c in cls.checks if c.id in mappings.checks for link in mappings.checks[c.id].controls]
    if links:
        lines += [
            "",
            '??? note "Why each control link holds"',
            "",
            "    | link | relationship | rationale |",
            "    |---|---|---|",
        ]
        lines += [f"    | `{what}` → `{c.control}` | {c.relationship} | {_cell(c.rationale)} |" for what, c in links]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(generate(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
