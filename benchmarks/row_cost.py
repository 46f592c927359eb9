"""The cost of a row: bulk's own CPU per row, at the defaults and with --no-backup, beside bare aiohttp.

    python benchmarks/row_cost.py [--rows 10000] [--concurrency 64] [--repeat 3] [--profile OUT.prof]

Why CPU and not wall time: the machine is shared and wall time moves with
whatever else runs; the CPU seconds a process spends on its own work move
much less. The simulator (``bulk sim serve``, no quota, no latency) runs
pinned to CPU 1 and every timed process to CPU 0 (``taskset``), so the two
never share a core. Each side is one process started from scratch; its
user + system seconds come from ``os.wait4`` when it exits.

Sides, each sending one Add per row of fresh domains:

- defaults: ``bulk run`` as users run it, with the backup read before each
  write (two calls a row: Describe, then Add);
- no-backup: ``bulk run --no-backup`` (one call a row);
- bare: ``bare_client.py``, one aiohttp session signing with bulk's signer
  and nothing else (one call a row): the floor.

Two figures per side: the whole process over the rows (what a user pays,
interpreter start and imports included) and the marginal cost of a row
(the difference between a run of ``--rows`` rows and one of ``--rows / 10``,
over the difference in rows: start-up cancels out). The goals (issue 21)
are on the whole-process figure: at most 400 us a row at the defaults and
200 us with --no-backup. ``--profile`` runs bulk at the defaults once under
cProfile instead and writes the stats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import BULK, ENV, ROOT, Simulator, compile_bulk, domains_csv, machine, shown

ACTION = "AddLiveSnapshotNotifyConfig"
HERE = Path(__file__).parent
SIDES = ("defaults", "no-backup", "bare")
#: microseconds of CPU a row, whole process: at most this much
GOALS = {"defaults": 400.0, "no-backup": 200.0}
CPU0, CPU1 = ["taskset", "-c", "0"], ["taskset", "-c", "1"]


def cpu_seconds(command: list[str], *, cwd: Path = ROOT) -> float:
    """Run ``command`` to the end; the user + system CPU seconds it used (exit status checked)."""
    proc = subprocess.Popen(command, env=ENV, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"exit {proc.returncode}: {shown(command)}")
    return usage.ru_utime + usage.ru_stime


def command(side: str, url: str, csv: Path, ckpt: Path, concurrency: int) -> list[str]:
    """The command line of one side."""
    if side == "bare":
        return [*CPU0, sys.executable, str(HERE / "bare_client.py"), url, str(csv), str(concurrency)]
    more = ["--no-backup"] if side == "no-backup" else []
    return [*CPU0, *BULK, "run", str(csv), "--action", ACTION, "--set", "NotifyUrl=https://cb.example.com/x",
            "--endpoint", url, "--qps", "100000", "--concurrency", str(concurrency), "--quiet", *more,
            "--checkpoint", str(ckpt)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="run bulk at the defaults once under cProfile, stats here")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    compile_bulk()
    small = max(1, args.rows // 10)
    whole: dict[str, list[float]] = {side: [] for side in SIDES}
    marginal: dict[str, list[float]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp, Simulator(qps=1_000_000, wrap=CPU1) as sim:
        print(f"$ {shown(sim.command)}", flush=True)
        work = Path(tmp)
        if args.profile is not None:
            csv = domains_csv(work / "prof.csv", args.rows, prefix="prof-")
            run = command("defaults", sim.url, csv, work / "prof.ckpt", args.concurrency)
            run[run.index("-m")] = "-mcProfile"
            run[run.index("-mcProfile") + 1:run.index("-mcProfile") + 1] = ["-o", str(args.profile), "-m"]
            print(f"$ {shown(run)}", flush=True)
            cpu_seconds(run)
            return 0
        for i in range(args.repeat):
            for side in SIDES[i % 3:] + SIDES[:i % 3]:
                cpu = {}
                for n in (small, args.rows):
                    csv = domains_csv(work / f"{side}-{i}-{n}.csv", n, prefix=f"{side}{i}n{n}-")
                    run = command(side, sim.url, csv, work / f"{side}-{i}-{n}.ckpt", args.concurrency)
                    if i == 0 and n == args.rows:
                        print(f"$ {shown(run)}", flush=True)
                    cpu[n] = cpu_seconds(run)
                whole[side].append(cpu[args.rows] / args.rows * 1e6)
                marginal[side].append((cpu[args.rows] - cpu[small]) / (args.rows - small) * 1e6)
                print(f"  round {i + 1} {side:9}: {cpu[args.rows]:6.2f} s CPU for {args.rows} rows = "
                      f"{whole[side][-1]:5.0f} us a row; {cpu[small]:5.2f} s for {small}: "
                      f"marginal {marginal[side][-1]:5.0f} us a row", flush=True)
        stats = sim.stats()
    calls = stats["calls"]
    print(f"simulator: {sum(calls.get(ACTION, {}).values())} Adds, "
          f"{sum(calls.get('DescribeLiveSnapshotNotifyConfig', {}).values())} Describes")
    ok = True
    for side in SIDES:
        w, m = statistics.median(whole[side]), statistics.median(marginal[side])
        line = f"row cost {side:9} (median of {args.repeat}): {w:5.0f} us a row whole process, {m:5.0f} marginal"
        if side in GOALS:
            met = w <= GOALS[side]
            ok = ok and met
            line += f"; goal <= {GOALS[side]:g} -> {'PASS' if met else 'FAIL'}"
        else:
            line += " (reference)"
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
