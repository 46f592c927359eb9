"""The user's migration at --qps 30 under faults and network jitter, measured at the simulator.

    python benchmarks/pace_faults.py                 # 10,000 rows, about 6 minutes: the goals
    python benchmarks/pace_faults.py --rows 900      # a quick look (the time goal is then shown only)

The job, as the service treats it (issue 21): quota 30 calls/s per AccessKey
and operation; latency 120 +- 30 ms (normal, so nearly all of it in
60-180 ms); 0-20 ms of arrival jitter before a request is counted, more
than the pacer's starting margin (12 ms) covers; 4 % of calls faulted:
3 % 500 InternalError (half before applying, half after), 1 % throttling
answers (half 400 Throttling.User, half 503 Throttling); seeded. One whole
``bulk run`` at the defaults (the backup read on) over ROWS new domains.

Measured at the simulator, for the Add operation: arrivals per second
(everything that reached it: first attempts, retries, calls it refused),
the most in any one-second window, and the calls refused for the quota
(by the simulator's own count, apart from the injected throttles) for
every operation; and bulk's wall time from process start to exit.

Beside it, the Describe operation's: each row's backup read comes first
and the Adds can go no faster than the reads that succeed, so the Add
pace is at most the Describe pace x Adds a row / Describes a row (printed
as "the reads allow"). A row's Describes are its backup read, the reads
retried after a fault, and the read-backs (a Describe after an Add's
answer that proved nothing: a 409 to a resent Add, or no attempt left).

Goals, each with its PASS/FAIL line:
- pace at the simulator >= 0.95 x 30;
- no call refused for the quota after the first WARMUP seconds (the
  pacer may learn the jitter from a refusal or two at first);
- the run within 1.06 x the floor: the calls the Add operation needed,
  retries included (calls at the simulator less those it refused for the
  quota), divided by the quota. Judged at 10,000 rows; below that, start-up
  and the last answers weigh too much and the line is information only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AK_ID, BULK, ENV, ROOT, Simulator, domains_csv, machine, shown

QPS = 30
PACE_GOAL = 0.95
TIME_GOAL = 1.06
WARMUP = 5.0
TIMED_ROWS = 10_000
ACTION = "AddLiveSnapshotNotifyConfig"
READ = "DescribeLiveSnapshotNotifyConfig"
# Eight equal shares of a 4 % fault rate: 1.5 % 500 before applying, 1.5 % after, 1 % throttles.
FAULTS = ",".join(["internal_before"] * 3 + ["internal_after"] * 3 + ["throttle"] * 2)
THROTTLE_CODES = "Throttling.User,Throttling"  # in turn: half on a 400, half on a 503


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TIMED_ROWS)
    args = parser.parse_args()
    rows = args.rows
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, Simulator(
        qps=QPS, latency_ms=120, latency_jitter_ms=30, arrival_jitter_ms=20, error_rate=0.04, faults=FAULTS,
        throttle_codes=THROTTLE_CODES, seed=21,
    ) as sim:
        work = Path(tmp)
        src = domains_csv(work / "faults.csv", rows)
        command = [*BULK, "run", str(src), "--action", ACTION, "--set", "NotifyUrl=https://cb.example.com/x",
                   "--endpoint", sim.url, "--qps", str(QPS), "--quiet", "--checkpoint", str(work / "faults.ckpt")]
        print(f"$ {shown(sim.command)}\n$ {shown(command)}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, env=ENV, cwd=ROOT)
        wall = time.monotonic() - started
        stats = sim.stats()
    seen = stats["pace"][f"{AK_ID}/{ACTION}"]
    codes = stats["calls"].get(ACTION, {})
    refused = seen["refused"]
    late = {key.split("/", 1)[1]: p["last_refused"] for key, p in stats["pace"].items()
            if p["refused"] and p["last_refused"] > WARMUP}
    pace = seen["per_second"]
    floor = (seen["calls"] - refused) / QPS
    read = stats["pace"][f"{AK_ID}/{READ}"]
    read_codes = stats["calls"].get(READ, {})
    # Every Describe is a row's one successful backup read, a read that failed (any code but OK), or a read-back.
    read_backs = read["calls"] - rows - sum(n for code, n in read_codes.items() if code != "OK")
    allowed = read["per_second"] * seen["calls"] / read["calls"]
    print(f"\n{'rows':>6} {'Add calls':>9} {'200s':>6} {'500s':>5} {'400 thr':>7} {'503 thr':>7} {'refused':>7} "
          f"{'last s':>6} {'pace/s':>7} {'/quota':>6} {'max 1s':>6} {'wall s':>7} {'floor s':>7} {'/floor':>6}")
    last = "-" if seen["last_refused"] is None else f"{seen['last_refused']:.1f}"
    print(f"{rows:>6} {seen['calls']:>9} {codes.get('OK', 0):>6} {codes.get('InternalError', 0):>5} "
          f"{codes.get('Throttling.User', 0) - refused:>7} {codes.get('Throttling', 0):>7} {refused:>7} {last:>6} "
          f"{pace:>7.2f} {pace / QPS:>6.3f} {seen['max_window']:>6} {wall:>7.1f} {floor:>7.1f} {wall / floor:>6.3f}")
    print(f"Describe: {read['calls']} calls, {read['per_second'] / QPS:.3f} of the quota, max 1 s "
          f"{read['max_window']}, {read['refused']} refused; a row: {read['calls'] / rows:.4f} Describes, "
          f"{seen['calls'] / rows:.4f} Adds; read-backs {read_backs}; "
          f"the Add pace the reads allow: {allowed / QPS:.3f} of the quota")
    print(f"pace at the simulator >= {PACE_GOAL} x {QPS}: {verdict(code == 0 and pace >= PACE_GOAL * QPS)} "
          f"({pace / QPS:.3f}, exit {code})")
    print(f"no call refused for the quota after the first {WARMUP:g} s: {verdict(code == 0 and not late)} "
          f"({refused} Add calls refused, the last {last} s after the first arrival"
          + "".join(f"; {action}: last at {t:.1f} s" for action, t in late.items()) + ")")
    time_ok = code == 0 and wall <= TIME_GOAL * floor
    timed = rows >= TIMED_ROWS
    print(f"run within {TIME_GOAL} x the floor ({floor:.1f} s = {seen['calls'] - refused} calls / {QPS}): "
          f"{verdict(time_ok) if timed else f'info only below {TIMED_ROWS:,} rows'} "
          f"({wall:.1f} s = {wall / floor:.3f} x)")
    ok = code == 0 and pace >= PACE_GOAL * QPS and not late and (time_ok or not timed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
