"""Time from nothing to `kubectl get nodes` showing Ready kwok nodes, with binaries already built (goal < 30 s).

uv run python tests/bench/bench_cluster_start.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from clawhost_localcluster.build import ensure_binaries
from clawhost_localcluster.controlplane import ControlPlane

GOAL_SECONDS = 30.0


def one_run(root: Path) -> tuple[float, float]:
    binaries = ensure_binaries()
    plane = ControlPlane(binaries, root)
    started = time.monotonic()
    try:
        plane.start()
        ready = time.monotonic() - started
    finally:
        stop_started = time.monotonic()
        plane.stop()
    return ready, time.monotonic() - stop_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="clawhost-bench-") as root:
            results.append(one_run(Path(root)))
        print(f"run {index + 1}: nodes Ready after {results[-1][0]:.1f}s, stopped in {results[-1][1]:.1f}s", flush=True)
    starts = [r[0] for r in results]
    print()
    print("| metric                         | value  | goal   |")
    print("|--------------------------------|--------|--------|")
    print(f"| start → nodes Ready, median (s) | {statistics.median(starts):6.1f} | < {GOAL_SECONDS:.0f}   |")
    print(f"| start → nodes Ready, max (s)    | {max(starts):6.1f} | < {GOAL_SECONDS:.0f}   |")
    print(f"| stop, max (s)                   | {max(r[1] for r in results):6.1f} |        |")
    print(f"| runs                            | {len(results):6d} |        |")


if __name__ == "__main__":
    main()
