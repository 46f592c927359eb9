"""`bulk validate` of a 1,000,000-row CSV: wall time and the peak RSS of the process.

    python benchmarks/validate_1m.py [--rows 1000000]

Goal: under 20 s and under 120 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "million.csv"
        with src.open("w") as f:
            f.write("DomainName,NotifyUrl\n")
            for i in range(args.rows):
                f.write(f"live{i:07d}.example.com,https://cb.example.com/snapshots\n")
        command = [*BULK, "validate", str(src), "--action", "AddLiveSnapshotNotifyConfig"]
        started = time.monotonic()
        proc = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        summary = proc.stdout.read().strip().splitlines()[-1] if proc.stdout else ""
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    ok = os.waitstatus_to_exitcode(status) == 0 and wall < 20 and rss_mb < 120
    print(f"validate rows={args.rows}: {wall:.1f} s, peak RSS {rss_mb:.0f} MB ({summary}) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
