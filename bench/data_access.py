"""Events/s and peak RSS of the data_access connector summarising CloudTrail log files, at 100k and 1M events.

Writes gzip JSON log files of 1,000 records each (records built like tests/cloudtrail_records.py: CloudTrail's
documented schema; 80 % on two designated datasets, the rest on other buckets; 60 roles with 5 sessions each,
3 IAM users, 2 SSO users; 0.5 % delivered twice), their event times spread over WINDOW_HOURS. Each size is then
read in a fresh process twice: by the bare libraries (``gzip.decompress`` + ``json.loads`` of every file) and by
the connector's own path (the same file read, ``Summariser`` over every record), and the peak RSS (``VmHWM``) of
each process is printed. The files come from local disk through a stand-in for the S3 client's ``get_object``,
so network time is left out of both.

Usage: python bench/data_access.py [--sizes 100000,1000000] [--window-hours 24] [--dir DIR]"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cloudtrail_records import (  # noqa: E402
    feature_store_event,
    iam_user,
    log_file,
    role_session,
    s3_data_event,
    sso_session,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PER_FILE = 1000

_CHILD = """
import gzip, json, os, sys, time
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[3])
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM")
directory, mode = sys.argv[1], sys.argv[2]
files = sorted(os.listdir(directory))
from collector.connector import CollectContext
from connectors.data_access import DataAccessConnector, DataAccessSettings
from connectors.data_access.connector import LogFiles
from connectors.data_access.summary import Summariser
settings = DataAccessSettings.model_validate(json.loads(sys.argv[4]))
class LocalS3:
    def get_object(self, Bucket, Key):
        return {"Body": open(os.path.join(directory, Key), "rb")}
now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
before = peak_rss()
start = time.perf_counter()
cpu_start = time.process_time()
records = 0
if mode == "bare":
    for name in files:
        with open(os.path.join(directory, name), "rb") as handle:
            records += len(json.loads(gzip.decompress(handle.read()))["Records"])
else:
    connector = DataAccessConnector(settings)
    ctx = CollectContext(instance="bench", run_id="bench", now=now)
    summariser = Summariser(settings.datasets, now=now, skew=settings.clock_skew_tolerance,
                            key_depth=settings.key_depth, keys_per_principal=settings.keys_per_principal,
                            dedupe_horizon=settings.dedupe_horizon)
    state = LogFiles()
    s3 = LocalS3()
    for name in files:
        connector._read_one(s3, name, summariser, state, ctx)
    records = summariser.records
    assert state.unreadable == 0 and not ctx.problems, ctx.problems
    summaries = {n: s.events for n, s in summariser.datasets.items()}
    print("# summarised", summaries, "duplicates", summariser.duplicates, "dedupe entries", len(summariser._seen),
          file=sys.stderr)
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu_start
print(json.dumps({"records": records, "seconds": elapsed, "cpu": cpu, "peak_before": before, "peak": peak_rss()}))
"""

SETTINGS = {
    "trail": {"name": "org-trail", "region": "us-east-1", "bucket": "org-cloudtrail-logs"},
    "datasets": [
        {
            "name": "churn-training",
            "s3": [{"bucket": "ml-training-data", "prefix": "churn/"}],
            "allowed_principals": ["arn:aws:iam::123456789012:role/training-*"],
        },
        {
            "name": "customer-features",
            "feature_groups": ["customers"],
            "allowed_principals": ["arn:aws:iam::123456789012:role/training-*"],
        },
    ],
}


def generate(directory: Path, events: int, window: timedelta) -> None:
    rng = random.Random(events)
    roles = [role_session(f"training-{r}", f"job-{s}") for r in range(60) for s in range(5)]
    humans = [iam_user(f"user{u}") for u in range(3)] + [
        sso_session("DataScientist", f"p{u}@example.com") for u in range(2)
    ]
    start = NOW - window
    step = window / events
    batch: list[dict[str, object]] = []
    written = 0
    for i in range(events):
        when = (start + step * i).strftime("%Y-%m-%dT%H:%M:%SZ")
        who = humans[rng.randrange(len(humans))] if rng.random() < 0.02 else roles[rng.randrange(len(roles))]
        pick = rng.random()
        if pick < 0.5:
            name = rng.choice(("GetObject", "GetObject", "GetObject", "PutObject", "HeadObject", "DeleteObject"))
            key = f"churn/{2020 + i % 7}/{i % 12:02d}/part-{i % 1000:05d}.parquet"
            record = s3_data_event(
                name, "ml-training-data", key, who, when, event_id=f"{i:08x}-7c3e-4f1a-9b2d-{i:012x}"
            )
        elif pick < 0.8:
            record = feature_store_event(
                rng.choice(("GetRecord", "PutRecord")),
                "customers",
                who,
                when,
                event_id=f"{i:08x}-7c3e-4f1a-9b2d-{i:012x}",
            )
        else:
            record = s3_data_event(
                "GetObject", "web-assets", f"img/{i}.png", who, when, event_id=f"{i:08x}-7c3e-4f1a-9b2d-{i:012x}"
            )
        batch.append(record)
        if rng.random() < 0.005:  # delivered twice, in the next file
            batch.append(record)
        if len(batch) >= PER_FILE:
            (directory / f"{written:06d}.json.gz").write_bytes(log_file(batch))
            written += 1
            batch = []
    if batch:
        (directory / f"{written:06d}.json.gz").write_bytes(log_file(batch))


def measure(directory: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(directory), mode, str(ROOT), json.dumps(SETTINGS)],
        capture_output=True,
        text=True,
        check=True,
    )
    if out.stderr.strip():
        print("   ", out.stderr.strip().splitlines()[-1])
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--window-hours", type=float, default=24.0)
    parser.add_argument("--dir", type=Path, default=None, help="keep the generated log files here")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-data-access-"))
    peaks: dict[int, float] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        directory = base / f"{size}-{args.window_hours:g}h"
        if not directory.exists():
            directory.mkdir(parents=True)
            began = time.perf_counter()
            generate(directory, size, timedelta(hours=args.window_hours))
            print(f"generated {size:,} events in {time.perf_counter() - began:.1f} s under {directory}")
        bare, ours = measure(directory, "bare"), measure(directory, "ours")
        rate_bare = bare["records"] / bare["seconds"]
        rate_ours = ours["records"] / ours["seconds"]
        peaks[size] = ours["peak"]
        cpu_bare, cpu_ours = bare["records"] / bare["cpu"], ours["records"] / ours["cpu"]
        print(
            f"{size:>9,} events over {args.window_hours:g} h: bare gzip+json {rate_bare:,.0f} records/s, "
            f"connector {rate_ours:,.0f} events/s ({rate_ours / rate_bare:.0%} of bare); per CPU second: bare "
            f"{cpu_bare:,.0f}, connector {cpu_ours:,.0f} ({cpu_ours / cpu_bare:.0%}); peak RSS bare "
            f"{bare['peak'] / 2**20:.1f} MiB, connector {ours['peak'] / 2**20:.1f} MiB"
        )
    sizes = sorted(peaks)
    if len(sizes) >= 2:
        print(f"peak RSS {sizes[-1]:,} / {sizes[0]:,}: {peaks[sizes[-1]] / peaks[sizes[0]]:.2f}")


if __name__ == "__main__":
    main()
