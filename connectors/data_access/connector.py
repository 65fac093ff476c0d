"""The ``data_access`` connector: who used the designated datasets, from the CloudTrail trail's log files
(data events) and LookupEvents (management events), and an access review against the allow-lists."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.sdk import (
    AwsClients,
    CollectContext,
    Connector,
    Observation,
    Subject,
    aws_error_code,
    parse_timestamp,
)

from . import trail as trail_reads
from .checks import ACCESS_REVIEW_KIND, CHECKS, DATA_ACCESS_KIND, allowed, incomplete
from .settings import DataAccessSettings, Dataset
from .summary import Summariser, time_text

__all__ = ["DataAccessConnector", "LogFiles", "TrailState"]

LOOKUP_DELAY = timedelta(minutes=15)
"""CloudTrail makes a management event visible to LookupEvents within about 15 minutes: each lookup starts this
long before the last one ended, and the event ids of that overlap are kept in the cursor to count each once."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _client_error(exc: BaseException) -> bool:
    return bool(aws_error_code(exc))


@dataclass
class TrailState:
    name: str
    arn: str = ""
    is_logging: bool | None = None
    selectors: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def read(self, action: str, response: dict[str, Any]) -> None:
        """What GetTrailStatus or GetEventSelectors answered."""
        if action == "GetTrailStatus":
            self.is_logging = response.get("IsLogging") is True
        else:
            self.arn = str(response.get("TrailARN") or "")
            self.selectors = {
                "EventSelectors": response.get("EventSelectors") or [],
                "AdvancedEventSelectors": response.get("AdvancedEventSelectors") or [],
            }

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "arn": self.arn or None, "is_logging": self.is_logging, "error": self.error}


@dataclass
class LogFiles:
    read: int = 0
    unreadable: int = 0
    not_read: int = 0
    latest: str | None = None
    error: str | None = None
    cursor: dict[str, str] = field(default_factory=dict)


