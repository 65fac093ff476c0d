"""Great Expectations validation results read into :class:`ValidationRecord`s.

Two documents are read, in the GX Core 1.x shape and the 0.x one:

- an ``ExpectationSuiteValidationResult`` (what a validation-results store writes, and
  ``result.to_json_dict()``): ``success``, ``statistics``, ``results[]``, the suite name (``suite_name`` in 1.x,
  ``meta.expectation_suite_name`` in 0.x) and the batch (``meta.active_batch_definition``, or 0.x V2
  ``meta.batch_kwargs``);
- a checkpoint result: ``run_results`` keyed by validation id, each value the suite result itself (1.x) or
  ``{"validation_result": ..., "actions_results": ...}`` (0.x).

Only the expectation's type, kwargs, success and exception flag are kept: ``result`` (observed values,
``partial_unexpected_list``) carries data and is dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collector.sdk import UnreadableTimestamp, finite_number, read_timestamp

__all__ = ["ResultError", "ValidationRecord", "read_results"]

_STAT_COUNTS = ("evaluated_expectations", "successful_expectations", "unsuccessful_expectations")
_MAX_EXCEPTION_CHARS = 300


class ResultError(ValueError):
    """The document is not a validation result this connector reads; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ValidationRecord:
    """One suite run against one batch of one asset."""

    datasource: str
    asset: str
    suite: str
    validated_at: datetime
    success: bool
    statistics: Mapping[str, Any]
    expectations_total: int
    failing: tuple[Mapping[str, Any], ...]
    run_name: str | None
    gx_version: str | None
    source: str

    def as_payload(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "validated_at": self.validated_at.isoformat(),
            "run_name": self.run_name,
            "gx_version": self.gx_version,
            "statistics": dict(self.statistics),
            "expectations_total": self.expectations_total,
            "failing_expectations": [dict(f) for f in self.failing],
            "source": self.source,
        }


