"""/metrics scrape time with 500 controls, at 1k and at 1M stored records, in the same run.

The scrape reads only in-memory state (never the database), so its cost should not grow with stored evidence.
Also prints the one-off state rebuild at start for each size. Usage: python bench/scrape.py [--big N]"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.seed import seed_records
from collector.daemon import load_state
from collector.http import WebServer, bind
from collector.mappings import default_mappings_dir, load_mappings
from collector.metrics import EvidenceMetrics
from collector.state import State
from collector.store import Store
from collector.web import build_app

CONTROLS = 500
KINDS = 50


def bench_mappings(root: Path) -> Path:
    """The shipped catalogs plus a 500-control framework mapped from 50 evidence kinds."""
    (root / "catalogs").mkdir(parents=True)
    (root / "evidence").mkdir()
    for f in (default_mappings_dir() / "catalogs").glob("*.yaml"):
        (root / "catalogs" / f.name).write_text(f.read_text())
    controls = [{"id": f"B.{i}", "title": f"bench control {i}", "group": f"B{i // 50}"} for i in range(CONTROLS)]
    (root / "catalogs" / "bench.yaml").write_text(
        yaml.safe_dump({"framework": "bench", "name": "bench", "version": "1", "controls": controls})
    )
    kinds = [
        {
            "kind": f"bench.kind_{k}",
            "title": f"kind {k}",
            "freshness": {"ttl": "7d", "at_risk": "1d"},
            "controls": [
                {"control": f"bench:B.{c}", "relationship": "supports", "rationale": "synthetic benchmark link"}
                for c in range(k * (CONTROLS // KINDS), (k + 1) * (CONTROLS // KINDS))
            ],
        }
        for k in range(KINDS)
    ]
    (root / "evidence" / "bench.yaml").write_text(yaml.safe_dump({"kinds": kinds}))
    return root


def prepare(records: int, mappings_dir: Path, db_dir: Path) -> tuple[State, float]:
    """A store with ``records`` rows (reused from ``db_dir`` when already seeded) and the state rebuilt from it."""
    path = db_dir / f"scrape-{records}.db"
    fresh = not path.exists()
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    if fresh:
        per_kind = records // KINDS
        for k in range(KINDS):
            controls = [f"bench:B.{c}" for c in range(k * (CONTROLS // KINDS), (k + 1) * (CONTROLS // KINDS))]
            seed_records(
                store,
                per_kind,
                subjects=max(per_kind // 10, 1),
                kind=f"bench.kind_{k}",
                controls=controls,
                summarise=k == KINDS - 1,
            )
    state = State()
    t0 = time.perf_counter()
    load_state(store, state)
    rebuild = time.perf_counter() - t0
    store.dispose()
    return state, rebuild


def serve(state: State, mappings_dir: Path) -> WebServer:
    registry = CollectorRegistry()
    registry.register(EvidenceMetrics(state, load_mappings(mappings_dir)))
    app = build_app(registry, lambda: (True, "ok"))
    server = WebServer(
        app,
        bind("127.0.0.1", 0, 2048),
        max_connections=4096,
        backlog=2048,
        header_timeout_seconds=10,
        keep_alive_timeout_seconds=5,
    )
    server.start()
    return server


def scrape(server: WebServer) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics").read()
    return time.perf_counter() - t0, body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=100)
    parser.add_argument("--db-dir", type=Path, default=None, help="keep seeded stores here between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db_dir = args.db_dir or tmp
        db_dir.mkdir(parents=True, exist_ok=True)
        mappings_dir = bench_mappings(tmp / "mappings")
        sizes = (args.small, args.big)
        prepared = {n: prepare(n, mappings_dir, db_dir) for n in sizes}
        servers = {n: serve(prepared[n][0], mappings_dir) for n in sizes}
        timings: dict[int, list[float]] = {n: [] for n in sizes}
        series: dict[int, int] = {}
        try:
            for n in sizes:
                _, body = scrape(servers[n])  # warm-up
                series[n] = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
            for _ in range(args.scrapes):  # interleaved, so machine noise hits both sizes alike
                for n in sizes:
                    timings[n].append(scrape(servers[n])[0])
        finally:
            for server in servers.values():
                server.stop()
    print(f"/metrics scrape with {CONTROLS} bench controls (+ shipped catalogs), median of {args.scrapes} interleaved")
    for n in sizes:
        median = statistics.median(timings[n])
        print(
            f"  {n:>9,} records: scrape {median * 1000:7.2f} ms   {series[n]} series   "
            f"state rebuild at start {prepared[n][1]:6.2f} s"
        )
    ratio = statistics.median(timings[args.big]) / statistics.median(timings[args.small])
    print(f"  ratio {args.big:,} / {args.small:,} records = {ratio:.2f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
