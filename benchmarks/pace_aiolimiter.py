"""aiolimiter alone beside bulk's pacer on aiolimiter: same client, same endpoint, measured at the simulator.

    python benchmarks/pace_aiolimiter.py [--calls 450] [--rounds 2]

Each side sends CALLS Adds of new domains through bulk's LiveClient to a
fresh simulator process (quota 30 per AccessKey and operation, 40 ms
latency), one call task started per admission:

- aiolimiter alone: ``AsyncLimiter(1, 1/30)``, the slot taken before the task starts;
- bulk: ``Pacer(30)``: ``admit()`` before the task starts, ``at_wire`` awaited by
  the client right before the request is written.

The simulator's stamps give the pace ((arrivals - 1) / span) and the most
arrivals in any one-second window. Rounds alternate which side goes first.
Goal for bulk's side: pace >= 0.985 x 30 and no window above 30, every round.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from aiolimiter import AsyncLimiter
from common import AK_ID, AK_SECRET, Simulator, machine, shown

from bulk.client import LiveClient
from bulk.credentials import Credentials, StaticCredentials
from bulk.pacing import Pacer

QPS = 30
GOAL = 0.985
ACTION = "AddLiveSnapshotNotifyConfig"


async def send(url: str, calls: int, side: str, prefix: str) -> None:
    credentials = StaticCredentials(Credentials(AK_ID, AK_SECRET))
    async with LiveClient(credentials=credentials, endpoint=url) as client:
        admit: Callable[[], Awaitable[None]]
        at_wire: Callable[[], Awaitable[None]] | None
        if side == "aiolimiter":
            admit, at_wire = AsyncLimiter(1, 1 / QPS).acquire, None
        else:
            pacer = Pacer(QPS)
            admit, at_wire = pacer.admit, pacer.at_wire
        tasks = []
        for i in range(calls):
            await admit()
            params = {"DomainName": f"{prefix}{i:06d}.example.com", "NotifyUrl": "https://cb.example.com/x"}
            tasks.append(asyncio.create_task(client.call(ACTION, params, at_wire=at_wire)))
        outcomes = await asyncio.gather(*tasks)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{side}: {len(failed)} calls failed, e.g. {failed[0]}")


def measure(side: str, calls: int, prefix: str) -> dict:
    with Simulator(qps=QPS, latency_ms=40) as sim:
        asyncio.run(send(sim.url, calls, side, prefix))
        stats = sim.stats()
    seen = stats["pace"][f"{AK_ID}/{ACTION}"]
    return {"side": side, "calls": seen["calls"], "pace": seen["per_second"], "max_window": seen["max_window"],
            "throttled": stats["calls"][ACTION].get("Throttling.User", 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=450)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    print(f"$ {shown(Simulator(qps=QPS, latency_ms=40).command)}   (a fresh one per side and round)", flush=True)
    results = []
    for round_ in range(args.rounds):
        sides = ("aiolimiter", "bulk") if round_ % 2 == 0 else ("bulk", "aiolimiter")
        results += [(round_ + 1, measure(side, args.calls, f"r{round_}{side[0]}")) for side in sides]
    print(f"\n{'round':>5} {'side':>10} {'calls':>5} {'pace/s':>7} {'/quota':>7} {'max 1s':>6} {'throttled':>9}  goal")
    failed = False
    for round_, r in results:
        verdict = "(reference)"
        if r["side"] == "bulk":
            ok = r["pace"] >= GOAL * QPS and r["max_window"] <= QPS and not r["throttled"]
            failed |= not ok
            verdict = "PASS" if ok else "FAIL"
        print(f"{round_:>5} {r['side']:>10} {r['calls']:>5} {r['pace']:>7.2f} {r['pace'] / QPS:>7.3f} "
              f"{r['max_window']:>6} {r['throttled']:>9}  {verdict}")
    print(f"goal (bulk): pace >= {GOAL * QPS:.2f}/s ({GOAL} x {QPS}) and no 1-s window above {QPS}, none throttled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
