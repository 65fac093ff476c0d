"""The ``model_monitor`` connector: Prometheus monitors, drift/quality/bias reports and SageMaker schedules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from collector.sdk import (
    CollectContext,
    ConfigurationError,
    Connector,
    Observation,
    Problem,
    Subject,
    TransientError,
    format_duration,
    redact_text,
    redact_url,
)

from .aws import ClientFactory, client_factory
from .checks import CHECKS, KIND_METRIC, KIND_OF_ASPECT, KIND_SCHEDULE, KINDS
from .prometheus import PrometheusClient, PrometheusError, Series, Window, evaluate, window_for
from .reports import MonitorReport, ReportError, parse_document, statistics_non_finite, violations_report
from .sagemaker import ScheduleState, schedule_states
from .settings import ModelMonitorSettings, Monitor, ReportSource
from .sources import ReportFile, decode_json, list_files, list_s3_files

__all__ = ["ModelMonitorConnector"]

_MONITOR_ERRORS = (PrometheusError, TransientError, ConfigurationError, ValueError)
"""What one monitor's query can fail with; each becomes that monitor's error evidence."""
_SAGEMAKER_NOT_EXECUTION_FILES = ("constraint_violations.json", "constraints.json")


def _monitor_subject(monitor: Monitor) -> Subject:
    return Subject("monitor", f"{monitor.model}/{monitor.name}" if monitor.model else monitor.name)


def _monitor_payload(monitor: Monitor, window: Window) -> dict[str, Any]:
    return {
        "monitor": monitor.name,
        "model": monitor.model,
        "query": monitor.query,
        "bound": monitor.bound.model_dump(),
        "min_coverage": monitor.min_coverage,
        "window": {
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "duration": format_duration(monitor.window),
            "step_seconds": window.step_seconds,
        },
    }


def _series_json(series: list[Series]) -> list[dict[str, Any]]:
    return [{"labels": s.labels, "values": [[ts, value] for ts, value in s.values]} for s in series]


class ModelMonitorConnector(Connector[ModelMonitorSettings]):
    """Production model monitoring evidence with pass/fail against declared bounds."""

    type = "model_monitor"
    version = "0.1.0"
    Settings = ModelMonitorSettings
    kinds = KINDS
    checks = CHECKS

    def __init__(self, settings: ModelMonitorSettings, *, clients: ClientFactory | None = None) -> None:
        super().__init__(settings)
        self._clients = clients

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        clients = self._clients or client_factory(self.settings.aws)
        yield from self._monitors(ctx)
        for source in self.settings.reports:
            yield from self._reports(source, clients, ctx)
        if self.settings.sagemaker_schedules.enabled:
            for state in schedule_states(clients, self.settings.sagemaker_schedules, ctx):
                yield from self._schedule(state, ctx.now)

    def preflight(self) -> Iterator[Problem]:
        """Each monitor's PromQL, checked against the server when it can be reached."""
        if not self.settings.monitors or self.settings.prometheus is None:
            return
        client = PrometheusClient(self.settings.prometheus)
        try:
            for monitor in self.settings.monitors:
                try:
                    objection = client.check_query(monitor.query)
                except TransientError:
                    return
                except ConfigurationError as exc:  # refused credentials: say so, not a traceback
                    yield Problem("prometheus", str(exc))
                    return
                if objection is not None:
                    yield Problem(f"monitors[{monitor.name}].query", objection)
        finally:
            client.close()

    # ---------------------------------------------------------------------------------------- monitors

    def _monitors(self, ctx: CollectContext) -> Iterator[Observation]:
        if not self.settings.monitors or self.settings.prometheus is None:
            return
        try:
            client: PrometheusClient | None = PrometheusClient(self.settings.prometheus)
            setup_error = ""
        except ConfigurationError as exc:
            client, setup_error = None, str(exc)
        try:
            for monitor in self.settings.monitors:
                ctx.raise_if_cancelled()
                yield self._monitor(monitor, client, setup_error, ctx)
        finally:
            if client is not None:
                client.close()

    def _monitor(
        self, monitor: Monitor, client: PrometheusClient | None, setup_error: str, ctx: CollectContext
    ) -> Observation:
        window = window_for(monitor, ctx.now)
        payload = _monitor_payload(monitor, window)
        try:
            if client is None:
                raise ConfigurationError(setup_error)
            series, annotations = client.query_range(monitor.query, window)
            figures = evaluate(series, monitor.bound, window)
        except _MONITOR_ERRORS as exc:
            ctx.problem(f"monitor {monitor.name}", str(exc))
            payload.update(status="error", error=redact_text(str(exc)))
        else:
            status = "ok" if figures["sample_count"] else "no_data"
            payload.update(
                status=status,
                warnings=list(annotations.warnings),
                infos=list(annotations.infos),
                series=_series_json(series),
                **figures,
            )
            if annotations.warnings:
                ctx.problem(f"monitor {monitor.name}", "Prometheus warned: " + "; ".join(annotations.warnings))
        source = redact_url(self.settings.prometheus.url) if self.settings.prometheus else ""
        return Observation(KIND_METRIC, _monitor_subject(monitor), window.end, payload, source=source)

    # ---------------------------------------------------------------------------------------- reports

    def _reports(self, source: ReportSource, clients: ClientFactory, ctx: CollectContext) -> Iterator[Observation]:
        max_bytes = self.settings.max_file_bytes
        uri = source.s3_uri
        files = list_s3_files(uri, clients, max_bytes, ctx) if uri else list_files(source.location, max_bytes, ctx)
        for file in files:
            ctx.raise_if_cancelled()
            yield from self._file_observations(file, source, ctx)
        if source.format in ("auto", "sagemaker"):
            yield from self._executions_without_violations(files, source, ctx)

    def _file_observations(self, file: ReportFile, source: ReportSource, ctx: CollectContext) -> list[Observation]:
        """All of one file's observations, or none and a problem naming the file."""
        try:
            reports = parse_document(decode_json(file.read()), file.source, source.format)
            return [self._report_observation(r, source, file, ctx) for r in reports]
        except ReportError as exc:
            ctx.problem(file.source, str(exc))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a shape the parsers did not foresee
            ctx.problem(file.source, f"unreadable report: {type(exc).__name__}: {exc}")
        return []

    def _executions_without_violations(
        self, files: list[ReportFile], source: ReportSource, ctx: CollectContext
    ) -> Iterator[Observation]:
        """A Model Monitor execution writes no constraint_violations.json when it found none; its statistics.json
        is still read, because a NaN metric breaks no threshold and so never shows up as a violation."""
        by_directory: dict[str, dict[str, ReportFile]] = defaultdict(dict)
        for file in files:
            by_directory[file.directory][file.name] = file
        for directory in sorted(by_directory):
            names = by_directory[directory]
            if "statistics.json" in names and not any(n in names for n in _SAGEMAKER_NOT_EXECUTION_FILES):
                statistics = names["statistics.json"]
                try:
                    non_finite = statistics_non_finite(decode_json(statistics.read()))
                except ReportError as exc:
                    ctx.problem(statistics.source, str(exc))
                    continue
                report = violations_report([], "quality", None)
                report.summary["non_finite_metrics"] = non_finite
                yield self._report_observation(report, source, statistics, ctx)

    def _report_observation(
        self, report: MonitorReport, source: ReportSource, file: ReportFile, ctx: CollectContext
    ) -> Observation:
        """Dated by the report's own time; by the file's only when the report carries none (the payload says
        which). A time the report carries but that cannot be read is a problem, and the checks say ``error``."""
        if report.generated_at is not None:
            observed_at, time_source = report.generated_at, "report"
        else:
            observed_at, time_source = file.modified_at, "s3_last_modified" if source.s3_uri else "file_mtime"
        if report.time_error is not None:
            ctx.problem(file.source, f"{report.time_error}; the report's age is unknown")
        subject = Subject("model", source.model) if source.model else Subject("report", file.source)
        payload = {
            "format": report.format,
            "tool_version": report.tool_version,
            "model": source.model,
            "report": file.source,
            "observed_at_source": time_source,
            **({"time_error": report.time_error} if report.time_error else {}),
            **report.summary,
        }
        return Observation(KIND_OF_ASPECT[report.aspect], subject, observed_at, payload, source=redact_url(file.source))

    # ---------------------------------------------------------------------------------------- schedules

    def _schedule(self, state: ScheduleState, now: datetime) -> Iterator[Observation]:
        arn = state.payload["schedule_arn"]
        subject = Subject("sagemaker_monitoring_schedule", arn)
        yield Observation(KIND_SCHEDULE, subject, now, state.payload, source=arn)
        if state.violations is None:
            return
        report = violations_report(state.violations, state.aspect, state.executed_at)
        payload = {
            "format": report.format,
            "schedule_name": state.payload["schedule_name"],
            "endpoint_name": state.payload["endpoint_name"],
            "monitoring_type": state.payload["monitoring_type"],
            "processing_job_arn": state.payload["last_execution"]["processing_job_arn"],
            "observed_at_source": "execution" if state.executed_at else "collection",
            **report.summary,
        }
        yield Observation(KIND_OF_ASPECT[state.aspect], subject, state.executed_at or now, payload, source=arn)
