"""Start-to-ready, `status --format json` and `evidence --control X` as whole processes, on a small store and a
large one, interleaved in the same run; the daemon's idle RSS. Ratios are large / small, pair by pair.

Start-to-ready: `evidence-collector run` started until /readyz answers 200 (the in-memory state is loaded then).
Idle RSS: the daemon's VmRSS two seconds after it became ready.

Usage: python bench/state_scale.py [--sizes 1000 1000000] [--subjects 1000] [--runs 5] [--db-dir DIR]
Stores are generated once per (size, subjects) under --db-dir and reused."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.store import Store, summary
from collector.store.schema import evidence

KINDS = ("container.scan", "model.card", "iam.user", "k8s.workload")
CONTROL = "soc2:CC7.1"
EXE = shutil.which("evidence-collector", path=str(Path(sys.executable).parent)) or "evidence-collector"


def seeded(db_dir: Path, records: int, subjects: int) -> Path:
    """A SQLite store of ``records`` rows over ``subjects`` subjects of four kinds, one per second, generated in SQL
    (seconds, not the minutes the chained seed takes at 1M), then the summary tables rebuilt from them. The rows'
    hashes are placeholders: start-up, status and evidence never read them (``verify`` would report the chain
    broken)."""
    path = db_dir / f"state-{records}-{subjects}.db"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    store = Store(f"sqlite:///{partial}")
    store.upgrade()
    zero, sha = "0" * 64, "a" * 64
    kinds = "CASE n % 4 " + " ".join(f"WHEN {i} THEN '{k}'" for i, k in enumerate(KINDS)) + " END"
    when = "strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01', '+' || n || ' seconds')"
    columns = ", ".join(c.name for c in evidence.c if c.name != "seq")
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO collection_runs VALUES ('run', 'bench', 'bench', '2026-01-01 00:00:00.000000', "
            f"'2026-01-01 00:00:00.000000', 'succeeded', {records}, 0, '[]', NULL, '{zero}')"
        )
        conn.exec_driver_sql(f"INSERT INTO evidence_content VALUES ('{sha}', '{{}}', 2)")
        conn.exec_driver_sql(
            f"INSERT INTO evidence ({columns}) "
            f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {records}) "
            f"SELECT printf('%036d', n), 'run', 'bench', 'bench', '1', {kinds}, 'image', 'img-' || (n % {subjects}), "
            f"{when}, NULL, {when}, {when}, '{sha}', 'bench', '{zero}', "
            f"'[\"{CONTROL}\", \"iso27001:A.8.8\"]', '[]', '{zero}', '{zero}' FROM g"
        )
        conn.exec_driver_sql(f"UPDATE chain_head SET seq = {records}")
        summary.rebuild(conn, store.dialect)
    store.dispose()
    partial.rename(path)
    return path


def config_for(db: Path, port: int, root: Path) -> Path:
    cfg = root / f"{db.stem}.yaml"
    cfg.write_text(f'database:\n  url: "sqlite:///{db}"\nhttp:\n  listen: "127.0.0.1:{port}"\n')
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def start_to_ready(cfg: Path, port: int) -> tuple[float, int]:
    """Seconds until /readyz says 200, and the daemon's VmRSS (KiB) two seconds later."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([EXE, "run", "-c", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}")
            time.sleep(0.02)
        ready = time.perf_counter() - t0
        time.sleep(2)
        rss = next(
            int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return ready, rss


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--subjects", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "evidence-bench")
    args = parser.parse_args()
    args.db_dir.mkdir(parents=True, exist_ok=True)
    stores = {}
    for size in args.sizes:
        t0 = time.perf_counter()
        db = seeded(args.db_dir, size, args.subjects)
        port = free_port()
        stores[size] = (config_for(db, port, args.db_dir), port, db)
        print(f"store {size:>11,} records, {args.subjects:,} subjects: {db} ({db.stat().st_size / 2**20:,.0f} MiB, "
              f"ready in {time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    figures: dict[str, dict[int, list[float]]] = {}
    for _ in range(args.runs + 1):  # the first round warms the page cache and is not counted
        round_: dict[str, dict[int, float]] = {}
        for size, (cfg, port, _db) in stores.items():
            ready, rss = start_to_ready(cfg, port)
            round_.setdefault("start-to-ready s", {})[size] = ready
            round_.setdefault("idle RSS MiB", {})[size] = rss / 1024
            round_.setdefault("status --format json s", {})[size] = timed(
                [EXE, "status", "--format", "json", "-c", str(cfg)]
            )
            round_.setdefault(f"evidence --control {CONTROL} s", {})[size] = timed(
                [EXE, "evidence", "--control", CONTROL, "--format", "json", "-c", str(cfg)]
            )
        if _ == 0:
            continue
        for name, by_size in round_.items():
            for size, value in by_size.items():
                figures.setdefault(name, {}).setdefault(size, []).append(value)
    small, big = min(args.sizes), max(args.sizes)
    print(f"\n{args.runs} runs each, interleaved; min / median / max; ratio {big:,} / {small:,} pair by pair")
    for name, by_size in figures.items():
        cells = "   ".join(f"{size:>11,}: {spread(v)}" for size, v in by_size.items())
        ratios = [b / s for b, s in zip(by_size[big], by_size[small], strict=True)]
        print(f"  {name:34s} {cells}   ratio {spread(ratios)}")


if __name__ == "__main__":
    main()
