"""Kubernetes label selectors (``matchLabels`` + ``matchExpressions``) evaluated against an object's labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["selector_matches"]


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(expression.get("key") or "")
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # an operator this code does not know selects nothing, as the API server would reject it


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """An empty selector (``{}``) selects everything, as in a NetworkPolicy's ``podSelector``."""
    match_labels = selector.get("matchLabels") or {}
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or [] if isinstance(e, dict))
