"""An IAM identity-policy evaluator over collected authorization details: may this principal do this action on
this resource?

It answers conservatively for privilege-escalation questions: an ``Allow`` whose ``Condition`` might hold counts
as allowing (and is marked conditional); a ``Deny`` is relied on only when it is unconditional and names the
resource without policy variables. A policy it cannot read raises :class:`PolicyError` naming the policy and the
statement, so the caller reports ``error`` rather than guessing. Service control policies and resource policies
are not collected and not evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any
from urllib.parse import unquote

__all__ = ["Decision", "PolicyError", "Statement", "Verdict", "decide", "parse_policy"]

_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})
_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+)$")
_VARIABLE = re.compile(r"\$\{[^}]*\}")


class PolicyError(ValueError):
    """A policy document (or one statement of it) the evaluator cannot read; the message names where."""


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


@dataclass(frozen=True)
class Statement:
    where: str
    """``<policy> statement <n>`` (with the Sid when there is one): what an error or a finding names."""
    allow: bool
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    not_resource: bool
    conditional: bool


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    by: tuple[str, ...]
    """The statements that decided it (every matching Allow, or the Deny)."""
    conditional: bool = False
    """Allowed only by statements carrying a ``Condition``."""

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise PolicyError(f"{where}: {key} must be a non-empty string or list of strings, not {value!r:.80}")
    return tuple(items)


def _document(document: Any, name: str) -> Mapping[str, Any]:
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document))
        except ValueError as exc:
            raise PolicyError(f"{name}: the document is not JSON ({exc})") from None
    if not isinstance(document, Mapping):
        raise PolicyError(f"{name}: the document is not a JSON object but {type(document).__name__}")
    return document


def _statement(raw: Any, name: str, index: int) -> Statement:
    where = f"{name} statement {index}"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: not an object but {type(raw).__name__}")
    if isinstance(raw.get("Sid"), str) and raw["Sid"]:
        where += f" ({raw['Sid']})"
    unknown = sorted(str(key) for key in raw if key not in _STATEMENT_KEYS)
    if unknown:
        raise PolicyError(f"{where}: keys an identity policy does not have: {', '.join(unknown)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect is {effect!r}, not Allow or Deny")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"{where}: needs exactly one of Action and NotAction")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise PolicyError(f"{where}: needs exactly one of Resource and NotResource")
    action_key = "Action" if "Action" in raw else "NotAction"
    actions = _strings(raw[action_key], where, action_key)
    bad = [action for action in actions if not _ACTION.match(action)]
    if bad:
        raise PolicyError(f"{where}: {action_key} {bad[0]!r} is not service:action")
    resource_key = "Resource" if "Resource" in raw else "NotResource"
    resources = _strings(raw[resource_key], where, resource_key)
    condition = raw.get("Condition")
    if condition is not None and not isinstance(condition, Mapping):
        raise PolicyError(f"{where}: Condition is not an object")
    return Statement(
        where=where,
        allow=effect == "Allow",
        actions=tuple(action.lower() for action in actions),
        not_action=action_key == "NotAction",
        resources=resources,
        not_resource=resource_key == "NotResource",
        conditional=bool(condition),
    )


def parse_policy(document: Any, name: str) -> tuple[Statement, ...]:
    """Every statement of one identity policy (or permissions boundary); :class:`PolicyError` names what is wrong."""
    parsed = _document(document, name)
    if "Statement" not in parsed:
        raise PolicyError(f"{name}: the document has no Statement")
    raw = parsed["Statement"]
    statements = raw if isinstance(raw, list) else [raw]
    if not statements:
        raise PolicyError(f"{name}: the Statement list is empty")
    return tuple(_statement(item, name, index) for index, item in enumerate(statements))


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM globs: ``*`` any run of characters, ``?`` one character, everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _action_matches(statement: Statement, action: str) -> bool:
    hit = any(_pattern(pattern, True).match(action) for pattern in statement.actions)
    return hit != statement.not_action


def _resource_matches(statement: Statement, resource: str | None, variables: Mapping[str, str]) -> bool | None:
    """``None`` when only an unknown policy variable could make it match (or not): the caller decides which way to
    lean. ``resource=None`` asks about *some* resource: ``*`` matches every one, anything narrower only some."""
    if resource is None:
        if "*" in statement.resources:
            return not statement.not_resource
        return None
    uncertain = False
    hit = False
    for pattern in statement.resources:
        pattern = _VARIABLE.sub(lambda m: variables.get(m.group(0)[2:-1].lower(), m.group(0)), pattern)
        if _VARIABLE.search(pattern):
            if _pattern(_VARIABLE.sub("*", pattern), False).match(resource):
                uncertain = True
        elif _pattern(pattern, False).match(resource):
            hit = True
    if hit:
        return not statement.not_resource
    if uncertain:
        return None
    return statement.not_resource


def _allowed_by(
    statements: Sequence[Statement], action: str, resource: str | None, variables: Mapping[str, str]
) -> tuple[list[Statement], Statement | None]:
    allows: list[Statement] = []
    for statement in statements:
        if not _action_matches(statement, action):
            continue
        matches = _resource_matches(statement, resource, variables)
        if statement.allow:
            if matches is not False:
                allows.append(statement)
        elif matches is True and not statement.conditional:
            return [], statement
    return allows, None


def decide(
    identity: Sequence[Statement],
    boundary: Sequence[Statement] | None,
    action: str,
    resource: str | None,
    variables: Mapping[str, str] | None = None,
) -> Verdict:
    """``resource=None``: on some resource (for actions such as ``ec2:RunInstances`` judged on any target).
    ``variables``: policy variables known for the principal (``aws:username``), lower-case keys; others are
    unknown, so an Allow naming one counts and a Deny naming one is not relied on.
    Identity policies, then the permissions boundary (when there is one) must both allow; a Deny in either wins."""
    allows, deny = _allowed_by(identity, action.lower(), resource, variables or {})
    if deny is not None:
        return Verdict(Decision.EXPLICIT_DENY, (deny.where,))
    bounded: list[Statement] = []
    if boundary is not None:
        bounded, boundary_deny = _allowed_by(boundary, action.lower(), resource, variables or {})
        if boundary_deny is not None:
            return Verdict(Decision.EXPLICIT_DENY, (boundary_deny.where,))
        if not bounded:
            return Verdict(Decision.IMPLICIT_DENY, ())
    if not allows:
        return Verdict(Decision.IMPLICIT_DENY, ())
    conditional = all(s.conditional for s in allows) or (bool(bounded) and all(s.conditional for s in bounded))
    return Verdict(Decision.ALLOW, tuple(s.where for s in allows), conditional=conditional)
