"""`make demo`: a real job against the built-in simulator, with faults on.

1. starts ``bulk sim serve`` on a free loopback port (20 ms latency, 8 % faults);
2. runs ``bulk run samples/domains.csv --action AddLiveSnapshotNotifyConfig``
   and interrupts it after a few seconds, as Ctrl-C would;
3. runs the same command again: it resumes and finishes;
4. shows ``bulk status --json`` and the failures file;
5. rotates the callback auth keys of the first 40 domains.

Everything talks to 127.0.0.1 only, with throwaway credentials.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
AK_ID, AK_SECRET = "LTAIdemoAccessKey", "demoSecret-not-a-real-key"
ENV = {
    **os.environ,
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
}
BULK = [sys.executable, "-m", "bulk"]


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def bulk(*args: str, check: tuple[int, ...] = (0, 1)) -> int:
    print("$ bulk " + " ".join(args), flush=True)
    code = subprocess.call([*BULK, *args], env=ENV, cwd=ROOT)
    print(f"(exit code {code})", flush=True)
    if code not in check:
        raise SystemExit(f"demo: unexpected exit code {code}")
    return code


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    sim = subprocess.Popen(
        [*BULK, "sim", "serve", "--port", "0", "--latency-ms", "20", "--latency-jitter-ms", "10",
         "--error-rate", "0.08", "--seed", "7", "--missing", "*.gone.example.com",
         "--access-key-id", AK_ID, "--access-key-secret", AK_SECRET],
        env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert sim.stdout is not None
    url = sim.stdout.readline().strip().split()[-1]
    if not url.startswith("http://127.0.0.1:"):
        sim.kill()
        raise SystemExit(f"demo: simulator did not start ({url!r})")
    return sim, url


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    domains = OUT / "domains.csv"
    shutil.copy(ROOT / "samples" / "domains.csv", domains)
    ckpt = OUT / "migration.ckpt"
    sim, url = start_simulator()
    try:
        banner(f"simulator at {url}: 20 ms latency, 8 % injected faults, *.gone.example.com missing")
        run = ["run", str(domains), "--action", "AddLiveSnapshotNotifyConfig",
               "--set", "NotifyUrl=https://callback.example.com/snapshots", "--endpoint", url,
               "--checkpoint", str(ckpt), "--report", str(OUT / "report.csv"), "--log-file", str(OUT / "attempts.jsonl")]

        banner("migrate 300 domains to a new snapshot callback; interrupted after 4 s (as Ctrl-C would)")
        print("$ bulk " + " ".join(run), flush=True)
        first = subprocess.Popen([*BULK, *run], env=ENV, cwd=ROOT)
        time.sleep(4)
        first.send_signal(signal.SIGINT)
        print(f"(exit code {first.wait()}: interrupted, resumable)", flush=True)

        banner("the same command again: resumes where it stopped")
        bulk(*run)

        banner("status of the run")
        bulk("status", str(ckpt), "--json")
        failures = OUT / "migration.failures.csv"
        if failures.exists():
            banner(f"failed and invalid rows, ready to be fed back: {failures.name}")
            print(failures.read_text(), end="")

        banner("rotate the callback auth keys of 40 domains (keys file written first, mode 0600)")
        subset = OUT / "rotate.txt"
        subset.write_text("\n".join(f"live{i:03d}.example.com" for i in range(1, 41)) + "\n")
        bulk("rotate", str(subset), "--keys-out", str(OUT / "keys-demo.csv"), "--endpoint", url,
             "--checkpoint", str(OUT / "rotate.ckpt"))
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
    print("\ndemo: done. Outputs are in demo-out/.")


if __name__ == "__main__":
    main()
