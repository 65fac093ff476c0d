"""Render the chart's values reference (Markdown) from values.yaml, its ``# --`` comments and values.schema.json.

    python deploy/helm/values_reference.py          # rewrite evidence-collector/VALUES.md
    python deploy/helm/values_reference.py --check  # exit 1 if the committed file is not current

A ``# -- text`` comment describes the key on the next non-comment line; the ``#`` lines right after it continue
it. A key without one takes its description from the schema.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "evidence-collector"
REFERENCE = CHART / "VALUES.md"
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):")


def comments(text: str) -> dict[str, str]:
    """Dotted key path -> its ``# --`` description."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped.removeprefix("#").strip())
            continue
        match = _KEY.match(line)
        if match is None:
            pending = None
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        if pending:
            found[".".join(key for _, key in stack)] = " ".join(part for part in pending if part)
        pending = None
    return found


def _schema_at(schema: dict[str, Any], path: list[str]) -> dict[str, Any]:
    node: dict[str, Any] = schema
    for part in path:
        node = node.get("properties", {}).get(part, {})
    return node


def _rows(values: Any, path: list[str], schema: dict[str, Any], described: dict[str, str]) -> list[list[str]]:
    key = ".".join(path)
    rows: list[list[str]] = []
    node = _schema_at(schema, path)
    if isinstance(values, dict) and values:
        if key in described:
            rows.append([key, "object", "", described[key]])
        for name, value in values.items():
            rows += _rows(value, [*path, name], schema, described)
        return rows
    kind = node.get("type") or {bool: "boolean", int: "integer", str: "string", list: "array", dict: "object"}.get(
        type(values), "string"
    )
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    description = described.get(key) or node.get("description", "")
    return [[key, kind, f"`{json.dumps(values)}`", description]]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    rows = _rows(yaml.safe_load(text), [], schema, comments(text))
    lines = [
        "# evidence-collector chart values",
        "",
        "Generated from `values.yaml` by `python deploy/helm/values_reference.py`; do not edit by hand.",
        "",
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{key}` | {kind} | {_cell(default)} | {_cell(description)} |" for key, kind, default, description in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    current = render()
    if "--check" in argv:
        if REFERENCE.read_text(encoding="utf-8") != current:
            sys.stderr.write(f"{REFERENCE} is out of date: run python deploy/helm/values_reference.py\n")
            return 1
        return 0
    REFERENCE.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
