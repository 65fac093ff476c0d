"""p50/p95 of the API's control list and an evidence page under 50 concurrent clients against a big store, beside
/healthz under the same load (the bare server: no auth, no database, no access log) in the same run, and 200
concurrent /metrics scrapes. The server is `evidence-collector serve` in a process of its own.

Every API request is authenticated and committed to the access log before it is answered, as in production.
Usage: python bench/web_api.py [--records N] [--clients 50] [--requests 20] [--db-dir DIR]"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.seed import seed_records
from collector.config import load_and_resolve
from collector.store import Store
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            timed(url, {})
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server not ready at {url}")


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
    store.dispose()
    port = _free_port()
    config.write_text(config.read_text().replace("http:\n", f'http:\n  listen: "127.0.0.1:{port}"\n'))
    # the server in a process of its own, as deployed: the clients here do not share its interpreter
    server = subprocess.Popen(
        [sys.executable, "-m", "collector", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        _wait(f"{base}/readyz")
        timed(f"{base}/api/v1/controls", auth)
        results = {
            "/healthz (bare server)": load(f"{base}/healthz", {}, args.clients, args.requests),
            "/api/v1/controls": load(f"{base}/api/v1/controls", auth, args.clients, args.requests),
            "/api/v1/evidence?limit=50": load(f"{base}/api/v1/evidence?limit=50", auth, args.clients, args.requests),
            "/api/v1/evidence?control=soc2:CC7.1&limit=50": load(
                f"{base}/api/v1/evidence?control=soc2:CC7.1&limit=50", auth, args.clients, args.requests
            ),
            "/metrics (200 concurrent scrapes)": load(f"{base}/metrics", {}, 200, 1),
        }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    bare = p(results["/healthz (bare server)"], 95)
    print(f"{args.records:,} records, {args.clients} concurrent clients, {args.requests} requests each")
    print(f"{'endpoint':48} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p95 / bare':>10}")
    for name, times in results.items():
        print(f"{name:48} {p(times, 50):8.1f} {p(times, 95):8.1f} {p(times, 99):8.1f} {p(times, 95) / bare:10.1f}")


if __name__ == "__main__":
    main()
