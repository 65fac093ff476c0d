"""Numbers as sources write them: only a finite number is a measurement.

NaN and ±Inf turn up as JSON numbers (Evidently writes bare ``NaN``), as floats from client libraries, and as
text (Prometheus ``"+Inf"``, stored MLflow metrics ``"Infinity"``). None of them can pass a bound, so checks ask
here rather than comparing them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["finite_number", "is_non_finite", "non_finite_paths", "non_finite_text"]

_NON_FINITE_WORDS = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a finite JSON number; ``None`` for NaN, ±Inf, booleans, text and null."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def is_non_finite(value: object) -> bool:
    """NaN or ±Inf, as a number or as the words sources write for them (``NaN``, ``+Inf``, ``-Infinity``)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower() in _NON_FINITE_WORDS


def non_finite_text(value: object) -> str:
    """How a non-finite value reads in a message: ``NaN``, ``+Inf`` or ``-Inf``."""
    if isinstance(value, str):
        value = value.strip().lower().lstrip("+")
        return "NaN" if "nan" in value else "-Inf" if value.startswith("-") else "+Inf"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return "-Inf" if isinstance(value, float) and value < 0 else "+Inf"


def non_finite_paths(value: object, path: str = "", *, text: bool = False) -> list[str]:
    """Where a JSON-like value holds a NaN or ±Inf float (``metrics[2].value``). With ``text``, strings that spell
    one (``"NaN"``, ``"+Inf"``) count too: for payloads whose numbers are never written as text (free text such
    as tags may well read ``NaN``, so it is off by default)."""
    if isinstance(value, float) or (text and isinstance(value, str)):
        return [path or "(the value itself)"] if is_non_finite(value) else []
    if isinstance(value, Mapping):
        return [
            found
            for key, item in value.items()
            for found in non_finite_paths(item, f"{path}.{key}" if path else str(key), text=text)
        ]
    if isinstance(value, list | tuple):
        return [
            found for index, item in enumerate(value) for found in non_finite_paths(item, f"{path}[{index}]", text=text)
        ]
    return []
