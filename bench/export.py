"""Export throughput and peak memory: 10k vs 1M records, next to a bare sqlite3 + zipfile dump of the same rows.

    python bench/export.py                  # 10k and 1M records
    python bench/export.py --sizes 10000 100000
    python bench/export.py --monitors 20 --months 12   # the audit dossier: 20 charted monitors over a year

Each store is a SQLite file seeded directly (executemany, valid chain hashes); each export runs in its own
subprocess so its peak RSS (ru_maxrss) is its own. Targets: >= 50k records/s; peak RSS at 1M <= 1.5x at 10k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.canonical import canonical_json, sha256_hex  # noqa: E402
from collector.store import Store  # noqa: E402
from collector.store.records import GENESIS_HASH, record_link  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SUBJECTS = 1000
CONTROLS_JSON = json.dumps(["iso27001:A.8.8", "nist_ai_rmf:MEASURE 2.7", "soc2:CC7.1"])
MONITOR_CONTROLS_JSON = json.dumps(["iso27001:A.8.16", "nist_ai_rmf:MEASURE 2.4", "soc2:CC7.2"])
SAMPLES_PER_MONITOR_RECORD = 60
BATCH = 20_000


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _monitor_payload(index: int, at: datetime, round_span: timedelta, seq: int) -> bytes:
    """A model_monitor ``monitor.metric`` payload: a window of samples ending at ``at``, now and then a breach."""
    step = round_span.total_seconds() / SAMPLES_PER_MONITOR_RECORD
    end = at.timestamp()
    values = [
        [end - (SAMPLES_PER_MONITOR_RECORD - 1 - i) * step, "0.8" if (seq + i) % 97 == 0 else f"0.9{(seq + i) % 10}"]
        for i in range(SAMPLES_PER_MONITOR_RECORD)
    ]
    return canonical_json(
        {
            "monitor": f"monitor-{index:02d}",
            "model": f"model-{index:02d}",
            "query": f'model_accuracy{{model="model-{index:02d}"}}',
            "bound": {"min": 0.85, "max": None},
            "min_coverage": 1.0,
            "window": {
                "start": datetime.fromtimestamp(values[0][0], UTC).isoformat(),
                "end": at.isoformat(),
                "duration": "1h",
                "step_seconds": step,
            },
            "status": "ok",
            "series": [{"labels": {"model": f"model-{index:02d}"}, "values": values}],
            "sample_count": SAMPLES_PER_MONITOR_RECORD,
        }
    )


def seed(path: Path, records: int, monitors: int = 0, months: int = 0) -> tuple[datetime, datetime]:
    """``records`` container scans of SUBJECTS images, one run per round, stored a minute apart; or, with
    ``months``, rounds spread over that many months. With ``monitors``, the first records of each round are
    instead that many monitors' ``monitor.metric`` evidence (a window of samples each)."""
    rounds = max(records // SUBJECTS, 1)
    round_span = timedelta(days=30.5 * months) / rounds if months else timedelta(minutes=1)
    first = T0 - timedelta(days=30.5 * months)  # a history of months ends by T0, not in the future
    Store(f"sqlite:///{path}").upgrade()
    conn = sqlite3.connect(path)
    run_id = str(uuid.uuid4())
    conn.execute(
        "insert into collection_runs values (?,?,?,?,?,?,?,?,?,?,?)",
        (
            run_id,
            "container_scan",
            "bench",
            _sqlite_time(T0),
            _sqlite_time(T0),
            "succeeded",
            records,
            0,
            "[]",
            None,
            "",
        ),
    )
    prev = GENESIS_HASH
    rows: list[tuple[object, ...]] = []
    contents: list[tuple[str, str, int]] = []
    stored_at = first
    for seq in range(1, records + 1):
        position = seq % SUBJECTS
        if position == 1:
            stored_at = first + round_span * (seq // SUBJECTS)
        observed_at = stored_at - timedelta(seconds=30)
        result = "fail" if seq % 7 == 0 else "pass"
        if 1 <= position <= monitors:
            connector, kind, subject_type, controls_json = (
                "model_monitor",
                "monitor.metric",
                "monitor",
                MONITOR_CONTROLS_JSON,
            )
            subject = f"model-{position:02d}/monitor-{position:02d}"
            payload = _monitor_payload(position, observed_at, round_span, seq)
            check = "monitor.metric_within_bounds"
        else:
            connector, kind, subject_type, controls_json = (
                "container_scan",
                "container.scan",
                "container_image",
                CONTROLS_JSON,
            )
            subject = f"registry.example/app-{position:04d}"
            payload = canonical_json({"image": subject, "scan": seq, "critical": seq % 7 == 0, "high": seq % 13})
            check = "container.no_fixable_vulns"
        content = sha256_hex(payload)
        checks_json = json.dumps([{"id": check, "message": "scripted", "result": result}], sort_keys=True)
        record_id = str(uuid.UUID(int=seq))
        fields = SimpleNamespace(
            id=record_id, run_id=run_id, connector_type=connector, instance="bench", connector_version="1.0",
            kind=kind, subject_type=subject_type, subject_id=subject, observed_at=observed_at,
            valid_until=None, collected_at=stored_at, content_sha256=content, source="bench://scan",
            config_hash="c" * 64,
        )  # fmt: skip
        link = record_link(prev, fields, stored_at, controls_json, checks_json)
        contents.append((content, payload.decode(), len(payload)))
        t_obs, t_stored = _sqlite_time(observed_at), _sqlite_time(stored_at)
        rows.append(
            (seq, record_id, run_id, connector, "bench", "1.0", kind, subject_type, subject,
             t_obs, None, t_stored, t_stored, content, "bench://scan", "c" * 64, controls_json, checks_json, prev, link)
        )  # fmt: skip
        prev = link
        if len(rows) >= BATCH:
            _flush(conn, rows, contents)
    _flush(conn, rows, contents)
    conn.execute("update chain_head set seq = ?, chain_hash = ? where id = 1", (records, prev))
    conn.commit()
    conn.close()
    return first - timedelta(hours=1), stored_at + timedelta(hours=1)


def _flush(conn: sqlite3.Connection, rows: list[tuple[object, ...]], contents: list[tuple[str, str, int]]) -> None:
    conn.executemany("insert or ignore into evidence_content values (?,?,?)", contents)
    conn.executemany(f"insert into evidence values ({','.join('?' * 20)})", rows)
    rows.clear()
    contents.clear()


# -- what runs in the measured subprocesses ----------------------------------------------------------------


def run_export(db: Path, out: Path, start: str, end: str) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from collector.export import build_request, export_bundle
    from collector.mappings import load_mappings

    store = Store(f"sqlite:///{db}")
    request = build_request(
        load_mappings(), {}, "bench", "bench", framework="soc2",
        period=(datetime.fromisoformat(start), datetime.fromisoformat(end)),
    )  # fmt: skip
    began, cpu = time.perf_counter(), time.process_time()
    result = export_bundle(store, request, out, Ed25519PrivateKey.generate())
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "cpu": time.process_time() - cpu, "records": result.manifest["counts"]["records"]}


def run_raw(db: Path, out: Path, start: str, end: str) -> dict[str, float]:
    """The floor: sqlite3 rows joined with their payloads, one JSON line each, deflated into a zip."""
    began, cpu = time.perf_counter(), time.process_time()
    conn = sqlite3.connect(db)
    cursor = conn.execute(
        "select e.*, c.payload from evidence e join evidence_content c on c.sha256 = e.content_sha256 "
        "where e.stored_at > ? and e.stored_at <= ? order by e.seq",
        (_sqlite_time(datetime.fromisoformat(start)), _sqlite_time(datetime.fromisoformat(end))),
    )
    names = [d[0] for d in cursor.description]
    count = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, zf.open("evidence.jsonl", "w") as fh:
        while batch := cursor.fetchmany(5000):
            fh.write("".join(json.dumps(dict(zip(names, row, strict=True))) + "\n" for row in batch).encode())
            count += len(batch)
    return {"seconds": time.perf_counter() - began, "cpu": time.process_time() - cpu, "records": count}


def run_verify(bundle: Path) -> dict[str, float]:
    from collector.export import verify_bundle

    began, cpu = time.perf_counter(), time.process_time()
    report = verify_bundle(bundle)
    return {"seconds": time.perf_counter() - began, "cpu": time.process_time() - cpu, "records": report.records}


def _child(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "export":
        figures = run_export(Path(args[0]), Path(args[1]), args[2], args[3])
    elif mode == "raw":
        figures = run_raw(Path(args[0]), Path(args[1]), args[2], args[3])
    else:
        figures = run_verify(Path(args[0]))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["peak_rss_mb"] = usage.ru_maxrss / 1024
    figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(figures))


def measure(*args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--monitors", type=int, default=0, help="monitors whose metric records are charted")
    parser.add_argument("--months", type=int, default=0, help="spread the rounds over this many months")
    parser.add_argument(
        "--store-dir", type=Path, help="keep the seeded stores here and reuse them (to compare two versions)"
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    if options.child:
        _child(options.child)
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        for size in options.sizes:
            kept = options.store_dir is not None
            name = f"store-{size}-m{options.monitors}-{options.months}mo.db"
            db = (options.store_dir if kept else Path(tmp)) / name
            window_file = db.with_suffix(".window")
            if kept and window_file.exists():
                start, end = (datetime.fromisoformat(t) for t in window_file.read_text().split())
                print(f"reusing {db} ({size:,} records)", flush=True)
            else:
                began = time.perf_counter()
                start, end = seed(db, size, options.monitors, options.months)
                window_file.write_text(f"{start.isoformat()} {end.isoformat()}")
                print(f"seeded {size:,} records in {time.perf_counter() - began:.1f}s", flush=True)
            window = (start.isoformat(), end.isoformat())
            bundle = Path(tmp) / f"bundle-{size}.zip"
            exported = measure("export", str(db), str(bundle), *window)
            raw = measure("raw", str(db), str(Path(tmp) / f"raw-{size}.zip"), *window)
            verified = measure("verify", str(bundle))
            results[size] = (exported, raw, verified, bundle.stat().st_size)
            if not kept:
                db.unlink()
    print(f"\nload average while running: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("| records | export wall s | records/s (wall) | records/CPU-s | peak RSS MB | raw sqlite3+zip wall s | "
          "export/raw (wall) | export/raw (CPU) | verify records/s (wall) | verify RSS MB | bundle MB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, (exported, raw, verified, bundle_bytes) in results.items():
        print(
            f"| {size:,} | {exported['seconds']:.2f} | {exported['records'] / exported['seconds']:,.0f} | "
            f"{exported['records'] / exported['cpu']:,.0f} | {exported['peak_rss_mb']:.0f} | {raw['seconds']:.2f} | "
            f"{exported['seconds'] / raw['seconds']:.2f}x | {exported['cpu'] / raw['cpu']:.2f}x | "
            f"{verified['records'] / verified['seconds']:,.0f} | {verified['peak_rss_mb']:.0f} | "
            f"{bundle_bytes / 1e6:.1f} |"
        )
    sizes = sorted(results)
    if len(sizes) >= 2:
        small, big = results[sizes[0]][0], results[sizes[-1]][0]
        print(
            f"\npeak RSS {sizes[-1]:,} / {sizes[0]:,}: {big['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
            "(target <= 1.5x); "
            f"throughput at {sizes[-1]:,}: {big['records'] / big['seconds']:,.0f} records/s (target >= 50,000)"
        )


if __name__ == "__main__":
    main()
