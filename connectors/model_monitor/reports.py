"""Drift, data-quality and bias reports: Evidently, SageMaker Model Monitor and SageMaker Clarify.

Each parser turns one JSON document into :class:`MonitorReport` values, one per aspect it speaks to
(``drift``, ``quality``, ``bias``). Known files that are not results (baselines, statistics, project
metadata) parse to nothing; any other shape raises :class:`ReportError` saying what was expected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from collector.sdk import finite_number, is_non_finite, non_finite_text, parse_timestamp

__all__ = [
    "ASPECTS",
    "Aspect",
    "MonitorReport",
    "ReportError",
    "is_baseline",
    "parse_document",
    "statistics_non_finite",
    "violations_report",
]

Aspect = Literal["drift", "quality", "bias"]
ASPECTS: tuple[Aspect, ...] = ("drift", "quality", "bias")

EXPECTED = (
    "an Evidently Report.json()/TestSuite.json(), an Evidently workspace snapshot or 0.7 snapshot, "
    "a SageMaker Model Monitor constraint_violations.json, or a SageMaker Clarify bias analysis.json"
)
_FAILING_TEST_STATUS = "FAIL"
_ERRORED_TEST_STATUS = "ERROR"
_GO_ZERO_TIME = "0001-01-01"
_MAX_LISTED = 200
"""Longer lists of failing tests, drifted columns or violations are cut (the counts stay exact)."""


class ReportError(ValueError):
    """This document is not a report this connector reads; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class MonitorReport:
    aspect: Aspect
    format: str
    tool_version: str | None
    generated_at: datetime | None
    summary: dict[str, Any]
    time_error: str | None = None
    """Why the report's own time could not be read (it carries one, but not a readable one)."""


def _number(value: object) -> float | None:
    """A finite float, or ``None`` for anything else (null, ``"NaN"``, NaN, strings)."""
    return finite_number(value)


def _report_time(document: dict[str, Any], field: str) -> tuple[datetime | None, str | None]:
    """The report's time, or why it cannot be read; ``(None, None)`` only when the report carries none."""
    value = document.get(field)
    if value is None or (isinstance(value, str) and (not value.strip() or value.startswith(_GO_ZERO_TIME))):
        return None, None
    parsed = parse_timestamp(value)
    if parsed is None:
        return None, f"field {field} = {value!r} is not a timestamp"
    return parsed, None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _listed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items[:_MAX_LISTED]


# ------------------------------------------------------------------------------------------- Evidently tests


def _test_entry(test: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": _text(test.get("name")) or "",
        "status": str(test.get("status", "")).upper(),
        "group": _text(test.get("group")),
        "description": _text(test.get("description")) or "",
    }


