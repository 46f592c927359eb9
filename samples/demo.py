"""`make demo`: a real job against the built-in simulator, with faults on.

1. starts ``bulk sim serve`` on a free loopback port (20 ms latency, 8 % faults);
2. tries the change on 5 domains first: ``--canary 5``;
3. runs ``bulk run samples/domains.csv --action AddLiveSnapshotNotifyConfig``
   and interrupts it once 80 domains are done, as Ctrl-C would;
4. runs the same command again: it resumes and finishes;
5. shows ``bulk status --json`` and the failures file;
6. rotates the callback auth keys of 40 domains, 30 of which had old keys,
   then rolls the rotation back (``bulk rollback``): the old keys return,
   and ``bulk verify`` proves it;
7. rotates keys under live streams: a second simulator runs 20 streams whose
   snapshot callbacks reach ``bulk callback serve``; ``bulk rotate`` applies
   only once the receiver has loaded the new keys (``--require-receivers``),
   then ``bulk callback drain`` until the old keys may go, and not before.

Everything talks to 127.0.0.1 only, with throwaway credentials.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bulk.actions import resolve
from bulk.paths import default_checkpoint

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
# Run state (checkpoints, backups, failures files) in demo-out/state, not the user's ~/.local/state/bulk.
STATE = OUT / "state"
AK_ID, AK_SECRET = "LTAIdemoAccessKey", "demoSecret-not-a-real-key"
ENV = {
    **os.environ,
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
    "BULK_STATE_DIR": str(STATE),
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


@contextmanager
def running(*args: str, stderr: Path | None = None, lines: int = 1) -> Iterator[list[str]]:
    """A bulk server command (simulator, receiver) for the length of the block; yields the URLs it prints
    on its first ``lines`` lines (the receiver: its callback port, then its admin listener)."""
    log = stderr.open("w") if stderr else None
    proc = subprocess.Popen([*BULK, *args], env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    urls = [proc.stdout.readline().strip().split()[-1:] or [""] for _ in range(lines)]
    if not all(url.startswith("http://127.0.0.1:") for url, in urls):
        proc.kill()
        raise SystemExit(f"demo: bulk {args[0]} did not start ({urls!r})")
    try:
        yield [url for url, in urls]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not None:
            log.close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # a loopback URL this demo started
        return resp.read().decode()


def applied(sim: str, action: str) -> int:
    """How many calls of ``action`` the simulator has applied."""
    return json.loads(get(f"{sim}/_sim/stats"))["applied"].get(action, 0)


def show_counts(admin: str) -> None:
    stats = json.loads(get(f"{admin}/_bulk/stats"))
    accepted = ", ".join(f"{g} {n}" for g, n in stats["accepted"].items())
    rejected = ", ".join(f"{r} {n}" for r, n in stats["rejected"].items()) or "none"
    print(f"receiver: callbacks accepted per key generation: {accepted}; rejected: {rejected}", flush=True)


def seed_state(path: Path) -> None:
    """The simulator's state at start: live001-live030 already sign callbacks with old keys."""
    auth = {f"live{i:03d}.example.com": {"DomainName": f"live{i:03d}.example.com", "CallbackReqAuth": "yes",
                                         "CallbackAuthKey": f"OldDemoKey{i:03d}abcdefgh"} for i in range(1, 31)}
    path.write_text(json.dumps({"version": 1, "notify": {}, "callback_auth": auth}))
    path.chmod(0o600)


