"""Continuous-compliance evidence collector for AI/ML systems."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.connector import Check, CollectContext, Connector, ConnectorSettings
    from collector.model import CheckResult, ControlRef, Observation, Outcome, Subject

__version__ = "0.1.0"

__all__ = [
    "Check",
    "CheckResult",
    "CollectContext",
    "Connector",
    "ConnectorSettings",
    "ControlRef",
    "Observation",
    "Outcome",
    "Subject",
    "__version__",
]

_LAZY = {
    "Check": "collector.connector",
    "CollectContext": "collector.connector",
    "Connector": "collector.connector",
    "ConnectorSettings": "collector.connector",
    "CheckResult": "collector.model",
    "ControlRef": "collector.model",
    "Observation": "collector.model",
    "Outcome": "collector.model",
    "Subject": "collector.model",
}
"""The plugin API, imported on first use so that ``--version`` and ``--help`` stay cheap."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