def _tests_summary(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Failing tests are findings; errored tests (Evidently could not compute them) are not results at all."""
    entries = [_test_entry(t) for t in tests]
    failing = [e for e in entries if e["status"] == _FAILING_TEST_STATUS]
    errored = [e for e in entries if e["status"] == _ERRORED_TEST_STATUS]
    return {
        "test_count": len(entries),
        "tests_by_status": dict(sorted(Counter(e["status"] for e in entries).items())),
        "failing_test_count": len(failing),
        "failing_tests": _listed(failing),
        "errored_test_count": len(errored),
        "errored_tests": _listed(errored),
    }


def _is_drift_test(test: dict[str, Any]) -> bool:
    group = str(test.get("group") or "").lower()
    if group:
        return group == "data_drift"
    kinds = " ".join(str(_obj(test.get(k)).get("type", "")) for k in ("metric_config", "test_config"))
    return "drift" in kinds.lower() or "drift" in str(test.get("name", "")).lower()


def _tests_reports(
    tests: list[Any], fmt: str, version: str | None, at: datetime | None, time_error: str | None
) -> list[MonitorReport]:
    valid = [t for t in tests if isinstance(t, dict)]
    if len(valid) != len(tests):
        raise ReportError("Evidently tests[] must hold objects")
    drift = [t for t in valid if _is_drift_test(t)]
    quality = [t for t in valid if not _is_drift_test(t)]
    out = []
    if drift:
        summary = {"dataset_drift": None, **_tests_summary(drift)}
        out.append(MonitorReport("drift", fmt, version, at, summary, time_error))
    if quality:
        out.append(MonitorReport("quality", fmt, version, at, _tests_summary(quality), time_error))
    return out


def _suite_verdict(reports: list[MonitorReport], summary: Any) -> None:
    """TestSuite.json's own ``summary.all_passed``: a suite that says it did not pass never reads as passing,
    even when none of the tests listed failed (statuses this connector does not know, a cut list)."""
    judged = [r for r in reports if "test_count" in r.summary]
    listed = any(r.summary["failing_test_count"] or r.summary["errored_test_count"] for r in judged)
    if _obj(summary).get("all_passed") is False and not listed:
        for report in judged:
            report.summary["suite_all_passed"] = False


# ------------------------------------------------------------------------------------------- Evidently drift


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_COLUMN_NUMBERS = ("drift_score", "stattest_threshold")
_DATASET_NUMBERS = ("drift_share", "share_of_drifted_columns", "number_of_columns", "number_of_drifted_columns")


def _column(name: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "column": name,
        "drift_detected": result.get("drift_detected") is True,
        "stattest": _text(result.get("stattest_name")),
        "threshold": _number(result.get("stattest_threshold")),
        "score": _number(result.get("drift_score")),
    }


def _non_finite(result: dict[str, Any], keys: tuple[str, ...], prefix: str = "") -> list[str]:
    """Where the report wrote NaN or ±Inf instead of a number the drift verdict rests on."""
    return [f"{prefix}{key} = {non_finite_text(result[key])}" for key in keys if is_non_finite(result.get(key))]


def _count(value: object, default: int) -> int | None:
    number = finite_number(value) if value is not None else float(default)
    return None if number is None else int(number)


@dataclass
class _DriftFindings:
    dataset: dict[str, Any] | None = None
    columns: dict[str, dict[str, Any]] | None = None
    non_finite: list[str] = field(default_factory=list)

    def add(self, result: dict[str, Any]) -> None:
        """Dataset verdicts (``dataset_drift``), tables (``drift_by_columns``) and single columns."""
        if isinstance(result.get("drift_by_columns"), dict):
            for name, column in result["drift_by_columns"].items():
                self._column(str(name), _obj(column))
        elif "column_name" in result and "drift_detected" in result:
            self._column(str(result["column_name"]), result)
        if isinstance(result.get("dataset_drift"), bool) and self.dataset is None:
            self.dataset = result
            self.non_finite += _non_finite(result, _DATASET_NUMBERS)

    def _column(self, name: str, result: dict[str, Any]) -> None:
        self.columns = self.columns or {}
        if name not in self.columns:
            self.columns[name] = _column(name, result)
            self.non_finite += _non_finite(result, _COLUMN_NUMBERS, f"{name}.")

    def summary(self) -> dict[str, Any] | None:
        if self.dataset is None and self.columns is None:
            return None
        columns = sorted((self.columns or {}).values(), key=lambda c: c["column"])
        drifted = [c for c in columns if c["drift_detected"]]
        dataset = self.dataset or {}
        verdict = dataset.get("dataset_drift")
        return {
            "dataset_drift": verdict if isinstance(verdict, bool) else bool(drifted),
            "dataset_drift_source": "report" if isinstance(verdict, bool) else "columns",
            "drift_share_threshold": _number(dataset.get("drift_share")),
            "number_of_columns": _count(dataset.get("number_of_columns"), len(columns)),
            "number_of_drifted_columns": _count(dataset.get("number_of_drifted_columns"), len(drifted)),
            "share_of_drifted_columns": _number(dataset.get("share_of_drifted_columns")),
            "drifted_columns": _listed(drifted),
            "non_finite_count": len(self.non_finite),
            "non_finite": self.non_finite[:_MAX_LISTED],
        }


def _drift_reports(
    results: Iterable[dict[str, Any]], fmt: str, version: str | None, at: datetime | None, time_error: str | None
) -> list[MonitorReport]:
    findings = _DriftFindings()
    for result in results:
        findings.add(result)
    summary = findings.summary()
    return [MonitorReport("drift", fmt, version, at, summary, time_error)] if summary else []


def _merge_drift(reports: list[MonitorReport]) -> list[MonitorReport]:
    """A report with both drift metrics and drift tests becomes one drift report carrying both."""
    drift = [r for r in reports if r.aspect == "drift"]
    if len(drift) < 2:
        return reports
    summary: dict[str, Any] = {}
    for report in drift:
        summary.update({k: v for k, v in report.summary.items() if v is not None or k not in summary})
    first = drift[0]
    merged = MonitorReport("drift", first.format, first.tool_version, first.generated_at, summary, first.time_error)
    return [merged, *(r for r in reports if r.aspect != "drift")]


def _nothing_to_judge(what: str) -> ReportError:
    return ReportError(
        f"{what} has no drift results or tests to judge "
        "(expected DatasetDriftMetric, DataDriftTable or ColumnDriftMetric results, or tests)"
    )


def _evidently_legacy(document: dict[str, Any]) -> list[MonitorReport]:
    version = _text(document.get("version"))
    at, time_error = _report_time(document, "timestamp")
    reports: list[MonitorReport] = []
    if isinstance(document.get("metrics"), list):
        results = (_obj(_obj(m).get("result")) for m in document["metrics"])
        reports += _drift_reports(results, "evidently_report", version, at, time_error)
    if isinstance(document.get("tests"), list):
        reports += _tests_reports(document["tests"], "evidently_test_suite", version, at, time_error)
        _suite_verdict(reports, document.get("summary"))
    if not reports:
        raise _nothing_to_judge("this Evidently report")
    return _merge_drift(reports)


def _evidently_snapshot(document: dict[str, Any]) -> list[MonitorReport]:
    suite = document["suite"]
    at, time_error = _report_time(document, "timestamp")
    results = (_obj(r) for r in suite.get("metric_results") or [])
    reports = _drift_reports(results, "evidently_snapshot", None, at, time_error)
    reports += _tests_reports(suite.get("test_results") or [], "evidently_snapshot", None, at, time_error)
    if not reports:
        raise _nothing_to_judge("this Evidently workspace snapshot")
    for report in reports:
        report.summary["snapshot"] = {"id": _text(document.get("id")), "tags": document.get("tags") or []}
    return _merge_drift(reports)


def _evidently_v2(document: dict[str, Any]) -> list[MonitorReport]:
    """Evidently 0.7 ``snapshot.json()``: only its tests carry a verdict (metric values depend on the method)."""
    at, time_error = _report_time(document, "timestamp")
    reports = _tests_reports(document.get("tests") or [], "evidently_v2_snapshot", None, at, time_error)
    if not reports:
        raise _nothing_to_judge("this Evidently 0.7 snapshot (only tests are judged)")
    return reports


def _is_evidently_v2(document: dict[str, Any]) -> bool:
    metrics = document.get("metrics")
    return isinstance(metrics, list) and any(isinstance(m, dict) and "metric_name" in m for m in metrics)


# ------------------------------------------------------------------------------------------- SageMaker


_CHECK_ASPECT: dict[str, Aspect] = {
    "bias_drift_check": "bias",
    "feature_attribution_drift_check": "drift",
    "baseline_drift_check": "drift",
}


def _violation(raw: Any, index: int) -> dict[str, Any]:
    item = _obj(raw)
    check = _text(item.get("constraint_check_type"))
    if check is None:
        raise ReportError(f"violations[{index}] has no constraint_check_type")
    return {
        "feature_name": _text(item.get("feature_name")),
        "metric_name": _text(item.get("metric_name")),
        "label": _text(item.get("label")),
        "constraint_check_type": check,
        "description": (_text(item.get("description")) or "").strip(),
    }


def violations_report(violations: list[dict[str, Any]], aspect: Aspect, at: datetime | None) -> MonitorReport:
    return MonitorReport(
        aspect,
        "sagemaker_constraint_violations",
        None,
        at,
        {
            "violation_count": len(violations),
            "violations_by_check": dict(sorted(Counter(v["constraint_check_type"] for v in violations).items())),
            "violations": _listed(violations),
        },
    )


def _sagemaker_violations(document: dict[str, Any]) -> list[MonitorReport]:
    raw = document["violations"]
    if not isinstance(raw, list):
        raise ReportError("constraint_violations.json: violations must be a list")
    violations = [_violation(v, i) for i, v in enumerate(raw)]
    by_aspect: dict[Aspect, list[dict[str, Any]]] = {}
    for v in violations:
        by_aspect.setdefault(_CHECK_ASPECT.get(v["constraint_check_type"], "quality"), []).append(v)
    if not by_aspect:
        by_aspect["quality"] = []
    return [violations_report(items, aspect, None) for aspect, items in sorted(by_aspect.items())]


_QUALITY_METRIC_GROUPS = ("regression_metrics", "binary_classification_metrics", "multiclass_classification_metrics")


def _is_model_quality_statistics(document: dict[str, Any]) -> bool:
    """A model-quality ``statistics.json`` (``*_metrics.{metric}.{value, standard_deviation}``), with or without
    its ``version``."""
    return any(isinstance(document.get(group), dict) for group in _QUALITY_METRIC_GROUPS) and not _is_clarify(document)


def statistics_non_finite(document: Any) -> list[str]:
    """The model-quality metrics of a ``statistics.json`` whose value is NaN or ±Inf: not measurements, whatever
    the constraint check made of them. ``standard_deviation`` is ``"NaN"`` as a rule and is not judged."""
    found = []
    for group in _QUALITY_METRIC_GROUPS:
        for name, metric in sorted(_obj(_obj(document).get(group)).items()):
            value = _obj(metric).get("value")
            if is_non_finite(value):
                found.append(f"{group}.{name}.value = {non_finite_text(value)}")
    return found


def is_baseline(document: Any) -> bool:
    """SageMaker baseline ``constraints.json`` or ``statistics.json``: inputs to monitoring, not results."""
    if not isinstance(document, dict) or "violations" in document:
        return False
    if _is_model_quality_statistics(document):
        return True
    keys = set(document)
    if "version" in keys and keys & {"features", "dataset", "monitoring_config"}:
        return True
    return (
        any(k.endswith(("_constraints", "_metrics")) for k in keys) and "version" in keys and not _is_clarify(document)
    )


# ------------------------------------------------------------------------------------------- Clarify

_CLARIFY_STAGES = ("pre_training_bias_metrics", "post_training_bias_metrics")


def _is_clarify(document: dict[str, Any]) -> bool:
    return any(isinstance(document.get(stage), dict) for stage in _CLARIFY_STAGES)


def _clarify_metric(raw: Any) -> dict[str, Any]:
    item = _obj(raw)
    name = _text(item.get("name"))
    if name is None:
        raise ReportError("a Clarify bias metric has no name")
    value = item.get("value")
    return {
        "name": name,
        "value": _number(value),
        "non_finite": f"value {non_finite_text(value)}" if is_non_finite(value) else None,
        "error": _text(item.get("error")),
        "description": _text(item.get("description")) or "",
    }


def _clarify(document: dict[str, Any]) -> list[MonitorReport]:
    groups = []
    for stage_key in _CLARIFY_STAGES:
        stage = document.get(stage_key)
        if not isinstance(stage, dict):
            continue
        facets = stage.get("facets")
        if not isinstance(facets, dict):
            raise ReportError(f"Clarify analysis.json: {stage_key}.facets must be an object of facet -> list")
        for facet, entries in sorted(facets.items()):
            for entry in entries if isinstance(entries, list) else []:
                groups.append(
                    {
                        "stage": stage_key.removesuffix("_bias_metrics"),
                        "facet": str(facet),
                        "facet_value": str(_obj(entry).get("value_or_threshold", "")),
                        "label_value": str(stage.get("label_value_or_threshold", "")),
                        "metrics": [_clarify_metric(m) for m in _obj(entry).get("metrics") or []],
                    }
                )
    summary = {"label": _first_label(document), "facet_groups": groups}
    return [MonitorReport("bias", "clarify_bias_analysis", _text(document.get("version")), None, summary)]


def _first_label(document: dict[str, Any]) -> str | None:
    for stage in _CLARIFY_STAGES:
        label = _obj(document.get(stage)).get("label")
        if isinstance(label, str):
            return label
    return None


# ------------------------------------------------------------------------------------------- dispatch


def _is_evidently_project(document: dict[str, Any]) -> bool:
    return "dashboard" in document and "name" in document and "suite" not in document


def parse_document(document: Any, source: str, format: str = "auto") -> list[MonitorReport]:
    """Detect the shape by its keys (``format`` narrows which shapes are acceptable)."""
    if not isinstance(document, dict):
        raise ReportError(f"top level is a JSON {type(document).__name__}; expected an object: {EXPECTED}")
    detected, parse = _detect(document)
    if detected is None or parse is None:
        if is_baseline(document) or _is_evidently_project(document):
            return []
        keys = ", ".join(sorted(document)[:8]) or "none"
        raise ReportError(f"unknown report shape (top-level keys: {keys}); expected {EXPECTED}")
    if format not in ("auto", detected) and not (format == "sagemaker" and detected == "clarify"):
        raise ReportError(f"this is a {detected} report but the source is configured as format {format}")
    return parse(document)


def _detect(document: dict[str, Any]) -> tuple[str | None, Callable[[dict[str, Any]], list[MonitorReport]] | None]:
    if isinstance(document.get("suite"), dict):
        return "evidently", _evidently_snapshot
    if _is_evidently_v2(document):
        return "evidently", _evidently_v2
    if isinstance(document.get("metrics"), list) or isinstance(document.get("tests"), list):
        return "evidently", _evidently_legacy
    if "violations" in document:
        return "sagemaker", _sagemaker_violations
    if _is_clarify(document):
        return "clarify", _clarify
    return None, None
