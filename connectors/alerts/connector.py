"""The ``alerts`` connector: the alert log of monitored models, as evidence.

Prometheus keeps the history of every alert as the ``ALERTS`` series; a range query over the window gives the
episodes (start, end, labels). Alertmanager's API v2 gives the silences (who acknowledged what, from when to
when) and the current state of each alert. One observation per run holds the episodes and the silences.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from collector.sdk import (
    CollectContext,
    ConfigurationError,
    Connector,
    Observation,
    Subject,
    TransientError,
    call_with_retry,
    format_duration,
    redact_text,
    redact_url,
    secret_from,
)

from .checks import CHECKS, KIND_ALERT_LOG, KINDS
from .episodes import Episode, Silence, acknowledge, episodes_from, silence_from
from .settings import AlertsSettings

__all__ = ["AlertsConnector", "SourceError"]


class SourceError(Exception):
    """A server answered with something that is not what its API promises."""


class _Http:
    def __init__(self, settings: AlertsSettings) -> None:
        self.settings = settings
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        token = secret_from(settings.bearer_token, settings.bearer_token_env, "bearer_token")
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = settings.tls_verify

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, params: dict[str, str] | None = None) -> Any:
        return call_with_retry(self._get, url, params, attempts=self.settings.attempts)

    def _get(self, url: str, params: dict[str, str] | None) -> Any:
        shown = redact_url(url)
        try:
            response = self.session.get(url, params=params, timeout=self.settings.timeout.total_seconds())
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"{shown} unreachable: {redact_text(f'{type(exc).__name__}: {exc}')}") from exc
        if response.status_code in (401, 403):
            raise ConfigurationError(f"{shown} refused the credentials (HTTP {response.status_code})")
        if response.status_code >= 500:
            raise TransientError(f"{shown} answered HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{shown} answered HTTP {response.status_code} with a body that is not JSON") from None
        if response.status_code != 200:
            raise SourceError(f"{shown} answered HTTP {response.status_code}: {str(body)[:200]}")
        return body


def _floor(now: datetime, step: float) -> datetime:
    return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, UTC)


def _range_series(body: Any) -> list[tuple[dict[str, str], list[float]]]:
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise SourceError(f"Prometheus query failed: {error or 'not a Prometheus API envelope'}")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise SourceError("Prometheus answered something other than a range vector (resultType matrix)")
    out = []
    for item in data.get("result") or []:
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        out.append((labels, [float(ts) for ts, _ in item.get("values") or []]))
    return out


def _episode_json(ep: Episode, model: str | None, window_end: datetime, am_state: str | None) -> dict[str, Any]:
    return {
        "labels": dict(sorted(ep.labels.items())),
        "model": model,
        "start": ep.start.isoformat(),
        "end": None if ep.end is None else ep.end.isoformat(),
        "still_firing": ep.end is None,
        "began_before_window": ep.began_before_window,
        "firing_seconds": round(ep.firing_seconds(window_end), 3),
        "acknowledged": ep.acknowledged_at is not None,
        "acknowledged_at": None if ep.acknowledged_at is None else ep.acknowledged_at.isoformat(),
        "silences": list(ep.silences),
        "unacknowledged_seconds": round(ep.unacknowledged_seconds(window_end), 3),
        "alertmanager_state": am_state,
    }


class AlertsConnector(Connector[AlertsSettings]):
    """Alert episodes of monitored models with their acknowledgement (Prometheus ALERTS, Alertmanager silences)."""

    type = "alerts"
    version = "0.1.0"
    Settings = AlertsSettings
    kinds = KINDS
    checks = CHECKS

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        s = self.settings
        step = s.step.total_seconds()
        end = _floor(ctx.now, step)
        start = end - s.window
        payload: dict[str, Any] = {
            "prometheus_url": redact_url(s.prometheus_url),
            "alertmanager_url": None if s.alertmanager_url is None else redact_url(s.alertmanager_url),
            "query": s.query,
            "model_label": s.model_label,
            "models": sorted(s.models),
            "max_unacknowledged_seconds": s.max_unacknowledged.total_seconds(),
            "window": {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "duration": format_duration(s.window),
                "step_seconds": step,
            },
        }
        try:
            http = _Http(s)
        except ConfigurationError as exc:
            ctx.problem("alerts", str(exc))
            payload.update(status="error", error=str(exc))
        else:
            try:
                payload.update(self._log(http, start, end, step, max(ctx.now, end)))
                payload["status"] = "ok"
            except (TransientError, ConfigurationError, SourceError, ValueError, KeyError, TypeError) as exc:
                message = redact_text(str(exc))
                ctx.problem("alerts", message)
                payload.update(status="error", error=message)
            finally:
                http.close()
        subject = Subject("alert_log", redact_url(s.prometheus_url))
        yield Observation(KIND_ALERT_LOG, subject, end, payload, source=redact_url(s.prometheus_url))

    def _log(self, http: _Http, start: datetime, end: datetime, step: float, now: datetime) -> dict[str, Any]:
        """Episodes over ``start..end``; one still firing at ``end`` is judged up to ``now`` (the collection time),
        so a silence set between the last evaluation step and the collection counts."""
        s = self.settings
        body = http.get(
            s.prometheus_url.rstrip("/") + "/api/v1/query_range",
            {
                "query": s.query,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step:g}",
            },
        )
        episodes = episodes_from(_range_series(body), step, start, end)
        silences: list[Silence] = []
        states: dict[tuple[tuple[str, str], ...], str] = {}
        if s.alertmanager_url is not None:
            base = s.alertmanager_url.rstrip("/")
            raw_silences = http.get(base + "/api/v2/silences")
            if not isinstance(raw_silences, list):
                raise SourceError("Alertmanager /api/v2/silences did not answer a list")
            silences = [silence_from(item) for item in raw_silences]
            alerts = http.get(base + "/api/v2/alerts")
            if not isinstance(alerts, list):
                raise SourceError("Alertmanager /api/v2/alerts did not answer a list")
            for alert in alerts:
                labels = tuple(sorted((str(k), str(v)) for k, v in (alert.get("labels") or {}).items()))
                states[labels] = str((alert.get("status") or {}).get("state", ""))
        episodes = acknowledge(episodes, silences, now)
        monitored: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        for ep in episodes:
            model = ep.labels.get(s.model_label)
            state = states.get(tuple(sorted(ep.labels.items())))
            item = _episode_json(ep, model, now, state)
            watched = model is not None and (not s.models or model in s.models)
            (monitored if watched else others).append(item)
        monitored.sort(key=lambda e: (-e["unacknowledged_seconds"], e["start"]))
        others.sort(key=lambda e: (-e["firing_seconds"], e["start"]))
        return {
            "episode_count": len(episodes),
            "monitored_episode_count": len(monitored),
            "acknowledged_count": len([e for e in monitored if e["acknowledged"]]),
            "monitored_episodes": monitored[: s.max_episodes],
            "other_episodes": others[: s.max_episodes],
            "silences": [x.as_json() for x in sorted(silences, key=lambda x: (x.starts_at, x.id))][: s.max_episodes],
            "alertmanager_alert_count": len(states),
        }
