"""What ``PRAGMA synchronous=FULL`` costs the checkpoint's claim commits, against NORMAL.

    python benchmarks/sync_cost.py [--rows 20000] [--repeat 3]

A claim (``Checkpoint.claim``: rows committed ``sending`` before any is sent)
is the one commit whose loss a resume cannot see: under NORMAL, in WAL mode,
a commit reaches the disk only at the next WAL checkpoint, so a power cut
(not a killed process) can take back a committed claim, and the row goes out
again as ``pending``, without the read-back that a ``sending`` row gets.
Results need no such care: a lost result leaves its row ``sending``, and it
is read back. So three settings are timed, each on a fresh checkpoint in the
working directory's file system (the disk a run's checkpoint is on):

- ``normal``: every commit NORMAL (what bulk did before);
- ``full``: every commit FULL (an fsync of the WAL per commit);
- ``full-claims``: claims FULL, results NORMAL, as ``Checkpoint.claim``
  does now (a claim's fsync also makes every earlier commit durable).

The loop is the dispatcher's, without the network: claim 32 rows (one
commit, timed alone), record each row done (results are committed by 100,
or every 0.5 s). Each setting runs ``--repeat`` times; the medians are
printed: of the claim commit's latency, its 99th percentile, and of the rows
per second the checkpoint alone can take. No goal: the figure is for the
choice (docs/record.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT))

from bulk.checkpoint import Checkpoint, RowOutcome, RowState
from bulk.dispatch import CLAIM_CHUNK
from bulk.inputs import Row

SETTINGS = ("normal", "full", "full-claims")
CLAIM = ("UPDATE rows SET state = 'sending', started = COALESCE(started, ?), reached = MAX(reached, ?),"
         " claim_mark = ? WHERE line = ?")


def one_run(work: Path, setting: str, rows: int) -> tuple[float, float, float]:
    """(median claim ms, p99 claim ms, rows/s) of one pass over ``rows`` rows."""
    path = work / f"{setting}.ckpt"
    with Checkpoint.open(path) as ckpt:
        ckpt.add_rows(Row(i, f"d{i:07d}.example.com", {}, {}, offset=0) for i in range(1, rows + 1))
        db = ckpt._db  # the one connection the run writes with: its pragma is the setting under test
        db.execute(f"PRAGMA synchronous={'FULL' if setting == 'full' else 'NORMAL'}")
        claims: list[float] = []
        started = time.perf_counter()
        for first in range(1, rows + 1, CLAIM_CHUNK):
            lines = list(range(first, min(first + CLAIM_CHUNK, rows + 1)))
            t = time.perf_counter()
            if setting == "full-claims":
                ckpt.claim([(line, False) for line in lines], mark=first)  # bulk's own: FULL for this commit alone
            else:
                with db:  # the claim's statement as Checkpoint.claim sends it, at the connection's setting
                    db.executemany(CLAIM, [(t, 0, first, line) for line in lines])
            claims.append(time.perf_counter() - t)
            for line in lines:
                ckpt.record(RowOutcome(RowState.DONE, "AddLiveSnapshotNotifyConfig", request_id="r", line=line,
                                       attempts=1, reached=True))
        ckpt.flush()
        elapsed = time.perf_counter() - started
    claims.sort()
    return statistics.median(claims) * 1e3, claims[int(len(claims) * 0.99)] * 1e3, rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, list[tuple[float, float, float]]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        for i in range(args.repeat):
            for setting in SETTINGS:  # interleaved: a burst of load from elsewhere hits every setting alike
                work = Path(tmp) / f"{setting}-{i}"
                work.mkdir()
                results[setting].append(one_run(work, setting, args.rows))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.rows} rows, claims of {CLAIM_CHUNK}, median of {args.repeat} runs")
    print(f"{'setting':12} {'claim ms':>9} {'p99 ms':>8} {'rows/s':>9}")
    for setting, runs in results.items():
        median, p99, rate = (statistics.median(r[k] for r in runs) for k in range(3))
        print(f"{setting:12} {median:9.3f} {p99:8.3f} {rate:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
