"""Pace at --qps 30 with 0 ms and 1500 ms of service latency, measured at the simulator.

    python benchmarks/pace.py [--rows 900]

Goal: achieved calls/s >= 0.97 x 30 over the run, and never more than 30 calls
in any one-second window (the simulator counts arrivals per AccessKey and action).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AK_ID, BULK, ENV, ROOT, domains_csv, machine, sim_stats, simulator

QPS = 30
ACTION = "AddLiveSnapshotNotifyConfig"


def measure(latency_ms: int, rows: int, work: Path) -> dict[str, float]:
    src = domains_csv(work / f"pace-{latency_ms}.csv", rows)
    with simulator("--qps", str(QPS), "--latency-ms", str(latency_ms)) as url:
        command = [*BULK, "run", str(src), "--action", ACTION, "--set", "NotifyUrl=https://cb.example.com/x",
                   "--endpoint", url, "--qps", str(QPS), "--quiet", "--checkpoint", str(work / f"pace-{latency_ms}.ckpt")]
        started = time.monotonic()
        code = subprocess.call(command, env=ENV, cwd=ROOT)
        wall = time.monotonic() - started
        stats = sim_stats(url)
    pace = stats["pace"][f"{AK_ID}/{ACTION}"]
    return {
        "latency_ms": latency_ms, "exit": code, "rows": rows, "calls": pace["calls"], "wall_s": wall,
        "pace": pace["per_second"], "max_window": stats["max_window"],
        "throttled": stats["calls"][ACTION].get("Throttling.User", 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=900)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for latency in (0, 1500):
            r = measure(latency, args.rows, Path(tmp))
            ok = r["exit"] == 0 and r["pace"] >= 0.97 * QPS and r["max_window"] <= QPS and not r["throttled"]
            failed |= not ok
            print(
                f"pace latency={latency:>4} ms rows={r['rows']} calls={r['calls']:.0f} "
                f"achieved={r['pace']:.2f}/s ({r['pace'] / QPS:.3f} of quota) max-1s-window={r['max_window']} "
                f"throttled={r['throttled']} wall={r['wall_s']:.1f}s -> {'PASS' if ok else 'FAIL'}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
