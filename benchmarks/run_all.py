"""`make bench`: every benchmark of bulk, one after the other, then a PASS/FAIL line per goal.

    python benchmarks/run_all.py                      # all of them, about 15 minutes on an idle machine
    python benchmarks/run_all.py pace_faults.py       # only these (the other goals then read "not run")

Each benchmark prints the exact commands it times and a verdict line per
goal of its own; the summary repeats those lines, then states each goal of
issue 21 once, PASS or FAIL, from the line of the benchmark that measures
it. A goal no benchmark printed a line for reads FAIL ("not measured"), so
a benchmark that stops measuring something shows itself too. Exit 1 if
any benchmark missed a goal or any goal below is not met. Run it on an
idle machine: every figure here is wall time or pace, and a shared machine
moves both (docs/performance.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from common import machine

HERE = Path(__file__).resolve().parent
#: in the order they run; one that is not there (yet) is said so and its goals read "not measured"
BENCHMARKS = ["pace.py", "pace_faults.py", "pace_aiolimiter.py", "throughput.py", "row_cost.py", "validate_1m.py",
              "resume_1m.py", "accounts.py"]
VERDICT = re.compile(r"\b(PASS|FAIL)\b|info only|\(reference\)|^ *(latency|rows|round) ")
#: issue 21's goals: (the goal, the benchmark that measures it, its verdict line; ``verdict`` names PASS or FAIL)
GOALS = [
    ("pace under faults and 0-20 ms jitter >= 0.95 of the quota", "pace_faults.py",
     r"^pace at the simulator >= 0\.95 x 30: (?P<verdict>PASS|FAIL)"),
    ("no call refused for the quota after the first seconds", "pace_faults.py",
     r"^no call refused for the quota after .*?: (?P<verdict>PASS|FAIL)"),
    ("10,000 rows under faults within 1.06 x the floor", "pace_faults.py",
     r"^run within 1\.06 x the floor .*?: (?P<verdict>PASS|FAIL)"),
    ("100 accounts >= 0.9 of their quotas, none over it in any 1 s window", "accounts.py",
     r"^(?P<verdict>PASS|FAIL): aggregate .*goal >= 0\.9"),
    ("CPU per row at the defaults <= 400 us", "row_cost.py",
     r"^row cost defaults .*goal <= 400 -> (?P<verdict>PASS|FAIL)"),
    ("CPU per row with --no-backup <= 200 us", "row_cost.py",
     r"^row cost no-backup .*goal <= 200 -> (?P<verdict>PASS|FAIL)"),
    ("uncapped, like for like (--no-backup) >= 3x the official async SDK", "throughput.py",
     r"bulk/sdk [\d.]+ \(goal >= 3(\.0)?\) -> (?P<verdict>PASS|FAIL)"),
    ("uncapped at the defaults (two calls a row) >= 1.5x the SDK's one call a row", "throughput.py",
     r"defaults.*\(goal >= 1\.5\) -> (?P<verdict>PASS|FAIL)"),
]


def run(name: str) -> tuple[int, list[str]]:
    """Run one benchmark, echoing its output; its exit code and every line it printed."""
    proc = subprocess.Popen([sys.executable, str(HERE / name)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip())
    return proc.wait(), lines


def goal_lines(outputs: dict[str, list[str]]) -> tuple[list[str], bool]:
    """One line per goal of issue 21, and whether all of them were met."""
    lines, met = [], True
    for goal, name, pattern in GOALS:
        if name not in outputs:
            lines.append(f"FAIL {goal}: not run ({name})")
            met = False
            continue
        found = [(m, line) for line in outputs[name] if (m := re.search(pattern, line))]
        if not found:
            lines.append(f"FAIL {goal}: not measured (no such line from {name})")
            met = False
            continue
        match, line = found[-1]
        met = met and match["verdict"] == "PASS"
        lines.append(f"{match['verdict']} {goal}: {line.strip()}")
    return lines, met


def main() -> int:
    chosen = sys.argv[1:] or BENCHMARKS
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; expected some of {', '.join(BENCHMARKS)}")
    print(f"machine: {machine()}", flush=True)
    summary: list[str] = []
    failed: list[str] = []
    outputs: dict[str, list[str]] = {}
    for name in (n for n in BENCHMARKS if n in chosen):
        command = f"python benchmarks/{name}"
        print(f"\n### {command}", flush=True)
        if not (HERE / name).exists():
            print(f"(no {name} in this checkout)")
            summary.append(f"$ {command}   (not in this checkout)")
            continue
        code, outputs[name] = run(name)
        if code != 0:
            failed.append(name)
        summary += [f"$ {command}   (exit {code})", *(f"  {line}" for line in outputs[name] if VERDICT.search(line))]
    goals, met = goal_lines(outputs)
    print(f"\n## summary\nmachine: {machine()}\n" + "\n".join(summary))
    print("\n## goals (issue 21)\n" + "\n".join(goals))
    print("all goals met" if met and not failed else
          "goals missed" + (f" in: {', '.join(failed)}" if failed else ""))
    return 0 if met and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
