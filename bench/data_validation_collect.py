"""10,000 Great Expectations validation result files: the data_validation connector next to bare reads.

Writes N result files (GX Core 1.x ``ExpectationSuiteValidationResult`` shape, 100 assets x 2 suites, 50 runs
each, four expectations per suite, one failing) to a temporary directory, then alternates the connector's
``collect`` (read, parse, group, latest per asset) and the bare baseline (``Path.read_bytes`` + ``json.loads`` of
every file, found by the same glob) and prints the medians and their ratio.
Run: ``python bench/data_validation_collect.py [N]``."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.connector import CollectContext
from connectors.data_validation import DataValidationConnector, DataValidationSettings

ROUNDS = 7
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def expectation(kind: str, column: str, success: bool) -> dict[str, Any]:
    return {
        "success": success,
        "expectation_config": {
            "type": kind,
            "kwargs": {"column": column, "batch_id": "warehouse-asset"},
            "meta": {},
            "id": "0b1c2d3e-0000-4000-8000-000000000000",
        },
        "result": {
            "element_count": 1000,
            "unexpected_count": 0 if success else 3,
            "unexpected_percent": 0.3,
            "partial_unexpected_list": [] if success else ["maybe", "unknown", "n/a"],
        },
        "meta": {},
        "exception_info": {"raised_exception": False, "exception_traceback": None, "exception_message": None},
    }


def result(asset: int, suite: str, run: int) -> dict[str, Any]:
    at = NOW - timedelta(hours=run)
    results = [expectation("expect_column_values_to_not_be_null", f"c{i}", i != 3) for i in range(4)]
    return {
        "success": False,
        "results": results,
        "suite_name": suite,
        "suite_parameters": {},
        "statistics": {
            "evaluated_expectations": 4,
            "successful_expectations": 3,
            "unsuccessful_expectations": 1,
            "success_percent": 75.0,
        },
        "meta": {
            "great_expectations_version": "1.24.1",
            "batch_spec": {"batch_data": "PandasDataFrame"},
            "batch_markers": {"ge_load_time": at.strftime("%Y%m%dT%H%M%S.%fZ")},
            "active_batch_definition": {
                "datasource_name": "warehouse",
                "data_connector_name": "fluent",
                "data_asset_name": f"asset_{asset:03d}",
                "batch_identifiers": {},
            },
            "validation_time": at.isoformat(),
            "run_id": {"run_name": f"nightly-{run}", "run_time": at.isoformat()},
        },
        "id": None,
    }


def write(directory: Path, count: int) -> None:
    written = 0
    for run in range(count):
        for asset in range(100):
            for suite in ("completeness", "ranges"):
                if written == count:
                    return
                path = directory / suite / f"run{run:03d}" / f"asset_{asset:03d}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result(asset, suite, run)))
                written += 1


def ours(directory: Path) -> int:
    connector = DataValidationConnector(DataValidationSettings(directory=str(directory), window="30d"))
    ctx = CollectContext(instance="bench", run_id="r", now=NOW)
    observations = list(connector.collect(ctx))
    assert not ctx.problems, ctx.problems[:3]
    return len(observations)


def bare(directory: Path) -> int:
    documents = [json.loads(p.read_bytes()) for p in sorted(directory.glob("**/*.json")) if p.is_file()]
    return len(documents)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write(directory, count)
        print(f"{count} files, {sum(p.stat().st_size for p in directory.glob('**/*.json')) / 1e6:.1f} MB")
        ours(directory), bare(directory)  # warm the page cache
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for _ in range(ROUNDS):
            for name, fn in (("ours", ours), ("bare", bare)):
                start = time.perf_counter()
                fn(directory)
                times[name].append(time.perf_counter() - start)
        ratios = [o / b for o, b in zip(times["ours"], times["bare"], strict=True)]
        for name, values in times.items():
            print(f"{name}: median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})")
        print(f"ours / bare: median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
