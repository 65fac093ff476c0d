"""ACL policy text (HCL or JSON) read into path rules, and judged for broad grants. Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PathRule", "PolicyError", "broad_grants", "parse_policy"]

_LEGACY_POLICY = {
    "deny": ["deny"],
    "read": ["read", "list"],
    "write": ["create", "read", "update", "delete", "list"],
    "sudo": ["create", "read", "update", "delete", "list", "sudo"],
}


class PolicyError(ValueError):
    """Policy text this reader cannot parse: the policy is judged ``error``, never read as granting nothing."""


@dataclass(frozen=True, slots=True)
class PathRule:
    path: str
    capabilities: tuple[str, ...]


def parse_policy(text: str) -> list[PathRule]:
    if not text.strip():
        return []
    if text.lstrip().startswith("{"):
        return _from_json(text)
    return _from_hcl(text)


def _from_json(text: str) -> list[PathRule]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"JSON policy does not parse: {exc.msg} at line {exc.lineno}") from None
    paths = document.get("path", {}) if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise PolicyError("JSON policy: 'path' is not an object")
    rules = []
    for path, body in paths.items():
        if not isinstance(body, dict):
            raise PolicyError(f"JSON policy: path {path!r} is not an object")
        rules.append(PathRule(path, _capabilities(body.get("capabilities"), body.get("policy"), path)))
    return rules


def _capabilities(listed: object, legacy: object, path: str) -> tuple[str, ...]:
    found: list[str] = []
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            raise PolicyError(f"path {path!r}: capabilities is not a list of strings")
        found.extend(listed)
    if legacy is not None:
        if legacy not in _LEGACY_POLICY:
            raise PolicyError(f"path {path!r}: unknown policy {legacy!r}")
        found.extend(_LEGACY_POLICY[str(legacy)])
    return tuple(sorted(set(found)))


_TOKEN = re.compile(
    r'\s+|#[^\n]*|//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|<<-?(\w+)\n.*?\n\s*\1|[A-Za-z_][\w.-]*|[{}\[\]=,]|-?\d+',
    re.DOTALL,
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            line = text.count("\n", 0, at) + 1
            raise PolicyError(f"HCL policy: unexpected {text[at : at + 20]!r} at line {line}")
        word = match.group(0)
        at = match.end()
        if not word.strip() or word.startswith(("#", "//", "/*")):
            continue
        out.append(word)
    return out


def _string(word: str) -> str:
    if not word.startswith('"'):
        raise PolicyError(f"HCL policy: expected a quoted string, got {word!r}")
    return str(json.loads(word))


def _from_hcl(text: str) -> list[PathRule]:
    tokens = _tokens(text)
    rules: list[PathRule] = []
    at = 0
    while at < len(tokens):
        if tokens[at] != "path" or at + 2 >= len(tokens) or tokens[at + 2] != "{":
            raise PolicyError(f'HCL policy: expected path "..." {{ at {tokens[at]!r}')
        path = _string(tokens[at + 1])
        body, at = _block(tokens, at + 2)
        rules.append(PathRule(path, _capabilities(*_body_fields(body, path), path)))
    return rules


def _block(tokens: list[str], start: int) -> tuple[list[str], int]:
    """The tokens between the brace at ``start`` and its match, and the index after the match."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index] in ("{", "["):
            depth += 1
        elif tokens[index] in ("}", "]"):
            depth -= 1
            if depth == 0:
                return tokens[start + 1 : index], index + 1
    raise PolicyError("HCL policy: a block is not closed")


def _body_fields(body: list[str], path: str) -> tuple[list[str] | None, str | None]:
    capabilities: list[str] | None = None
    legacy: str | None = None
    at, depth = 0, 0
    while at < len(body):
        word = body[at]
        if word in ("{", "["):
            depth += 1
        elif word in ("}", "]"):
            depth -= 1
        elif depth == 0 and word == "capabilities" and body[at + 1 : at + 3] == ["=", "["]:
            inner, at = _block(body, at + 2)
            capabilities = [_string(t) for t in inner if t != ","]
            continue
        elif depth == 0 and word == "policy" and at + 2 < len(body) and body[at + 1] == "=":
            legacy = _string(body[at + 2])
            at += 3
            continue
        at += 1
    if capabilities is None and legacy is None:
        raise PolicyError(f"path {path!r}: no capabilities")
    return capabilities, legacy


def broad_grants(rules: Iterable[PathRule]) -> list[dict[str, object]]:
    """Rules that grant ``sudo``, or any non-deny capability on a path whose wildcard reaches every mount
    (``*``, ``+/…``) or all of ``sys/``."""
    found: list[dict[str, object]] = []
    for rule in rules:
        granted = [c for c in rule.capabilities if c != "deny"]
        if not granted or "deny" in rule.capabilities:
            continue
        reasons = []
        if "sudo" in granted:
            reasons.append("sudo")
        literal = re.split(r"[*+]", rule.path, maxsplit=1)[0]
        if literal != rule.path and literal in ("", "sys/", "sys"):
            reasons.append("wildcard over every mount" if not literal else "wildcard over sys/")
        if reasons:
            found.append({"path": rule.path, "capabilities": list(rule.capabilities), "reasons": reasons})
    return found
