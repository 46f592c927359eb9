"""Validating a 1,000,000-row CSV: wall time and peak RSS of the whole process.

    python benchmarks/bench_validate.py            # bulk.inputs.validate_file in a fresh interpreter
    python benchmarks/bench_validate.py --cli      # `python -m bulk validate FILE --action ...` instead

The CSV (DomainName,NotifyUrl, every row valid and distinct) is written to a
temporary directory first, untimed. The child process is timed from its
start to its exit, imports included; its peak RSS is ru_maxrss of the
children. Goal: under 20 s and under 120 MB.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, shown

ACTION = "AddLiveSnapshotNotifyConfig"
GOAL_SECONDS, GOAL_MB = 20.0, 120.0
# The library call alone: what the engine and the CLI add on top is measured by --cli.
CHILD = """
import sys
from pathlib import Path
from bulk.actions import resolve
from bulk.inputs import validate_file
s = validate_file(Path(sys.argv[1]), resolve(sys.argv[2]))
print(f"{s.total} rows: {s.valid} valid, {s.bad_count} invalid")
sys.exit(1 if s.bad_count else 0)
"""


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as f:
        f.write("DomainName,NotifyUrl\n")
        f.writelines(f"live{i:07d}.example.com,https://cb.example.com/snapshots\n" for i in range(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cli", action="store_true", help="run `python -m bulk validate` rather than the library call")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "domains.csv"
        write_csv(src, args.rows)
        if args.cli:
            command = [sys.executable, "-m", "bulk", "validate", str(src), "--action", ACTION]
        else:
            command = [sys.executable, "-c", CHILD, str(src), ACTION]
        label = shown(command) if args.cli else f"python -c 'validate_file({src.name}, {ACTION})'"
        print(f"$ {label}   # {args.rows} rows, {src.stat().st_size / 1e6:.1f} MB", flush=True)
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_mb = usage.ru_maxrss * 1024 / 1e6  # ru_maxrss is in KiB on Linux
    said = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    ok = proc.returncode == 0 and wall < GOAL_SECONDS and rss_mb < GOAL_MB
    print(f"validate{' (cli)' if args.cli else ''} rows={args.rows}: {wall:.2f} s wall "
          f"({usage.ru_utime:.2f} s user, {usage.ru_stime:.2f} s sys), peak RSS {rss_mb:.1f} MB, "
          f"exit {proc.returncode}, said {said!r} "
          f"(goal < {GOAL_SECONDS:g} s, < {GOAL_MB:g} MB) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
