"""Prometheus monitors: ``/api/v1/query_range`` over a window, judged against a bound per evaluation step."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from collector.sdk import ConfigurationError, TransientError, call_with_retry, redact_text, redact_url, secret_from

from .settings import Bound, Monitor, PrometheusSettings

__all__ = [
    "MAX_POINTS_PER_QUERY",
    "Annotations",
    "PrometheusClient",
    "PrometheusError",
    "Series",
    "Window",
    "evaluate",
    "parse_range_response",
    "read_envelope",
    "window_for",
]

MAX_POINTS_PER_QUERY = 11_000
"""Prometheus rejects a range query with more points per series than this."""


class PrometheusError(Exception):
    """The server could not answer a query: unreachable, ``status: error``, or an unreadable body."""


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    step: timedelta

    @property
    def step_seconds(self) -> float:
        return self.step.total_seconds()

    @property
    def steps(self) -> int:
        return int((self.end - self.start) / self.step) + 1

    def chunks(self) -> list[Window]:
        """Sub-windows of at most :data:`MAX_POINTS_PER_QUERY` steps that tile this one without overlap."""
        out = []
        first = 0
        while first < self.steps:
            last = min(first + MAX_POINTS_PER_QUERY, self.steps) - 1
            out.append(Window(self.start + first * self.step, self.start + last * self.step, self.step))
            first = last + 1
        return out


def window_for(monitor: Monitor, now: datetime) -> Window:
    """The window ending at ``now`` floored to the step, so runs within one step ask the same question."""
    step_seconds = monitor.step.total_seconds()
    end = datetime.fromtimestamp(math.floor(now.timestamp() / step_seconds) * step_seconds, UTC)
    return Window(end - monitor.window, end, monitor.step)


@dataclass(frozen=True, slots=True)
class Annotations:
    """What the server said beside the data: ``warnings`` (the answer may be partial or wrong, e.g. a remote
    read failed) and ``infos`` (PromQL's remarks on the query itself)."""

    warnings: tuple[str, ...] = ()
    infos: tuple[str, ...] = ()

    def __add__(self, other: Annotations) -> Annotations:
        return Annotations(
            tuple(dict.fromkeys(self.warnings + other.warnings)), tuple(dict.fromkeys(self.infos + other.infos))
        )

    def __bool__(self) -> bool:
        return bool(self.warnings or self.infos)


@dataclass
class Series:
    labels: dict[str, str]
    values: list[tuple[float, str]] = field(default_factory=list)


class PrometheusClient:
    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.base_url = settings.url.rstrip("/")
        self.display_url = redact_url(self.base_url)
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        password = secret_from(settings.password, settings.password_env, "password")
        if settings.username is not None and password is not None:
            self.session.auth = (settings.username, password)
        token = secret_from(settings.bearer_token, settings.bearer_token_env, "bearer_token")
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = settings.ca_file or settings.tls_verify

    def close(self) -> None:
        self.session.close()

    def query_range(self, query: str, window: Window) -> tuple[list[Series], Annotations]:
        """Every series over the window (chunked), merged by label set; and the server's warnings and infos."""
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        annotations = Annotations()
        for chunk in window.chunks():
            data, chunk_annotations = self._query_chunk(query, chunk)
            annotations += chunk_annotations
            for series in _matrix(data):
                key = tuple(sorted(series.labels.items()))
                merged.setdefault(key, Series(series.labels)).values.extend(series.values)
        return [merged[key] for key in sorted(merged)], annotations

    def check_query(self, query: str) -> str | None:
        """The server's objection to ``query`` (e.g. a PromQL syntax error), or None; raises TransientError when
        the server cannot be reached."""
        try:
            self._post("/api/v1/query", {"query": query})
        except PrometheusError as exc:
            return str(exc)
        return None

    def _query_chunk(self, query: str, window: Window) -> tuple[Any, Annotations]:
        form = {
            "query": query,
            "start": _epoch(window.start),
            "end": _epoch(window.end),
            "step": f"{window.step_seconds:g}",
        }
        return call_with_retry(self._post, "/api/v1/query_range", form, attempts=self.settings.attempts)

    def _post(self, path: str, form: dict[str, str]) -> tuple[Any, Annotations]:
        url = self.base_url + path
        try:
            response = self.session.post(url, data=form, timeout=self.settings.timeout.total_seconds())
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}")
            raise TransientError(f"Prometheus at {self.display_url} unreachable: {reason}") from exc
        except requests.RequestException as exc:
            reason = redact_text(f"{type(exc).__name__}: {exc}")
            raise PrometheusError(f"request to {self.display_url}{path} failed: {reason}") from exc
        return _envelope(response)


