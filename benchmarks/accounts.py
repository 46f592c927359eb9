"""Many accounts at their quota in one run: the whole `bulk run` command across 100 aliyun CLI profiles.

    python benchmarks/accounts.py [--accounts 100] [--rows 300 x accounts] [--qps 30] [--latency-ms 40] [--pin]
                                  [--no-backup]

One simulator process that accepts ``--accounts`` AccessKeys, each with the
service's quota of ``--qps`` calls/s per (AccessKey, operation). A temporary
HOME holds an aliyun CLI config with one AK profile per account, and the
input names them in turn in a Profile column (``--rows`` rows, 300 per
account by default). bulk runs with ``--qps`` at the defaults: a backup read
(DescribeLiveSnapshotNotifyConfig, on its own quota) before each Add, two
calls a row; ``--no-backup`` passes it on (one call a row). It is timed from
process start to exit: interpreter start, imports, ingest and every
checkpoint commit count. The aggregate counts Adds (rows), each account's
quota is checked for both operations.
``--pin`` puts the simulator on CPU 1 and bulk on CPU 0, so the two do not
share a core.

Goal: an aggregate of at least 0.9 x accounts x qps calls/s over the whole
command (2,700 calls/s for 100 x 30), every row done, and no AccessKey over
its quota in any 1 s window at the server (no throttling answer).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BULK, ENV, ROOT, Simulator, machine, shown

ACTION = "AddLiveSnapshotNotifyConfig"
READ = "DescribeLiveSnapshotNotifyConfig"
GOAL = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--rows", type=int, help="rows in all (default: 300 a account)")
    parser.add_argument("--qps", type=float, default=30)
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--pin", action="store_true", help="simulator on CPU 1, bulk on CPU 0")
    parser.add_argument("--no-backup", action="store_true", help="pass --no-backup to bulk (one call a row)")
    args = parser.parse_args()
    args.rows = args.rows or 300 * args.accounts
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        keys = {f"LTAIacct{i:03d}": f"secret-{i:03d}-not-a-real-key" for i in range(args.accounts)}
        keys_file = home / "keys.csv"
        keys_file.write_text("AccessKeyId,AccessKeySecret\n" + "".join(f"{k},{s}\n" for k, s in keys.items()))
        keys_file.chmod(0o600)
        (home / ".aliyun").mkdir()
        (home / ".aliyun" / "config.json").write_text(json.dumps({"profiles": [
            {"name": f"acct{i:03d}", "mode": "AK", "access_key_id": k, "access_key_secret": s}
            for i, (k, s) in enumerate(keys.items())]}))
        src = home / "fleet.csv"
        with src.open("w") as f:
            f.write("DomainName,Profile\n")
            f.writelines(f"d{i:07d}.example.com,acct{i % args.accounts:03d}\n" for i in range(args.rows))
        env = {**ENV, "HOME": str(home)}
        pin_sim = ["taskset", "-c", "1"] if args.pin else []
        pin_bulk = ["taskset", "-c", "0"] if args.pin else []
        with Simulator(qps=args.qps, latency_ms=args.latency_ms, access_keys_file=str(keys_file),
                       wrap=pin_sim) as sim:
            command = [*pin_bulk, *BULK, "run", str(src), "--action", ACTION,
                       "--set", "NotifyUrl=https://cb.example.com/snap", "--endpoint", sim.url,
                       "--qps", f"{args.qps:g}", *(["--no-backup"] if args.no_backup else []), "--quiet",
                       "--checkpoint", str(home / "fleet.ckpt")]
            print(f"$ {shown(command)}", flush=True)
            started = time.perf_counter()
            proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            stats = sim.stats()
            sim_cpu = sim.cpu_seconds()
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        print(f"FAIL: bulk exited {proc.returncode}")
        return 1
    pace = {k: v for k, v in stats["pace"].items() if k.endswith(f"/{ACTION}")}
    codes = stats["calls"].get(ACTION, {})
    reads = stats["calls"].get(READ, {})
    # Every operation of every account: the quota holds for the backup's reads as for the Adds.
    worst = max(v["max_window"] for v in stats["pace"].values())
    rate = args.rows / elapsed
    target = args.accounts * args.qps
    print(f"{args.accounts} accounts x {args.qps:g} calls/s, {args.rows} rows, latency {args.latency_ms:g} ms"
          f"{', pinned' if args.pin else ''}{', --no-backup' if args.no_backup else ', at the defaults (backup read)'}")
    print(f"  whole command: {elapsed:.2f} s, {rate:.0f} calls/s = {rate / target:.3f} of {target:g}")
    print(f"  answers: {codes}; backup reads: {reads}; accounts seen: {len(pace)}; "
          f"most calls of one account and operation in any 1 s window: {worst}")
    print(f"  simulator CPU: {sim_cpu:.1f} s ({sim_cpu / elapsed:.2f} of one core)")
    spans = sorted(v["seconds"] for v in pace.values())
    print(f"  each account's calls, first to last: {spans[0]:.2f} to {spans[-1]:.2f} s "
          f"({min(v['per_second'] for v in pace.values()):.2f} to {max(v['per_second'] for v in pace.values()):.2f} "
          f"calls/s); the rest of the command is start-up, ingest and the last answers")
    ok = (rate >= GOAL * target and worst <= args.qps and codes == {"OK": args.rows}
          and len(pace) == args.accounts and (args.no_backup or reads == {"OK": args.rows}))
    print(f"{'PASS' if ok else 'FAIL'}: aggregate {rate / target:.3f} of accounts x qps (goal >= {GOAL}), "
          f"at most {worst} per account in a 1 s window (quota {args.qps:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
