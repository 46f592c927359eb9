"""`bulk validate` of a 1,000,000-row CSV: wall time and the peak RSS of the process.

    python benchmarks/validate_1m.py [--rows 1000000]

The CSV (DomainName,NotifyUrl; all rows valid) is written first and not timed;
then the whole command runs as a child process, timed from its start to its
exit, and its peak RSS is read from os.wait4. Goal: under 20 s and under 120 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, machine, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "million.csv", Path(tmp) / "validate.out"
        with src.open("w") as f:
            f.write("DomainName,NotifyUrl\n")
            f.writelines(f"live{i:07d}.example.com,https://cb.example.com/snapshots\n" for i in range(args.rows))
        command = [*BULK, "validate", str(src), "--action", "AddLiveSnapshotNotifyConfig"]
        print(f"$ {shown(command)}   # {src.stat().st_size / 1e6:.1f} MB input", flush=True)
        with out.open("w") as sink:
            started = time.monotonic()
            proc = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=sink)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped by wait4, tell Popen
        lines = out.read_text().strip().splitlines()
    rss_mb = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    ok = code == 0 and wall < 20 and rss_mb < 120
    print(f"validate rows={args.rows}: {wall:.2f} s wall ({usage.ru_utime:.2f} s user, {usage.ru_stime:.2f} s sys), "
          f"peak RSS {rss_mb:.1f} MiB = {usage.ru_maxrss * 1024 / 1e6:.1f} MB, exit {code}, said {lines[-1] if lines else '(nothing)'!r} "
          f"(goal < 20 s, < 120 MB) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
