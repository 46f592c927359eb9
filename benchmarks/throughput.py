"""Uncapped throughput: the whole `bulk run` command beside the official async SDK and bare aiohttp.

    python benchmarks/throughput.py [--rows 5000] [--concurrency 64] [--repeat 3]

One simulator process (no quota to speak of, no latency, no faults). Each
round runs the four sides, each as its own process, in an order that
rotates from round to round, each adding a snapshot callback to its own
fresh set of domains (an Add of an existing domain would get a 409):

- bulk: the whole ``bulk run`` command with ``--no-backup`` (one call a row,
  like the other sides), with its pacer, checkpoint and retry policy; its
  figure includes interpreter start, imports, ingesting the input into the
  checkpoint and every checkpoint commit;
- defaults: the same command as users run it, backup on: a Describe, its
  backup record, then the Add (two calls a row);
- sdk: Alibaba's official async SDK client (``sdk_client.py``);
- bare: one aiohttp session signing with bulk's own ``bulk.signing.sign``
  and nothing else (``bare_client.py``): the floor of what Python and aiohttp
  do on this machine.

Each is timed from process start to exit, with bulk's modules compiled to
bytecode beforehand (as an install does). The simulator's counts are checked
for every side: exactly one Add a row, each answered 200 and applied, and
no other call but the defaults' one Describe a row. Goals, on the median
rows/s (for the one-call sides, calls/s): bulk >= 3.0 x the SDK's and
>= 0.8 x bare aiohttp's, like for like; bulk at the defaults >= 1.5 x the
SDK's (issue 21), two calls a row against its one.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, Simulator, compile_bulk, domains_csv, machine, shown

ACTION = "AddLiveSnapshotNotifyConfig"
HERE = Path(__file__).parent
SIDES = ("bulk", "defaults", "sdk", "bare")
#: (bulk's side, the other side): the least ratio of their rows/s
GOALS = {("bulk", "sdk"): 3.0, ("bulk", "bare"): 0.8, ("defaults", "sdk"): 1.5}
#: calls a row of each side
CALLS = {"defaults": 2}


def counts(sim: Simulator) -> tuple[int, int, int, int]:
    """Calls the simulator has seen: all of them, this action's, those answered 200, changes applied."""
    stats = sim.stats()
    codes = stats["calls"].get(ACTION, {})
    return stats["total"], sum(codes.values()), codes.get("OK", 0), stats["applied"].get(ACTION, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    compile_bulk()
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp, Simulator(qps=1_000_000) as sim:
        print(f"$ {shown(sim.command)}", flush=True)
        work = Path(tmp)
        for i in range(args.repeat):
            csvs = {side: domains_csv(work / f"{side}-{i}.csv", args.rows, prefix=f"{side}{i}-") for side in SIDES}
            commands = {
                "bulk": [*BULK, "run", str(csvs["bulk"]), "--action", ACTION, "--set",
                         "NotifyUrl=https://cb.example.com/x", "--endpoint", sim.url, "--qps", "100000",
                         "--concurrency", str(args.concurrency), "--quiet", "--no-backup",
                         "--checkpoint", str(work / f"bulk-{i}.ckpt")],
                "defaults": [*BULK, "run", str(csvs["defaults"]), "--action", ACTION, "--set",
                             "NotifyUrl=https://cb.example.com/x", "--endpoint", sim.url, "--qps", "100000",
                             "--concurrency", str(args.concurrency), "--quiet",
                             "--checkpoint", str(work / f"defaults-{i}.ckpt")],
                "sdk": [sys.executable, str(HERE / "sdk_client.py"), sim.url, str(csvs["sdk"]), str(args.concurrency)],
                "bare": [sys.executable, str(HERE / "bare_client.py"), sim.url, str(csvs["bare"]),
                         str(args.concurrency)],
            }
            # Rotate which side goes first, so none always gets the warmer (or busier) machine.
            for side in SIDES[i % len(SIDES):] + SIDES[:i % len(SIDES)]:
                if i == 0:
                    print(f"$ {shown(commands[side])}", flush=True)
                before, cpu_before = counts(sim), sim.cpu_seconds()
                started = time.monotonic()
                subprocess.run(commands[side], env=ENV, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                wall = time.monotonic() - started
                total, calls, ok, applied = (b - a for a, b in zip(before, counts(sim), strict=True))
                per_row = CALLS.get(side, 1)
                if not (total == per_row * args.rows and calls == ok == applied == args.rows):
                    raise SystemExit(f"{side}: {args.rows} rows, but the simulator saw {total} calls, {calls} of "
                                     f"{ACTION}, {ok} answered 200, {applied} applied")
                rates[side].append(args.rows / wall)
                print(f"  round {i + 1} {side:8}: {wall:6.2f} s  {args.rows / wall:7.1f} rows/s "
                      f"{per_row * args.rows / wall:7.1f} calls/s  "
                      f"(simulator CPU {sim.cpu_seconds() - cpu_before:.2f} s)", flush=True)
    medians = {side: statistics.median(rates[side]) for side in SIDES}
    met = {pair: medians[pair[0]] / medians[pair[1]] >= goal for pair, goal in GOALS.items()}
    print(f"throughput rows={args.rows} concurrency={args.concurrency} (median of {args.repeat}, rows/s): "
          f"bulk --no-backup {medians['bulk']:.1f}, bulk at the defaults {medians['defaults']:.1f} "
          f"({CALLS['defaults'] * medians['defaults']:.1f} calls/s), official async SDK {medians['sdk']:.1f}, "
          f"bare aiohttp {medians['bare']:.1f}")
    for (side, other), goal in GOALS.items():
        print(f"  {side}/{other} {medians[side] / medians[other]:.2f} (goal >= {goal}) -> "
              f"{'PASS' if met[side, other] else 'FAIL'}")
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
