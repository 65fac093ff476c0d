"""p50/p95 of the API's control list and an evidence page under 50 concurrent clients against a big store, beside
/healthz under the same load (the bare server: no auth, no database, no access log) in the same run.

Every API request is authenticated and committed to the access log before it is answered, as in production.
Usage: python bench/web_api.py [--records N] [--clients 50] [--requests 20] [--db-dir DIR]"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.seed import seed_records
from collector.config import load_and_resolve
from collector.coverage import basis_for_config
from collector.daemon import load_state
from collector.http import WebServer, bind
from collector.metrics import EvidenceMetrics
from collector.state import State
from collector.store import Store
from collector.web import Sources, build_app, web_context
from collector.web.auth import token_sha256

TOKEN = "ec_bench-token"


def timed(url: str, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - t0


def load(url: str, headers: dict[str, str], clients: int, per_client: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        mine = [timed(url, headers) for _ in range(per_client)]
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="per client and endpoint")
    parser.add_argument("--db-dir", type=Path, default=None)
    args = parser.parse_args()
    root = args.db_dir or Path(tempfile.mkdtemp(prefix="bench-web-"))
    config = root / "config.yaml"
    config.write_text(
        f'database: {{url: "sqlite:///{root / "e.db"}"}}\n'
        f"http:\n  auth:\n    tokens:\n      - {{name: bench, role: admin, sha256: {token_sha256(TOKEN)}}}\n"
    )
    loaded = load_and_resolve(config)
    store = Store(loaded.app.database.url)
    store.upgrade()
    if store.count_records() < args.records:
        t0 = time.perf_counter()
        seed_records(
            store,
            args.records - store.count_records(),
            subjects=5_000,
            controls=["soc2:CC7.1", "iso27001:A.8.8"],
            step=timedelta(seconds=5),
        )
        print(f"seeded {args.records:,} records in {time.perf_counter() - t0:.1f}s")
    state = State()
    load_state(store, state)
    basis = basis_for_config(loaded)
    registry = CollectorRegistry()
    registry.register(EvidenceMetrics(state, loaded.mappings, coverage=basis))
    web = web_context(Sources(loaded, state, store, basis), loaded.app.http.auth)
    app = build_app(registry, lambda: (True, "ok"), web)
    server = WebServer(
        app, bind("127.0.0.1", 0, 2048), max_connections=4096, backlog=2048,
        header_timeout_seconds=10, keep_alive_timeout_seconds=5,
    )  # fmt: skip
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        timed(f"{base}/api/v1/controls", auth)
        results = {
            "/healthz (bare server)": load(f"{base}/healthz", {}, args.clients, args.requests),
            "/api/v1/controls": load(f"{base}/api/v1/controls", auth, args.clients, args.requests),
            "/api/v1/evidence?limit=50": load(f"{base}/api/v1/evidence?limit=50", auth, args.clients, args.requests),
            "/api/v1/evidence?control=soc2:CC7.1&limit=50": load(
                f"{base}/api/v1/evidence?control=soc2:CC7.1&limit=50", auth, args.clients, args.requests
            ),
        }
    finally:
        server.stop()
        store.dispose()
    bare = p(results["/healthz (bare server)"], 95)
    print(f"{args.records:,} records, {args.clients} concurrent clients, {args.requests} requests each")
    print(f"{'endpoint':48} {'p50 ms':>8} {'p95 ms':>8} {'p95 / bare':>10}")
    for name, times in results.items():
        print(f"{name:48} {p(times, 50):8.1f} {p(times, 95):8.1f} {p(times, 95) / bare:10.1f}")


if __name__ == "__main__":
    main()
