"""YAML the operator writes (configuration, mappings, attestation sidecars), read with limits and located by line.

Every YAML file goes through :func:`parse_yaml`: a size limit, a bound on the document as aliases expand it
(a "billion laughs" file is a few hundred bytes), no recursive aliases, bounded nesting. The node tree is kept so
that a validation error can name the line (:func:`yaml_line_of`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "YamlError", "parse_yaml", "read_yaml", "yaml_line_of"]

MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 200_000
"""Values in the document once every alias is expanded."""
MAX_YAML_DEPTH = 64


class YamlError(ValueError):
    """A YAML file that cannot be read or parsed, or breaks a limit; the message names the file (and line)."""


def read_yaml(path: Path, label: str | None = None, max_bytes: int = MAX_YAML_BYTES) -> tuple[Any, yaml.Node | None]:
    """Read at most ``max_bytes`` of ``path`` and parse it. :class:`OSError` when it cannot be opened."""
    where = label or str(path)
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlError(f"{where}: larger than {_size(max_bytes)}; refusing to read it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text, where, max_bytes)


def parse_yaml(text: str, label: str, max_bytes: int = MAX_YAML_BYTES) -> tuple[Any, yaml.Node | None]:
    """The document's value and its node tree (``None, None`` for an empty document)."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlError(f"{label}: larger than {_size(max_bytes)}; refusing to parse it")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _Expansion(label).count(node, 0)
        return loader.construct_document(node), node
    except YamlError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise YamlError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise YamlError(f"{label}: not valid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:
        raise YamlError(f"{label}: not valid YAML: {_first_line(exc)}") from None
    finally:
        loader.dispose()


class _Expansion:
    """Counts the values a node tree stands for once aliases are expanded, sharing the count of a node reused."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._sizes: dict[int, int] = {}
        self._open: set[int] = set()
        self._total = 0

    def count(self, node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in self._sizes:
            return self._add(self._sizes[key], node)
        if key in self._open:
            raise YamlError(f"{self._at(node)}: a YAML alias refers to itself (recursive anchor)")
        if depth > MAX_YAML_DEPTH:
            raise YamlError(f"{self._at(node)}: YAML nested deeper than {MAX_YAML_DEPTH} levels")
        self._open.add(key)
        before = self._total
        self._add(1, node)
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self.count(item, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                self.count(k, depth + 1)
                self.count(v, depth + 1)
        self._open.discard(key)
        self._sizes[key] = self._total - before
        return self._sizes[key]

    def _add(self, size: int, node: yaml.Node) -> int:
        self._total += size
        if self._total > MAX_YAML_NODES:
            raise YamlError(
                f"{self._at(node)}: YAML expands to more than {MAX_YAML_NODES} values through aliases "
                "(an alias bomb?); refusing to load it"
            )
        return size

    def _at(self, node: yaml.Node) -> str:
        return f"{self._label}:{node.start_mark.line + 1}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


def yaml_line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """Follow a pydantic error location into the YAML node tree to find its line."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if nxt is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
                return key.start_mark.line + 1 if key is not None else best
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return best
        best = node.start_mark.line + 1
    return best
