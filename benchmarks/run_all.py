"""`make bench`: every benchmark of bulk, one after the other, with the machine they ran on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["pace.py", "throughput.py", "validate_1m.py"]


def main() -> int:
    print(f"machine: {machine()}", flush=True)
    failed = []
    for name in BENCHMARKS:
        print(f"\n$ python benchmarks/{name}", flush=True)
        if subprocess.call([sys.executable, str(HERE / name)]) != 0:
            failed.append(name)
    print("\nall goals met" if not failed else f"\ngoals missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