class DataAccessConnector(Connector[DataAccessSettings]):
    """Data-access evidence per designated dataset and window, from CloudTrail."""

    type = "data_access"
    version = "0.1.0"
    Settings = DataAccessSettings
    kinds = frozenset({DATA_ACCESS_KIND, ACCESS_REVIEW_KIND})
    checks = CHECKS

    def __init__(self, settings: DataAccessSettings, session: Any = None) -> None:
        super().__init__(settings)
        self._session = session

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        settings = self.settings
        cursor = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        clients = AwsClients(
            endpoint_url=settings.endpoint_url,
            retry_mode=settings.retry_mode,
            max_attempts=settings.max_attempts,
            session=self._session,
            needed_by="connector 'data_access'",
        )
        since = parse_timestamp(cursor.get("until")) or ctx.now - settings.first_window
        summariser = Summariser(
            settings.datasets,
            now=ctx.now,
            skew=settings.clock_skew_tolerance,
            key_depth=settings.key_depth,
            keys_per_principal=settings.keys_per_principal,
            dedupe_horizon=settings.dedupe_horizon,
        )
        trail = self._trail(clients, ctx)
        files = self._log_files(clients, summariser, cursor.get("files") or {}, since, ctx)
        lookups = self._management_events(clients, summariser, cursor, since, ctx)
        self._report_oddities(summariser, ctx)
        history = dict(cursor.get("last_seen") or {})
        history_since = cursor.get("history_since") or _iso(since)
        yield from self.window(summariser, trail, files, lookups, since, ctx.now, history, history_since)
        ctx.set_cursor(
            {
                "until": _iso(ctx.now),
                "files": files.cursor,
                "lookup_ids": lookups["ids"],
                "last_seen": history,
                "history_since": history_since,
            }
        )

    def window(
        self,
        summariser: Summariser,
        trail: TrailState,
        files: LogFiles,
        lookups: dict[str, Any],
        since: datetime,
        now: datetime,
        history: dict[str, Any],
        history_since: str,
    ) -> Iterator[Observation]:
        """The evidence of one window: per dataset its ``data.access`` summary and ``access.review`` (``history``,
        the last use per principal, is updated in place)."""
        settings = self.settings
        regions = list(dict.fromkeys([settings.trail.region, *settings.lookup_regions]))
        for name, summary in summariser.datasets.items():
            payload: dict[str, Any] = {
                "dataset": name,
                "window": {"start": _iso(since), "end": _iso(now)},
                "trail": trail.as_json(),
                "logging": trail_reads.coverage_of(trail.selectors, summary.dataset, trail.arn, regions)
                if trail.error is None
                else {},
                "log_files": {
                    "read": files.read,
                    "unreadable": files.unreadable,
                    "not_read": files.not_read,
                    "latest": files.latest,
                },
                "management_events": {"regions": lookups["regions"], "error": lookups["error"]},
                "events": summary.events,
                "counts": dict(summary.counts),
                "denied": summary.denied,
                "future_events": summary.future_events,
                "unknown_service_events": summary.unknown_service_events,
                "duplicates_dropped": summariser.duplicates,
                "unreadable_records": summariser.unreadable,
                "first": summary.first or None,
                "last": summary.last or None,
                "key_depth": settings.key_depth,
                "principals": [p.as_json() for _, p in sorted(summary.principals.items())],
            }
            if files.error:
                payload["log_files"]["error"] = files.error
                payload["log_files"]["unreadable"] = max(1, files.unreadable)
            subject = Subject("dataset", name)
            source = f"cloudtrail://{settings.trail.name}/{name}"
            yield Observation(kind=DATA_ACCESS_KIND, subject=subject, observed_at=now, payload=payload, source=source)
            seen = self._remember(history.get(name) or {}, payload["principals"], now)
            history[name] = seen
            review = self._review(summary.dataset, seen, history_since, incomplete(payload))
            yield Observation(kind=ACCESS_REVIEW_KIND, subject=subject, observed_at=now, payload=review, source=source)

    # -- the trail --------------------------------------------------------------------------------

    def _trail(self, clients: AwsClients, ctx: CollectContext) -> TrailState:
        settings = self.settings.trail
        state = TrailState(settings.name)
        cloudtrail = clients.client("cloudtrail", settings.region)
        calls = (
            ("GetTrailStatus", cloudtrail.get_trail_status, {"Name": settings.name}),
            ("GetEventSelectors", cloudtrail.get_event_selectors, {"TrailName": settings.name}),
        )
        for action, call, kwargs in calls:
            try:
                response = call(**kwargs)
            except Exception as exc:
                if not _client_error(exc):
                    raise
                state.error = f"cloudtrail:{action} failed ({aws_error_code(exc)}): {exc}"
                ctx.problem(f"cloudtrail://{settings.name}", state.error)
                return state
            state.read(action, response)
        return state

    # -- data events from the log files -------------------------------------------------------------

    def _log_files(
        self,
        clients: AwsClients,
        summariser: Summariser,
        after: dict[str, str],
        since: datetime,
        ctx: CollectContext,
    ) -> LogFiles:
        settings = self.settings.trail
        s3 = clients.client("s3", settings.region)
        files = LogFiles(cursor=dict(after))
        where = f"s3://{settings.bucket}/{settings.prefix + '/' if settings.prefix else ''}AWSLogs/"
        since_name = f"{since:%Y%m%dT%H%MZ}"
        budget = self.settings.max_files_per_run
        try:
            for region_prefix in trail_reads.region_prefixes(s3, settings):
                for log in trail_reads.list_log_files(
                    s3, settings.bucket, region_prefix, after.get(region_prefix), since
                ):
                    ctx.raise_if_cancelled()
                    delivered = trail_reads.log_file_time(log.key)
                    if delivered is None:
                        ctx.problem(f"s3://{settings.bucket}/{log.key}", "not a CloudTrail log file name; skipped")
                        files.cursor[region_prefix] = log.key
                        continue
                    if region_prefix not in after and delivered < since_name:  # a first read of this region
                        continue
                    if budget == 0:
                        files.not_read += 1
                        continue
                    budget -= 1
                    self._read_one(s3, log.key, summariser, files, ctx)
                    files.cursor[region_prefix] = log.key
                    files.latest = max(files.latest or delivered, delivered)
        except Exception as exc:
            if not _client_error(exc):
                raise
            files.error = f"s3 listing or reading under {where} failed ({aws_error_code(exc)}): {exc}"
            ctx.problem(where, files.error)
        if files.not_read:
            ctx.problem(where, f"{files.not_read} log file(s) beyond max_files_per_run are left for the next run")
        if files.read == 0 and files.unreadable == 0 and files.error is None:
            ctx.problem(where, f"no new CloudTrail log files since {_iso(since)}")
        return files

    def _read_one(self, s3: Any, key: str, summariser: Summariser, files: LogFiles, ctx: CollectContext) -> None:
        try:
            records = trail_reads.read_log_file(s3, self.settings.trail.bucket, key)
        except trail_reads.UnreadableLogFile as exc:
            files.unreadable += 1
            ctx.problem(f"s3://{self.settings.trail.bucket}/{key}", str(exc))
            return
        files.read += 1
        add = summariser.add
        for record in records:
            # management events are read through LookupEvents (each counted once across runs); Insights skipped
            if isinstance(record, dict) and (
                record.get("managementEvent") is True or record.get("eventCategory") in ("Management", "Insight")
            ):
                continue
            add(record)

    # -- management events ------------------------------------------------------------------------

    def _management_events(
        self, clients: AwsClients, summariser: Summariser, cursor: dict[str, Any], since: datetime, ctx: CollectContext
    ) -> dict[str, Any]:
        settings = self.settings
        if not settings.management_events:
            return {"regions": [], "error": None, "ids": {}}
        regions = list(settings.lookup_regions) or [settings.trail.region]
        previous = cursor.get("lookup_ids") or {}
        summariser.remember(previous)
        start, end = since - LOOKUP_DELAY, ctx.now
        keep_after = _iso(end - LOOKUP_DELAY)
        ids: dict[str, str] = {}
        error = None
        for region in regions:
            cloudtrail = clients.client("cloudtrail", region)
            for name in trail_reads.resource_names(settings.datasets):
                try:
                    for record in trail_reads.lookup_management_events(cloudtrail, name, start, end):
                        ctx.raise_if_cancelled()
                        summariser.add(record)
                        if isinstance(record, dict) and isinstance(record.get("eventID"), str):
                            at = time_text(record.get("eventTime"))
                            if at is not None and at >= keep_after:
                                ids[record["eventID"]] = at
                except Exception as exc:
                    if not _client_error(exc):
                        raise
                    error = f"cloudtrail:LookupEvents in {region} failed ({aws_error_code(exc)}): {exc}"
                    ctx.problem(f"cloudtrail://{region}/lookup-events/{name}", error)
        return {"regions": regions, "error": error, "ids": ids}

    @staticmethod
    def _report_oddities(summariser: Summariser, ctx: CollectContext) -> None:
        for source, count in sorted(summariser.unknown_services.items()):
            ctx.problem(
                f"cloudtrail:{source}",
                f"{count} event(s) on a dataset from a service this connector does not classify; counted as 'other'",
            )
        for name, count in sorted(summariser.unknown_names.items()):
            ctx.problem(
                f"cloudtrail:{name}",
                f"{count} event(s) with an event name this connector does not know; counted as 'other'",
            )
        if summariser.unreadable:
            ctx.problem(
                "cloudtrail",
                f"{summariser.unreadable} record(s) without a readable eventTime, eventName or "
                "eventSource; the windows are incomplete",
            )
        for name, summary in summariser.datasets.items():
            if summary.future_events:
                ctx.problem(
                    f"dataset:{name}",
                    f"{summary.future_events} event(s) dated after the collection time "
                    "(beyond the clock skew tolerance); counted, but not as first/last use",
                )

    # -- access review ------------------------------------------------------------------------------

    def _remember(self, seen: dict[str, Any], principals: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        """Last use per principal, kept in the cursor for the review period."""
        out = dict(seen)
        for principal in principals:
            if not any(principal["counts"].values()) or not principal["last"]:
                continue
            old = out.get(principal["principal"]) or {}
            arns = sorted(set(old.get("session_arns") or []) | set(principal["session_arns"]))[:20]
            out[principal["principal"]] = {
                "last": max(old.get("last") or "", principal["last"]),
                "human": principal["human"],
                "session_arns": arns,
            }
        oldest = _iso(now - self.settings.review_period)
        return {key: value for key, value in sorted(out.items()) if value["last"] >= oldest}

    def _review(self, dataset: Dataset, seen: dict[str, Any], history_since: str, reason: str | None) -> dict[str, Any]:
        entries = [(e, "allowed_principal") for e in dataset.allowed_principals]
        entries += [(e, "human_reader") for e in dataset.human_readers]
        allowed_rows = []
        for entry, role in entries:
            users = [
                key
                for key, value in seen.items()
                if allowed({"principal": key, "session_arns": value["session_arns"]}, [entry])
            ]
            allowed_rows.append(
                {
                    "entry": entry,
                    "as": role,
                    "used_by": users,
                    "last_used": max((seen[u]["last"] for u in users), default=None),
                }
            )
        patterns = dataset.allowed_principals + dataset.human_readers
        return {
            "dataset": dataset.name,
            "review_period_days": self.settings.review_period.days,
            "history_since": history_since,
            "allowed": allowed_rows,
            "seen": [
                {
                    "principal": key,
                    "human": value["human"],
                    "last_seen": value["last"],
                    "allowed": allowed({"principal": key, "session_arns": value["session_arns"]}, patterns),
                }
                for key, value in seen.items()
            ],
            "error": reason,
        }