def read_results(text: str, source: str) -> list[ValidationRecord]:
    """Every validation in one JSON document; :class:`ResultError` naming ``source`` for anything else."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(document, dict):
        raise ResultError(f"{source}: top level is a JSON {type(document).__name__}, not a validation result")
    return [_record(result, source, where) for where, result in _suite_results(document, source)]


def _suite_results(document: Mapping[str, Any], source: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if "run_results" in document:
        run_results = document["run_results"]
        if not isinstance(run_results, dict) or not run_results:
            raise ResultError(f"{source}: run_results is not a non-empty object of validation results")
        for key in sorted(run_results):
            value = run_results[key]
            if isinstance(value, dict) and "validation_result" in value:  # 0.x checkpoint
                value = value["validation_result"]
            if not isinstance(value, dict):
                raise ResultError(f"{source}: run_results[{key!r}] is not a validation result")
            yield f"run_results[{key!r}]", value
        return
    if "results" in document and "statistics" in document:
        yield "", document
        return
    if "validation_results" in document:
        raise ResultError(
            f"{source}: a describe() summary names no data asset and no time; store the suite results "
            "(result.run_results values' to_json_dict()) instead"
        )
    keys = ", ".join(sorted(document)[:8]) or "none"
    raise ResultError(
        f"{source}: not a Great Expectations validation or checkpoint result (top-level keys: {keys}; "
        "expected results+statistics or run_results)"
    )


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _record(result: Mapping[str, Any], source: str, where: str) -> ValidationRecord:
    def fail(name: str, reason: str) -> ResultError:
        return ResultError(f"{source}: {_field(where, name)}: {reason}")

    meta = result.get("meta")
    if not isinstance(meta, dict):
        raise fail("meta", "missing or not an object (it holds the batch and the time)")
    success = result.get("success")
    if not isinstance(success, bool):
        raise fail("success", f"{success!r} is not true or false")
    suite = result.get("suite_name") or meta.get("expectation_suite_name")
    if not isinstance(suite, str) or not suite:
        raise fail("suite_name", "no suite name (suite_name, or meta.expectation_suite_name in 0.x)")
    datasource, asset = _batch(meta)
    if not datasource or not asset:
        raise fail("meta.active_batch_definition", "names no datasource_name and data_asset_name")
    validated_at = _time(meta, fail)
    statistics = _statistics(result.get("statistics"), fail)
    results = result.get("results")
    if not isinstance(results, list):
        raise fail("results", "missing or not a list")
    failing = tuple(_failing(results, fail))
    run_id = meta.get("run_id")
    run_name = run_id.get("run_name") if isinstance(run_id, dict) else None
    version = meta.get("great_expectations_version")
    return ValidationRecord(
        datasource=datasource,
        asset=asset,
        suite=suite,
        validated_at=validated_at,
        success=success,
        statistics=statistics,
        expectations_total=len(results),
        failing=failing,
        run_name=run_name if isinstance(run_name, str) else None,
        gx_version=version if isinstance(version, str) else None,
        source=source + (f"#{where}" if where else ""),
    )


def _batch(meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    definition = meta.get("active_batch_definition")
    if isinstance(definition, dict):
        return _text(definition.get("datasource_name")), _text(definition.get("data_asset_name"))
    kwargs = meta.get("batch_kwargs")  # 0.x V2 (batch kwargs) API
    if isinstance(kwargs, dict):
        return _text(kwargs.get("datasource")), _text(kwargs.get("data_asset_name"))
    return None, None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(meta: Mapping[str, Any], fail: Any) -> datetime:
    """``meta.validation_time``, else the run's ``run_time``; never the file's mtime."""
    candidates: list[tuple[str, object]] = [("meta.validation_time", meta.get("validation_time"))]
    run_id = meta.get("run_id")
    if isinstance(run_id, dict):
        candidates.append(("meta.run_id.run_time", run_id.get("run_time")))
    for name, value in candidates:
        try:
            at = read_timestamp(value, name)
        except UnreadableTimestamp as exc:
            raise fail(name, str(exc)) from None
        if at is not None:
            return at
    raise fail("meta.validation_time", "no validation time (nor meta.run_id.run_time)")


def _statistics(value: object, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("statistics", "missing or not an object")
    out: dict[str, Any] = {}
    for name in _STAT_COUNTS:
        count = value.get(name)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise fail(f"statistics.{name}", f"{count!r} is not a count")
        out[name] = count
    if out["successful_expectations"] + out["unsuccessful_expectations"] != out["evaluated_expectations"]:
        raise fail("statistics", "successful + unsuccessful expectations do not add up to evaluated")
    percent = value.get("success_percent")
    if percent is not None and finite_number(percent) is None:
        raise fail("statistics.success_percent", f"{percent!r} is not a finite number")
    out["success_percent"] = percent
    return out


def _failing(results: list[Any], fail: Any) -> Iterator[dict[str, Any]]:
    for index, item in enumerate(results):
        name = f"results[{index}]"
        if not isinstance(item, dict):
            raise fail(name, "not an object")
        success = item.get("success")
        if not isinstance(success, bool):
            raise fail(f"{name}.success", f"{success!r} is not true or false")
        config = item.get("expectation_config")
        if not isinstance(config, dict):
            raise fail(f"{name}.expectation_config", "missing or not an object")
        kind = config.get("type") or config.get("expectation_type")  # 1.x / 0.x
        if not isinstance(kind, str) or not kind:
            raise fail(f"{name}.expectation_config.type", "no expectation type")
        info = item.get("exception_info")
        raised = _raised(info)
        if success and not raised:
            continue
        kwargs = config.get("kwargs")
        entry: dict[str, Any] = {
            "type": kind,
            "kwargs": {k: v for k, v in kwargs.items() if k != "batch_id"} if isinstance(kwargs, dict) else {},
            "raised_exception": raised,
        }
        if isinstance(config.get("severity"), str):
            entry["severity"] = config["severity"]
        if raised and isinstance(info, dict) and isinstance(info.get("exception_message"), str):
            entry["exception_message"] = info["exception_message"][:_MAX_EXCEPTION_CHARS]
        yield entry


def _raised(info: object) -> bool:
    """``exception_info`` is one ``{raised_exception, ...}`` object, or (metric errors) an object of them."""
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return info["raised_exception"] is True
    return any(isinstance(v, dict) and v.get("raised_exception") is True for v in info.values())
