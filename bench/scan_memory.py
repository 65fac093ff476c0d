"""Peak memory of reading one large scan report through the container_scan connector, relative to its size.

Generates a report of about SIZE megabytes from a real sample in tests/fixtures (Trivy ``alpine-39``, Grype's
directory scan, or Trivy's SARIF: its findings repeated with distinct ids), then collects it in a fresh Python
process and prints the peak RSS (``VmHWM``) next to the file size.
Usage: python bench/scan_memory.py [SIZE_MB] [--format trivy|grype|sarif] [--keep PATH]"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLES = {
    "trivy": FIXTURES / "trivy" / "trivy-alpine-39-critical.json",
    "grype": FIXTURES / "grype" / "grype-directory-source.json",
    "sarif": FIXTURES / "sarif" / "trivy-alpine-310.sarif.json",
}

_CHILD = """
import os, sys
from datetime import UTC, datetime
sys.path.insert(0, sys.argv[2])
from collector.connector import CollectContext
from connectors.container_scan import ContainerScanConnector, ContainerScanSettings
settings = ContainerScanSettings(paths=[sys.argv[1]], max_file_bytes=os.path.getsize(sys.argv[1]))
connector = ContainerScanConnector(settings)
def peak_rss():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc/self/status")
before = peak_rss()
ctx = CollectContext(instance="bench", run_id="bench", now=datetime.now(UTC))
observations = list(connector.collect(ctx))
peak = peak_rss()
count = sum(o.payload["vulnerability_count"] for o in observations)
print(before, peak, count, len(ctx.problems))
"""


def _repeated(items: list[Any], size_bytes: int, renamed: Callable[[Any, int], Any]) -> list[Any]:
    item_bytes = sum(len(json.dumps(item, indent=2)) for item in items) / len(items)
    return [renamed(copy.deepcopy(items[i % len(items)]), i) for i in range(int(size_bytes / item_bytes) + 1)]


def _trivy_record(record: dict[str, Any], i: int) -> dict[str, Any]:
    record["VulnerabilityID"] = f"CVE-2099-{i}"
    return record


def _grype_match(match: dict[str, Any], i: int) -> dict[str, Any]:
    match["vulnerability"]["id"] = f"CVE-2099-{i}"
    return match


def generate(path: Path, size_bytes: int, fmt: str) -> int:
    """Write a report of at least ``size_bytes``; returns how many findings it holds."""
    report = json.loads(SAMPLES[fmt].read_text(encoding="utf-8"))
    if fmt == "trivy":
        records = _repeated(report["Results"][0]["Vulnerabilities"], size_bytes, _trivy_record)
        report["Results"][0]["Vulnerabilities"] = records
    elif fmt == "grype":
        records = _repeated(report["matches"], size_bytes, _grype_match)
        report["matches"] = records
    else:
        run = report["runs"][0]
        pairs = list(zip(run["tool"]["driver"]["rules"], run["results"], strict=False))
        records = _repeated(pairs, size_bytes, _sarif_pair)
        run["tool"]["driver"]["rules"] = [rule for rule, _ in records]
        run["results"] = [{**result, "ruleIndex": i} for i, (_, result) in enumerate(records)]
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return len(records)


def _sarif_pair(pair: tuple[dict[str, Any], dict[str, Any]], i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rule, result = pair
    old = rule["id"]
    rule["id"] = result["ruleId"] = f"CVE-2099-{i}"
    for text in (rule["help"], result["message"]):
        text["text"] = text["text"].replace(old, rule["id"])
    return rule, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("size_mb", nargs="?", type=int, default=80)
    parser.add_argument("--format", choices=sorted(SAMPLES), default="trivy")
    parser.add_argument("--keep", type=Path, help="write the generated report here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / f"large-{args.format}.json"
        records = generate(path, args.size_mb * 1024 * 1024, args.format)
        size = path.stat().st_size
        child = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(ROOT)], capture_output=True, text=True)
        if child.returncode:
            sys.exit(child.stderr)
        before, peak, count, problems = (int(x) for x in child.stdout.split())
    mib = 1024 * 1024
    print(f"{args.format} report: {size / mib:.1f} MiB, {records} findings ({count} read, {problems} problems)")
    print(f"peak RSS: {peak / mib:.1f} MiB = {peak / size:.2f} x the file size")
    growth = (peak - before) / size
    print(f"  of which after start-up (imports): {before / mib:.1f} MiB; growth while reading {growth:.2f} x")


if __name__ == "__main__":
    main()
