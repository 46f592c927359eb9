"""Uncapped throughput: the whole `bulk run` command beside the official async SDK client.

    python benchmarks/throughput.py [--rows 5000] [--concurrency 64] [--repeat 3]

One simulator process (no quota to speak of, no latency, no faults). Each
round runs both sides as their own process, alternating which goes first, each
adding a snapshot callback to its own fresh set of domains (an Add of an
existing domain would get a 409). Both are timed from process start to exit:
bulk's figure includes interpreter start, imports, ingesting the input into
the checkpoint and every checkpoint commit. Every call must come back 200 (the
simulator's count is checked). Goal: median bulk calls/s >= 1.5 x median SDK.
bulk runs with --no-backup: like the SDK side, it then sends one call a row
(a backup adds a read per row, on the read action's own quota).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, Simulator, domains_csv, machine, shown

ACTION = "AddLiveSnapshotNotifyConfig"
SDK_CLIENT = Path(__file__).with_name("sdk_client.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    rates: dict[str, list[float]] = {"bulk": [], "sdk": []}
    with tempfile.TemporaryDirectory() as tmp, Simulator(qps=1_000_000) as sim:
        print(f"$ {shown(sim.command)}", flush=True)
        work = Path(tmp)
        for i in range(args.repeat):
            commands = {
                "bulk": [*BULK, "run", str(domains_csv(work / f"bulk-{i}.csv", args.rows, prefix=f"b{i}-")),
                         "--action", ACTION, "--set", "NotifyUrl=https://cb.example.com/x", "--endpoint", sim.url,
                         "--qps", "100000", "--concurrency", str(args.concurrency), "--quiet", "--no-backup",
                         "--checkpoint", str(work / f"bulk-{i}.ckpt")],
                "sdk": [sys.executable, str(SDK_CLIENT), sim.url,
                        str(domains_csv(work / f"sdk-{i}.csv", args.rows, prefix=f"s{i}-")), str(args.concurrency)],
            }
            # Alternate which side goes first, so neither always gets the warmer (or busier) machine.
            for side in ("bulk", "sdk") if i % 2 == 0 else ("sdk", "bulk"):
                if i == 0:
                    print(f"$ {shown(commands[side])}", flush=True)
                ok_before, cpu_before = sim.stats()["calls"].get(ACTION, {}).get("OK", 0), sim.cpu_seconds()
                started = time.monotonic()
                subprocess.run(commands[side], env=ENV, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                wall = time.monotonic() - started
                ok = sim.stats()["calls"].get(ACTION, {}).get("OK", 0) - ok_before
                if ok != args.rows:
                    raise SystemExit(f"{side}: {ok} of {args.rows} calls answered 200 at the simulator")
                rates[side].append(args.rows / wall)
                print(f"  round {i + 1} {side:4}: {wall:6.2f} s  {args.rows / wall:7.1f} calls/s  "
                      f"(simulator CPU {sim.cpu_seconds() - cpu_before:.2f} s)", flush=True)
    ours, theirs = statistics.median(rates["bulk"]), statistics.median(rates["sdk"])
    ratio = ours / theirs
    ok = ratio >= 1.5
    print(f"throughput rows={args.rows} concurrency={args.concurrency} (median of {args.repeat}): "
          f"bulk {ours:.1f} calls/s, official async SDK {theirs:.1f} calls/s, ratio {ratio:.2f} "
          f"(goal >= 1.5) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
