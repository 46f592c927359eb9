"""`bulk validate` of a 1,000,000-row CSV shaped like real input: wall time and peak RSS of the whole command.

    python benchmarks/validate_1m.py [--rows 1000000] [--repeat 3] [--keep domains.csv]

The input has the four columns of AddLiveSnapshotNotifyConfig: DomainName
(some in capitals or with a trailing dot, a few internationalized), a
NotifyUrl unique to each row, NotifyReqAuth (yes for 60% of rows) and
NotifyAuthKey (set when auth is on, and on some rows without it), with one
bad key every 50,000 rows and one domain listed twice every 100,000. It is
written first, untimed (``--keep`` keeps it). Then the whole command runs as
a child process, `repeat` times: wall time from its start to its exit,
imports included, and its peak RSS from os.wait4. The verdict checks the
counts the command prints. Goal: median under 6 s, every run under 120 MB.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, machine, shown

ACTION = "AddLiveSnapshotNotifyConfig"
GOAL_SECONDS, GOAL_MB = 6.0, 120.0
_ALNUM = string.ascii_letters + string.digits


def write_input(path: Path, rows: int, *, seed: int = 1) -> int:
    """Write the CSV; return how many of its rows are invalid."""
    rng = random.Random(seed)
    invalid = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("DomainName,NotifyUrl,NotifyReqAuth,NotifyAuthKey\r\n")
        previous = ""
        for i in range(rows):
            domain = f"live{i:07d}.example.com"
            if i % 100_000 == 99_999:
                domain = previous.upper()  # the same name as the row before, as DNS compares names
                invalid += 1
            elif i % 10_007 == 0:
                domain = f"直播{i}.example.cn"
            elif i % 97 == 0:
                domain = domain.upper()
            elif i % 101 == 0:
                domain += "."
            previous = domain
            url = f"https://snap-cb{i % 7}.example.com/live/snapshot/v2/{domain.lower()}?tenant=t{i % 1000:03d}"
            auth = "yes" if rng.random() < 0.6 else "no"
            key = "".join(rng.choices(_ALNUM, k=32)) if auth == "yes" or rng.random() < 0.2 else ""
            if i % 50_000 == 25_000:
                key = key[:15] or "short"  # too short: the row is refused
                invalid += 1
            f.write(f"{domain},{url},{auth},{key}\r\n")
    return invalid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the input here and keep it")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = args.keep or Path(tmp) / "domains.csv"
        invalid = write_input(src, args.rows)
        expected = f"{args.rows + 1} lines: 1 header, {args.rows} rows: {args.rows - invalid} valid, {invalid} invalid"
        command = [*BULK, "validate", str(src), "--action", ACTION]
        print(f"$ {shown(command)}   # {args.rows} rows, {src.stat().st_size / 1e6:.1f} MB, expect {expected!r}",
              flush=True)
        walls, rss = [], []
        said = ""
        ok = True
        for run in range(1, args.repeat + 1):
            out = Path(tmp) / "validate.out"
            with out.open("w") as sink:
                started = time.monotonic()
                proc = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=sink)
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.monotonic() - started
            proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped by wait4, tell Popen
            lines = out.read_text().strip().splitlines()
            said = lines[-1] if lines else "(nothing)"
            mb = usage.ru_maxrss * 1024 / 1e6  # ru_maxrss is in KiB on Linux
            walls.append(wall)
            rss.append(mb)
            ok = ok and code == 1 and said == expected  # exit 1: the file has invalid rows
            print(f"run {run}: {wall:.2f} s wall ({usage.ru_utime:.2f} s user, {usage.ru_stime:.2f} s sys), "
                  f"peak RSS {mb:.1f} MB, exit {code}, said {said!r}", flush=True)
    median = statistics.median(walls)
    ok = ok and median < GOAL_SECONDS and max(rss) < GOAL_MB
    print(f"validate rows={args.rows}: median {median:.2f} s wall (min {min(walls):.2f}), peak RSS {max(rss):.1f} MB "
          f"(goal < {GOAL_SECONDS:g} s, < {GOAL_MB:g} MB, counts as expected) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
