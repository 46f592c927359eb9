"""The simulator's CPU per call with many AccessKeys, each at its quota, from pre-signed requests.

    python benchmarks/sim_cost.py [--keys 100] [--qps 30] [--seconds 10] [--connections 32] [--max] [--tree DIR]
                                  [--cprofile FILE]

The simulator runs in its own process: ``bulk.sim.serve_forever`` from
the ``--tree`` checkout (this one by default), so that a change can be
measured before and after with the same load. The load generator signs every
request before the clock starts (ACS3-HMAC-SHA256, a fresh nonce each,
AddLiveSnapshotNotifyConfig on a new domain, so every call is stored) and
writes each as raw HTTP/1.1 on keep-alive connections: so little work per
call that what is measured is the simulator. Each AccessKey's calls are
spaced evenly at ``--qps``, the keys staggered, ``keys x qps`` calls/s in all
(``--max``: as fast as the connections go). The simulator's own quota is set
out of reach, so a late request from the generator is never throttled; its
quota windows still hold the same calls. Reported: the simulator's user and
system CPU (from /proc) per call answered (system time is mostly the kernel's
loopback TCP, which runs in the sender's time) and the share of one core it
used, the rate achieved, and every answer's status. Goal: every answer 200
and, paced, the rate kept (>= 0.97 of keys x qps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT))
from bulk.credentials import Credentials  # noqa: E402
from bulk.signing import sign_v3, timestamp  # noqa: E402

ACTION = "AddLiveSnapshotNotifyConfig"
_LAUNCH = """
import asyncio, cProfile, contextlib, json, sys
sys.path.insert(0, sys.argv[1])
from bulk.sim import SimConfig, serve_forever
keys = json.loads(sys.stdin.readline())  # secrets on stdin, never on a command line
profiler = cProfile.Profile() if sys.argv[2] else None
with contextlib.suppress(asyncio.CancelledError):
    if profiler: profiler.enable()
    asyncio.run(serve_forever(SimConfig(access_keys=keys, qps=1e9), host="127.0.0.1", port=0,
                              on_ready=lambda line: print(line, flush=True)))
if profiler: profiler.disable(); profiler.dump_stats(sys.argv[2])
"""


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def presign(keys: dict[str, str], per_key: int, host: str) -> list[bytes]:
    """Every request, in the order they go: key k's j-th call at j / qps + k / (keys * qps)."""
    date = timestamp()
    out = []
    for j in range(per_key):
        for k, (key_id, secret) in enumerate(keys.items()):
            params = {"DomainName": f"d{j:06d}.k{k:03d}.example.com", "NotifyUrl": "https://cb.example.com/snap"}
            signed = sign_v3(ACTION, params, Credentials(key_id, secret), host=host, nonce=uuid.uuid4().hex, date=date)
            headers = "".join(f"{name}: {value}\r\n" for name, value in signed.headers.items())
            out.append(f"{signed.method} /?{signed.query} HTTP/1.1\r\n{headers}content-length: 0\r\n\r\n".encode())
    return out


async def drive(host: str, port: int, requests: list[bytes], *, rate: float | None, connections: int) -> list[int]:
    """Send ``requests`` at ``rate`` per second (None: as fast as they go); the status of each answer."""
    statuses: list[int] = []
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=connections)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while (request := await queue.get()) is not None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            statuses.append(int(head.split(b" ", 2)[1]))
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.monotonic()
    for i, request in enumerate(requests):
        if rate is not None and (wait := started + i / rate - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await queue.put(request)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--qps", type=float, default=30.0, help="calls per second per AccessKey")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max", action="store_true", help="send as fast as the connections go")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose bulk.sim is measured")
    parser.add_argument("--cprofile", type=Path, help="run the simulator under cProfile, its stats written here")
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    keys = {f"LTAIbench{k:03d}": f"bench-secret-{k:03d}-{uuid.uuid4().hex}" for k in range(args.keys)}
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(args.tree.resolve()), str(args.cprofile or "")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(keys) + "\n")
        proc.stdin.flush()
        url = proc.stdout.readline().split()[-1]  # "bulk simulator listening on http://127.0.0.1:PORT"
        host, port = url.removeprefix("http://").split(":")
        per_key = round(args.qps * args.seconds)
        requests = presign(keys, per_key, f"{host}:{port}")
        rate = None if args.max else args.keys * args.qps
        print(f"simulator from {args.tree.resolve()}, pid {proc.pid}; {len(requests)} pre-signed calls, "
              f"{args.keys} AccessKeys, {'as fast as they go' if rate is None else f'{rate:g} calls/s'}, "
              f"{args.connections} connections", flush=True)
        before, started = cpu_seconds(proc.pid), time.monotonic()
        statuses = asyncio.run(drive(host, int(port), requests, rate=rate, connections=args.connections))
        wall, after = time.monotonic() - started, cpu_seconds(proc.pid)
        user, system = after[0] - before[0], after[1] - before[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ok, n, cpu = statuses.count(200), len(statuses), user + system
    print(f"answered {n} ({ok} x 200) in {wall:.2f} s = {n / wall:.0f} calls/s; simulator CPU {cpu:.2f} s = "
          f"{cpu / n * 1e6:.0f} us per call (user {user / n * 1e6:.0f}, system {system / n * 1e6:.0f}), "
          f"{cpu / wall:.0%} of one core")
    kept = rate is None or n / wall >= 0.97 * rate
    print(f"goal: every answer 200 ({'pass' if ok == len(requests) else 'FAIL'})"
          + ("" if rate is None else f", the rate kept ({'pass' if kept else 'FAIL'})"))
    return 0 if ok == len(requests) and kept else 1


if __name__ == "__main__":
    sys.exit(main())
