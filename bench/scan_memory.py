"""Peak memory of reading one large Trivy report through the container_scan connector, relative to its size.

Generates a SchemaVersion 2 report of about SIZE megabytes from the real ``alpine-39`` sample in tests/fixtures
(its vulnerability records repeated with distinct ids), then collects it in a fresh Python process and prints
the peak RSS (``VmHWM``) next to the file size. Usage: python bench/scan_memory.py [SIZE_MB] [--keep PATH]"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "trivy" / "trivy-alpine-39-critical.json"

_CHILD = """
import sys
from datetime import UTC, datetime
sys.path.insert(0, sys.argv[2])
from collector.connector import CollectContext
from connectors.container_scan import ContainerScanConnector, ContainerScanSettings
settings = ContainerScanSettings(paths=[sys.argv[1]], max_file_bytes=2**40)
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


def generate(path: Path, size_bytes: int) -> int:
    """Write a report of at least ``size_bytes``; returns how many vulnerability records it holds."""
    report = json.loads(SAMPLE.read_text(encoding="utf-8"))
    records = report["Results"][0]["Vulnerabilities"]
    record_bytes = sum(len(json.dumps(r, indent=2)) for r in records) / len(records)
    count = int(size_bytes / record_bytes) + 1
    generated = []
    for i in range(count):
        record = copy.copy(records[i % len(records)])
        record["VulnerabilityID"] = f"CVE-2099-{i}"
        generated.append(record)
    report["Results"][0]["Vulnerabilities"] = generated
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("size_mb", nargs="?", type=int, default=80)
    parser.add_argument("--keep", type=Path, help="write the generated report here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "large-trivy.json"
        records = generate(path, args.size_mb * 1024 * 1024)
        size = path.stat().st_size
        child = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(ROOT)], capture_output=True, text=True)
        if child.returncode:
            sys.exit(child.stderr)
        before, peak, count, problems = (int(x) for x in child.stdout.split())
    mib = 1024 * 1024
    print(f"report: {size / mib:.1f} MiB, {records} vulnerability records ({count} read, {problems} problems)")
    print(f"peak RSS: {peak / mib:.1f} MiB = {peak / size:.2f} x the file size")
    growth = (peak - before) / size
    print(f"  of which after start-up (imports): {before / mib:.1f} MiB; growth while reading {growth:.2f} x")


if __name__ == "__main__":
    main()
