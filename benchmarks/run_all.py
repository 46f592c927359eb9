"""`make bench`: every benchmark of bulk, one after the other, then a summary with the machine.

    python benchmarks/run_all.py      # about 5 minutes: pace ~65 s, pace under faults ~35 s,
                                      # aiolimiter side by side ~70 s, throughput ~25 s, validate ~20 s,
                                      # resume ~60 s, 100 accounts ~15 s

Each benchmark prints the exact commands it times; the summary repeats its
verdict lines. Exit 1 if any goal is missed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["pace.py", "pace_faults.py", "pace_aiolimiter.py", "throughput.py", "validate_1m.py", "resume_1m.py",
              "accounts.py"]
VERDICT = re.compile(r"\b(PASS|FAIL)\b|info only|\(reference\)|^ *(latency|rows|round) ")


def main() -> int:
    print(f"machine: {machine()}", flush=True)
    summary: list[str] = []
    failed: list[str] = []
    for name in BENCHMARKS:
        command = f"python benchmarks/{name}"
        print(f"\n### {command}", flush=True)
        proc = subprocess.Popen([sys.executable, str(HERE / name)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        verdicts = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            if VERDICT.search(line):
                verdicts.append(line.rstrip())
        if proc.wait() != 0:
            failed.append(name)
        summary += [f"$ {command}   (exit {proc.returncode})", *(f"  {v}" for v in verdicts)]
    print(f"\n## summary\nmachine: {machine()}\n" + "\n".join(summary))
    print("all goals met" if not failed else f"goals missed in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
