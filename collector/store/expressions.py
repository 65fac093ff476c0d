"""SQL forms of the freshness rules in :mod:`collector.freshness`, for queries that rank or filter in the database.

They read only fields the chain hash covers (``observed_at``, ``collected_at``, ``checks``), so a stored record's
freshness cannot be changed without breaking the chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, exists, func, not_, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["counts_for_freshness", "fresh_from"]


def fresh_from(observed_at: Any, collected_at: Any, type_: Any = None) -> ColumnElement[Any]:
    """:func:`collector.freshness.fresh_from`: ``observed_at``, never later than ``collected_at``.

    Both columns are stored the same way (UTC; fixed-width text on SQLite), so they compare directly."""
    expr = case((observed_at > collected_at, collected_at), else_=observed_at)
    return type_coerce(expr, type_) if type_ is not None else expr


def counts_for_freshness(checks: Any, dialect: str) -> ColumnElement[bool]:
    """:func:`collector.freshness.counts_for_freshness` over the stored checks JSON: false only when there are
    checks and every one is ``error``. A record whose JSON has no ``"error"`` string at all is decided without
    parsing it (the common case)."""
    if dialect == "postgresql":
        elements = func.jsonb_array_elements(cast(checks, JSONB)).table_valued("value")
        result: Any = elements.c.value.op("->>")("result")
    else:
        elements = func.json_each(checks).table_valued("value")
        result = func.json_extract(elements.c.value, "$.result")
    any_check = exists(select(1).select_from(elements))
    not_error = exists(select(1).select_from(elements).where(func.coalesce(cast(result, String), "") != "error"))
    return or_(not_(checks.like('%"error"%')), not_error, not_(any_check))
