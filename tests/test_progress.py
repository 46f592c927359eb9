"""The progress display (issue 22 item 3): the bar's counts, elapsed time, last frame and ETA; the plain line."""

from __future__ import annotations

import asyncio
import io
import re
import time

from pytest import MonkeyPatch

from bulk.options import RunStats
from bulk.progress import plain_line, show_progress


def test_the_eta_counts_rows_not_calls() -> None:
    # 100 rows to send, 40 settled in 20 s with two calls each (the backup's read, then the write).
    stats = RunStats(total=110, to_send=100, settled_before=10, done=50, calls=80,
                     started=time.monotonic() - 20)
    assert stats.eta is not None and abs(stats.eta - 30) < 1  # 60 rows left at 2 rows/s, not 60 / 4 calls/s
    assert RunStats(total=5, to_send=5, started=time.monotonic() - 1).eta is None  # no row settled yet
    assert RunStats(total=5, to_send=0, settled_before=5, done=5).eta == 0


async def test_the_bars_last_frame_is_the_final_count_with_invalid_rows_apart(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal: every column shown
    stats = RunStats(total=10, to_send=7, settled_before=3, invalid=3)
    stream = io.StringIO()
    async with show_progress(stats, mode="bar", stream=stream):
        await asyncio.sleep(0)
        stats.done, stats.failed, stats.calls = 6, 1, 7  # the run ends between two frames
    last = stream.getvalue().strip().splitlines()[-1]
    assert "10/10" in last
    assert "done 6" in last and "failed 1" in last and "invalid 3" in last, last
    assert re.search(r"\b0:00:0\d\b", last), last  # elapsed time


def test_the_plain_line_is_key_value_words() -> None:
    stats = RunStats(total=10, to_send=10, done=4, invalid=2, calls=8, started=time.monotonic() - 4)
    words = dict(w.split("=", 1) for w in plain_line(stats).split()[2:])
    assert words["rows"] == "6/10" and words["invalid"] == "2" and words["failed"] == "0"
    assert {"done", "skipped", "unknown", "retrying", "calls_per_s", "elapsed_s", "eta_s"} <= words.keys()
