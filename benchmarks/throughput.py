"""Uncapped throughput: the whole `bulk run` command beside the official async SDK client.

    python benchmarks/throughput.py [--rows 5000] [--concurrency 64] [--repeat 3]

Both sides run as their own process against the same simulator process (no
quota, no latency, no faults), each adding a snapshot callback to its own set of
domains, and both are timed from process start to exit: bulk's figure includes
interpreter start, imports, ingesting the input and every checkpoint commit.
Goal: bulk >= 1.5 x the SDK.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, domains_csv, machine, simulator


def timed(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, env=ENV, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    bulk_rates, sdk_rates = [], []
    with tempfile.TemporaryDirectory() as tmp, simulator("--qps", "1000000") as url:
        work = Path(tmp)
        for i in range(args.repeat):
            ours = domains_csv(work / f"bulk-{i}.csv", args.rows, prefix=f"b{i}-")
            theirs = domains_csv(work / f"sdk-{i}.csv", args.rows, prefix=f"s{i}-")
            bulk_cmd = [*BULK, "run", str(ours), "--action", "AddLiveSnapshotNotifyConfig",
                        "--set", "NotifyUrl=https://cb.example.com/x", "--endpoint", url, "--qps", "1000000",
                        "--concurrency", str(args.concurrency), "--quiet"]
            sdk_cmd = [sys.executable, str(Path(__file__).with_name("sdk_client.py")), url, str(theirs),
                       str(args.concurrency)]
            # Alternate which side goes first, so neither always gets a warmer machine.
            pair = [("bulk", bulk_cmd), ("sdk", sdk_cmd)] if i % 2 == 0 else [("sdk", sdk_cmd), ("bulk", bulk_cmd)]
            for name, command in pair:
                rate = args.rows / timed(command)
                (bulk_rates if name == "bulk" else sdk_rates).append(rate)
                print(f"  run {i + 1} {name:4}: {rate:8.1f} calls/s", flush=True)
    ours, theirs = statistics.median(bulk_rates), statistics.median(sdk_rates)
    ratio = ours / theirs
    ok = ratio >= 1.5
    print(f"throughput rows={args.rows} concurrency={args.concurrency}: bulk {ours:.1f} calls/s, "
          f"official async SDK {theirs:.1f} calls/s, ratio {ratio:.2f} (median of {args.repeat}) "
          f"-> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