def rotation_under_live_streams() -> None:
    """Section 7: streams keep their key until pushed again; drain says when the old keys may go."""
    live = OUT / "live"
    keys = live / "keys"
    keys.mkdir(parents=True)
    fleet = live / "fleet.txt"
    fleet.write_text("".join(f"live{i:03d}.example.com\n" for i in range(1, 13)))
    old, new = keys / "keys-2026-10.csv", keys / "keys-2026-11.csv"
    banner("live streams: 20 streams on 12 domains, pushed again after 2 s on average (seeded)")
    with running("sim", "serve", "--port", "0", "--qps", "200", "--streams", "20", "--stream-uptime-mean", "2",
                 "--stream-interval", "0.25", "--seed", "7", "--access-key-id", AK_ID,
                 "--access-key-secret", AK_SECRET) as (sim,):
        bulk("rotate", str(fleet), "--keys-out", str(old), "--yes", "--endpoint", sim, "--qps", "200", "--quiet")
        banner("the receiver, with last month's keys: bulk callback serve --keys keys/")
        with running("callback", "serve", "--keys", str(keys), "--no-forward", "--port", "0",
                     "--admin-bind", "127.0.0.1:0", "--poll", "0.2", stderr=live / "receiver.log",
                     lines=2) as (receiver, admin):
            print(f"receiver at {receiver} (admin listener at {admin}); its log: {live / 'receiver.log'}", flush=True)
            bulk("run", str(fleet), "--action", "add-live-snapshot-notify-config", "--endpoint", sim, "--qps", "200",
                 "--set", f"NotifyUrl={receiver}/snapshots", "--quiet")
            time.sleep(2)
            show_counts(admin)

            banner("rotate: prepare the new keys; the receiver picks the file up by itself")
            tuning = ["--endpoint", sim, "--qps", "200", "--quiet"]
            bulk("rotate", str(fleet), "--keys-out", str(new), "--prepare", *tuning)
            time.sleep(0.5)
            banner("rotate: apply the prepared file once the receiver has loaded it (by its SHA-256), then verify")
            bulk("rotate", str(fleet), "--keys", str(new), "--require-receivers", admin, *tuning)
            # The rotation's checkpoint is in the state directory, never beside the keys the receiver reads.
            bulk("verify", str(default_checkpoint(new, resolve("set-snapshot-callback-auth"), state=STATE)),
                 "--qps", "200", "--quiet")
            show_counts(admin)

            banner("drain: may keys-2026-10 go? Not while a stream still signs with it")
            drain = ["callback", "drain", "--receiver", admin, "--generation", old.name, "--window", "2s",
                     "--snapshot-interval", "0.25s"]  # the streams call back every 0.25 s
            deadline = time.monotonic() + 40
            (live / "metrics-draining.txt").write_text(get(f"{admin}/metrics"))
            while bulk(*drain) != 0:
                if time.monotonic() > deadline:
                    raise SystemExit("demo: keys-2026-10 did not drain in 40 s")
                time.sleep(2)
                show_counts(admin)

            banner("drained: retire keys-2026-10 (the receiver reloads without a restart)")
            old.rename(live / old.name)
            time.sleep(1.5)
            show_counts(admin)
            text = get(f"{admin}/metrics")
            (live / "metrics.txt").write_text(text)
            (live / "drain.html").write_text(get(f"{admin}/drain.html"))  # the drain as a picture
            print(f"(the drain as a picture: {live / 'drain.html'})", flush=True)
            metrics = text.splitlines()
            print("\n".join(metrics[:6] + ["..."] + [m for m in metrics if "rejected" in m or "reloads" in m]),
                  flush=True)
            print(f"(all of /metrics: {live / 'metrics.txt'})", flush=True)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    domains = OUT / "domains.csv"
    shutil.copy(ROOT / "samples" / "domains.csv", domains)
    ckpt = OUT / "migration.ckpt"
    state = OUT / "sim-state.json"
    seed_state(state)
    with running("sim", "serve", "--port", "0", "--latency-ms", "20", "--latency-jitter-ms", "10",
                 "--error-rate", "0.08", "--seed", "7", "--missing", "*.gone.example.com", "--qps", "100",
                 "--state-file", str(state), "--access-key-id", AK_ID, "--access-key-secret", AK_SECRET) as (url,):
        banner(f"simulator at {url}: 20 ms latency, 8 % injected faults, *.gone.example.com missing")
        run = ["run", str(domains), "--action", "AddLiveSnapshotNotifyConfig",
               "--set", "NotifyUrl=https://callback.example.com/snapshots", "--endpoint", url, "--qps", "100",
               "--checkpoint", str(ckpt), "--report", str(OUT / "report.csv"),
               "--log-file", str(OUT / "attempts.jsonl")]

        banner("a canary first: 5 domains, each read back")
        bulk(*run, "--canary", "5", "--quiet", check=(0,))

        banner("migrate the other domains; interrupted once 80 are done (as Ctrl-C would)")
        print("$ bulk " + " ".join(run), flush=True)
        first = subprocess.Popen([*BULK, *run], env=ENV, cwd=ROOT)
        deadline = time.monotonic() + 30
        while applied(url, "AddLiveSnapshotNotifyConfig") < 80 and time.monotonic() < deadline:
            time.sleep(0.1)
        first.send_signal(signal.SIGINT)
        print(f"(exit code {first.wait()}: interrupted, resumable)", flush=True)

        banner("the same command again: resumes where it stopped")
        bulk(*run)

        banner("status of the run")
        bulk("status", str(ckpt), "--json")
        banner("the run as one self-contained page: timeline charts, summary, failed rows (docs/report.md)")
        bulk("report", str(ckpt), "--html", str(OUT / "report.html"), check=(0,))
        failures = OUT / "migration.failures.csv"
        if failures.exists():
            banner(f"failed and invalid rows, ready to be fed back: {failures.name}")
            print(failures.read_text(), end="")

        banner("rotate the callback auth keys of 40 domains (keys file written first, mode 0600)")
        subset = OUT / "rotate.txt"
        subset.write_text("\n".join(f"live{i:03d}.example.com" for i in range(1, 41)) + "\n")
        bulk("rotate", str(subset), "--keys-out", str(OUT / "keys-demo.csv"), "--yes", "--endpoint", url,
             "--qps", "100", "--checkpoint", str(STATE / "rotate.ckpt"))

        banner("the rotation went wrong: roll it back (each domain's prior state was kept, mode 0600)")
        bulk("rollback", str(STATE / "rotate.ckpt"), "--qps", "100",
             "--report", str(OUT / "rollback.csv"), check=(0,))
        with (OUT / "rollback.csv").open() as report:
            sent = Counter(row["action"] for row in csv.DictReader(report))
        print("rollback: " + ", ".join(f"{action} {n}" for action, n in sent.most_common())
              + " (the old keys back where there were some, none where there were none)", flush=True)
        # Both go to the endpoint the rotation recorded: no --endpoint needed.
        bulk("verify", str(STATE / "rotate.rollback.ckpt"), "--qps", "100", "--quiet", check=(0,))
    rotation_under_live_streams()
    print("\ndemo: done. Outputs are in demo-out/.")


if __name__ == "__main__":
    main()
