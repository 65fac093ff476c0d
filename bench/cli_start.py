"""Start-up cost of the command line: ``evidence-collector --version`` against ``python -c pass``, in turn.

Each command runs as a whole process (after one warm-up each), alternating A B A B so that machine drift hits
both; prints wall and CPU seconds as min / median / max and the ratio A/B pair by pair. Target: median wall
≤ 0.3 s. Usage: python bench/cli_start.py [-n RUNS] [-- COMMAND ...] (default: the ``evidence-collector``
script next to this Python, ``--version``)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    return wall, usage.ru_utime + usage.ru_stime


def spread(values: list[float]) -> str:
    return f"{min(values):8.3f} {statistics.median(values):8.3f} {max(values):8.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="counted runs of each command (default 10)")
    parser.add_argument("command", nargs="*", help="command to time (default: evidence-collector --version)")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("evidence-collector")
    found = str(script) if script.exists() else shutil.which("evidence-collector")
    if not args.command and found is None:
        raise SystemExit("evidence-collector is not installed next to this Python nor on PATH")
    command = args.command or [str(found), "--version"]
    baseline = [sys.executable, "-c", "pass"]
    for warm_up in (command, baseline):
        run_once(warm_up)
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    for _ in range(args.n):
        a.append(run_once(command))
        b.append(run_once(baseline))
    print(f"A = {' '.join(command)}\nB = {' '.join(baseline)}\n{args.n} runs each, in turn, after a warm-up")
    print(f"{'':12}{'min':>8} {'median':>8} {'max':>8}")
    for label, pick in (("wall s", 0), ("cpu s", 1)):
        print(f"A {label:10}{spread([r[pick] for r in a])}")
        print(f"B {label:10}{spread([r[pick] for r in b])}")
        print(f"A/B {label:8}{spread([x[pick] / y[pick] for x, y in zip(a, b, strict=True) if y[pick] > 0])}")


if __name__ == "__main__":
    main()
