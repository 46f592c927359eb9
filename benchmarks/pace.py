"""Pace at --qps 30 with no faults, at 40 ms and 1,500 ms of service latency, measured at the simulator.

    python benchmarks/pace.py [--rows 900]

For each latency, a fresh simulator process (quota 30 per AccessKey and
operation, that latency) and one whole ``bulk run`` over ROWS new domains.
The simulator stamps every arrival: pace = (arrivals - 1) / (last arrival -
first arrival), and the most arrivals in any one-second window, per
AccessKey and operation (``/_sim/stats`` "pace"). bulk's own ``--log-file``
gives a second opinion on the pace (completion time minus latency of each
attempt). Goal: pace >= 0.985 x 30, no window above 30, every row done,
nothing throttled.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import AK_ID, BULK, ENV, ROOT, Simulator, domains_csv, machine, shown

QPS = 30
GOAL = 0.985
ACTION = "AddLiveSnapshotNotifyConfig"


def log_pace(path: Path) -> float:
    """ACTION calls/s between the first and the last send, as bulk's attempt log sees them (not its backup reads)."""
    entries = [e for e in map(json.loads, path.read_text().splitlines()) if e["action"] == ACTION]
    sends = sorted(e["time"] - e["latency_ms"] / 1000 for e in entries)
    return (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 else 0.0


def measure(latency_ms: int, rows: int, work: Path) -> dict:
    src = domains_csv(work / f"pace-{latency_ms}.csv", rows)
    log = work / f"pace-{latency_ms}.log.jsonl"
    with Simulator(qps=QPS, latency_ms=latency_ms) as sim:
        command = [*BULK, "run", str(src), "--action", ACTION, "--set", "NotifyUrl=https://cb.example.com/x",
                   "--endpoint", sim.url, "--qps", str(QPS), "--quiet",
                   "--checkpoint", str(work / f"pace-{latency_ms}.ckpt"), "--log-file", str(log)]
        print(f"$ {shown(sim.command)}\n$ {shown(command)}", flush=True)
        code = subprocess.call(command, env=ENV, cwd=ROOT)
        stats = sim.stats()
    seen = stats["pace"][f"{AK_ID}/{ACTION}"]
    codes = stats["calls"].get(ACTION, {})
    return {
        "latency_ms": latency_ms, "exit": code, "rows": rows, "calls": seen["calls"], "ok": codes.get("OK", 0),
        "throttled": codes.get("Throttling.User", 0), "pace": seen["per_second"], "span_s": seen["seconds"],
        "log_pace": log_pace(log), "max_window": max(p["max_window"] for p in stats["pace"].values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=900)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(latency, args.rows, Path(tmp)) for latency in (40, 1500)]
    print(f"\n{'latency':>8} {'rows':>5} {'calls':>5} {'200s':>5} {'span s':>7} {'pace/s':>7} {'/quota':>7} "
          f"{'log pace':>8} {'max 1s':>6} {'throttled':>9}  goal")
    failed = False
    for r in results:
        ok = (r["exit"] == 0 and r["ok"] == r["rows"] and not r["throttled"]
              and r["pace"] >= GOAL * QPS and r["max_window"] <= QPS)
        failed |= not ok
        print(f"{r['latency_ms']:>6}ms {r['rows']:>5} {r['calls']:>5} {r['ok']:>5} {r['span_s']:>7.2f} "
              f"{r['pace']:>7.2f} {r['pace'] / QPS:>7.3f} {r['log_pace']:>8.2f} {r['max_window']:>6} "
              f"{r['throttled']:>9}  {'PASS' if ok else 'FAIL'} (exit {r['exit']})")
    print(f"goal: pace >= {GOAL * QPS:.2f}/s ({GOAL} x {QPS}) and no 1-s window above {QPS} per AccessKey and "
          "operation, all rows 200, none throttled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