def _epoch(value: datetime) -> str:
    return f"{value.timestamp():.3f}"


def _envelope(response: requests.Response) -> tuple[Any, Annotations]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return read_envelope(response.status_code, body, response.text)


def read_envelope(status: int, body: Any, text: str = "") -> tuple[Any, Annotations]:
    """The ``data`` and annotations of a success envelope; an error envelope or non-JSON body raises with the
    server's words."""
    if not isinstance(body, dict) or "status" not in body:
        shown = text[:200].strip()
        reason = f"HTTP {status} with a body that is not a Prometheus API envelope: {shown!r}"
        if status >= 500:
            raise TransientError(reason)
        if status in (401, 403):
            raise ConfigurationError(f"Prometheus refused the credentials (HTTP {status}): {shown!r}")
        raise PrometheusError(reason)
    if body["status"] != "success":
        reason = f"{body.get('errorType', 'error')}: {body.get('error', 'no message')} (HTTP {status})"
        if status == 503 or body.get("errorType") in ("timeout", "unavailable"):
            raise TransientError(reason)
        raise PrometheusError(reason)
    annotations = Annotations(_texts(body.get("warnings")), _texts(body.get("infos")))
    return body.get("data"), annotations


def _texts(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value] if value else []
    return tuple(dict.fromkeys(str(item) for item in items))


def parse_range_response(body: Any, status: int = 200) -> tuple[list[Series], Annotations]:
    """A recorded ``/api/v1/query_range`` response body, as the client would read it."""
    data, annotations = read_envelope(status, body)
    return _matrix(data), annotations


def _matrix(data: Any) -> list[Series]:
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        found = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise PrometheusError(f"expected a range vector (resultType matrix), got {found!r}")
    out = []
    for item in data.get("result") or []:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        if item.get("histograms") and not item.get("values"):
            raise PrometheusError(
                f"series {labels or '{}'} holds native histograms, which have no single value to bound; "
                "query a float series such as histogram_quantile(0.99, ...)"
            )
        values = [(float(ts), str(value)) for ts, value in item.get("values") or []]
        out.append(Series(labels, values))
    return out


def _sample_value(text: str) -> float:
    """Prometheus writes floats as strings, including ``NaN``, ``+Inf`` and ``-Inf``."""
    try:
        return float(text)
    except ValueError:
        raise PrometheusError(f"sample value {text!r} is not a number") from None


def _step_index(timestamp: float, window: Window) -> int | None:
    offset = (timestamp - window.start.timestamp()) / window.step_seconds
    index = round(offset)
    if abs(offset - index) > 1e-6 or not 0 <= index < window.steps:
        return None
    return index


def evaluate(series: Iterable[Series], bound: Bound, window: Window) -> dict[str, Any]:
    """Sample count, worst value and the share of steps where data existed and every series was within bounds.

    Only samples on one of the window's evaluation steps are judged; others are counted as outside the window.
    A step with no finite sample counts against the share: a gap, NaN or ±Inf is not evidence of health.
    """
    step_ok: dict[int, bool] = {}
    measured: set[int] = set()
    sample_count = outside = 0
    non_finite: Counter[str] = Counter()
    worst: tuple[float, bool, str] | None = None
    for one in series:
        for timestamp, text in one.values:
            index = _step_index(timestamp, window)
            if index is None:
                outside += 1
                continue
            value = _sample_value(text)
            sample_count += 1
            if math.isfinite(value):
                measured.add(index)
            else:
                non_finite["NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"] += 1
            rank = (bound.margin(value), math.isnan(value), text)  # an infinite value outranks a NaN
            if worst is None or rank[:2] < worst[:2]:
                worst = rank
            step_ok[index] = step_ok.get(index, True) and bound.contains(value)
    within = sum(step_ok.values())
    return {
        "sample_count": sample_count,
        "samples_outside_window": outside,
        "nan_count": non_finite["NaN"],
        "non_finite_count": sum(non_finite.values()),
        "non_finite_values": dict(sorted(non_finite.items())),
        "steps_expected": window.steps,
        "steps_with_data": len(measured),
        "steps_within_bounds": within,
        "share_within_bounds": round(within / window.steps, 6),
        "worst_value": worst[2] if worst else None,
    }
