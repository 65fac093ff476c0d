"""The ``data_validation`` connector: Great Expectations results on disk -> one ``data.validation`` observation per
(datasource, asset, suite), holding its latest validation; an expected asset with none is reported missing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from collector.sdk import CollectContext, ConfigurationError, Connector, Observation, Subject, format_duration

from .checks import CHECKS, KIND
from .results import ResultError, ValidationRecord, read_results
from .settings import DataValidationSettings

__all__ = ["DataValidationConnector"]

Key = tuple[str, str, str]


class DataValidationConnector(Connector[DataValidationSettings]):
    type = "data_validation"
    version = "0.1.0"
    Settings = DataValidationSettings
    kinds = frozenset({KIND})
    checks = CHECKS

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        by_key: dict[Key, dict[tuple[datetime, str | None], ValidationRecord]] = {}
        for record in self._records(ctx):
            runs = by_key.setdefault((record.datasource, record.asset, record.suite), {})
            seen = runs.get((record.validated_at, record.run_name))
            if seen is None or (seen.success and not record.success):  # the same run stored twice: keep a failure
                runs[(record.validated_at, record.run_name)] = record
        window_start = ctx.now - self.settings.window
        for key in sorted(by_key):
            records = list(by_key[key].values())
            latest = max(records, key=lambda r: (r.validated_at, not r.success))
            in_window = [r for r in records if r.validated_at >= window_start]
            payload = self._payload(*key, latest=latest, expected=self._expected(key))
            payload["validations_in_window"] = len(in_window)
            payload["failed_in_window"] = sum(not r.success for r in in_window)
            yield Observation(KIND, _subject(*key), latest.validated_at, payload, source=latest.source)
        yield from self._missing(by_key, ctx)

    def _records(self, ctx: CollectContext) -> Iterator[ValidationRecord]:
        root = Path(self.settings.directory).expanduser()
        if not root.is_dir():
            raise ConfigurationError(f"data_validation directory {root} does not exist or is not a directory")
        for path in sorted(p for p in root.glob(self.settings.pattern) if p.is_file()):
            ctx.raise_if_cancelled()
            label = str(path)
            try:
                size = path.stat().st_size
                if size > self.settings.max_file_bytes:
                    ctx.problem(label, f"{label}: {size} bytes, above max_file_bytes {self.settings.max_file_bytes}")
                    continue
                data = path.read_bytes()
            except OSError as exc:
                ctx.problem(label, f"{label}: unreadable: {exc.strerror or exc}")
                continue
            try:
                yield from read_results(data.decode("utf-8-sig"), label)
            except UnicodeDecodeError as exc:
                ctx.problem(label, f"{label}: not UTF-8: {exc.reason} at byte {exc.start}")
            except ResultError as exc:
                ctx.problem(label, str(exc))

    def _expected(self, key: Key) -> bool:
        datasource, asset, suite = key
        for expected in self.settings.expected_assets:
            if (expected.datasource, expected.asset) == (datasource, asset):
                return not expected.suites or suite in expected.suites
        return False

    def _missing(self, by_key: dict[Key, Any], ctx: CollectContext) -> Iterator[Observation]:
        """An expected (asset, suite) with no result at all; one found only outside the window is judged on its
        own observation (``validations_in_window`` is 0)."""
        for expected in self.settings.expected_assets:
            found = {suite for (ds, asset, suite) in by_key if (ds, asset) == (expected.datasource, expected.asset)}
            wanted: list[str | None] = [s for s in expected.suites if s not in found]
            if not expected.suites and not found:
                wanted = [None]
            for suite in wanted:
                payload = self._payload(expected.datasource, expected.asset, suite, latest=None, expected=True)
                payload["validations_in_window"] = 0
                payload["failed_in_window"] = 0
                subject = _subject(expected.datasource, expected.asset, suite or "*")
                yield Observation(KIND, subject, ctx.now, payload, source=str(self.settings.directory))

    def _payload(
        self, datasource: str, asset: str, suite: str | None, *, latest: ValidationRecord | None, expected: bool
    ) -> dict[str, Any]:
        return {
            "datasource": datasource,
            "asset": asset,
            "suite": suite,
            "expected": expected,
            "window": format_duration(self.settings.window),
            "latest": latest.as_payload() if latest is not None else None,
        }


def _subject(datasource: str, asset: str, suite: str) -> Subject:
    return Subject("data_asset", f"{datasource}/{asset}/{suite}")
