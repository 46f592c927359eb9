"""Accepted callbacks per key generation over time, in bounded memory, and the drain page drawn from them.

    series = AcceptSeries(hours=48)                   # per-minute buckets of the last 48 hours
    series.add("keys-2026-11", now=time.time())       # each accepted callback: O(1)
    status, page = await drain_page(series.snapshot(now=time.time()))   # GET /drain.html on the admin listener

Why: a drain is a picture before it is a verdict: the old generation's
callbacks fall away as streams restart on the new keys, and the operator
sees at a glance whether they are still falling or have stopped at a few
domains. The receiver keeps one count per generation per minute for the
last ``hours`` (at most ``hours * 60`` buckets a generation, whatever the
callback rate), counting from when it started: like the other counters, a
restart begins again. The page is drawn by ``bulk.charts`` in a worker
thread (a chart takes tens of milliseconds of CPU the callbacks must not
wait for); without matplotlib it says which extra to install.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

from ..charts import MissingExtra, draw, times

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["AcceptSeries", "Snapshot", "drain_page"]

_MINUTE = 60


class AcceptSeries:
    """Accepted callbacks per generation per minute, for the last ``hours``."""

    __slots__ = ("_buckets", "_kept")

    def __init__(self, *, hours: float = 48) -> None:
        self._kept = max(1, int(hours * 60))
        #: generation -> (minute start, count), oldest first
        self._buckets: dict[str, deque[list[int]]] = {}

    def add(self, generation: str, *, now: float) -> None:
        """Count one callback that ``generation``'s key signed."""
        minute = int(now) // _MINUTE * _MINUTE
        buckets = self._buckets.get(generation)
        if buckets is None:
            buckets = self._buckets[generation] = deque(maxlen=self._kept)
        if buckets and buckets[-1][0] == minute:
            buckets[-1][1] += 1
        else:
            buckets.append([minute, 1])

    def snapshot(self, *, now: float) -> Snapshot:
        """A copy to draw from elsewhere (another thread): the kept hours up to ``now``."""
        oldest = (int(now) // _MINUTE - self._kept + 1) * _MINUTE
        return Snapshot(now, {g: [(m, n) for m, n in b if m >= oldest] for g, b in sorted(self._buckets.items())})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Accepted callbacks per generation: (minute start, count), oldest first, for the kept hours up to ``now``."""

    now: float
    generations: dict[str, list[tuple[int, int]]]


async def drain_page(series: Snapshot) -> tuple[int, str]:
    """The drain page (status, HTML): a chart of accepted callbacks per generation per minute, and the totals."""
    try:
        chart = await asyncio.to_thread(_chart, series) if any(series.generations.values()) else \
            '<p class="note">No callback accepted yet.</p>'
    except MissingExtra as exc:
        return 501, _page(f'<p class="note">{escape(str(exc))}</p>', series)
    return 200, _page(chart, series)


def _chart(series: Snapshot) -> str:
    start = min(b[0][0] for b in series.generations.values() if b)
    # Up to the minute under way (still counting), each value held until the next minute.
    minutes = list(range(start, int(series.now) // _MINUTE * _MINUTE + _MINUTE, _MINUTE))

    def paint(axes: list[Axes]) -> None:
        [axis] = axes
        for generation, buckets in series.generations.items():
            counts = [dict(buckets).get(m, 0) for m in minutes]
            axis.step(times([*minutes, minutes[-1] + _MINUTE]), [*counts, counts[-1]], where="post",
                      label=generation)
        axis.set_title("Accepted callbacks per minute, by key generation", loc="left")
        axis.set_xlabel("time (UTC)")
        axis.margins(y=0.2)  # room for the legend above the lines
        axis.set_ylim(bottom=0)
        axis.legend(loc="upper left", fontsize=8, ncols=4)

    return f'<figure class="drain">{draw(paint, rows=1, height=3.6)}</figure>'


def _page(body: str, series: Snapshot) -> str:
    rows = "".join(
        f"<tr><td>{escape(g)}</td><td class=n>{sum(n for _, n in b)}</td><td>{_minute(b[-1][0]) if b else ''}</td>"
        f"</tr>" for g, b in series.generations.items())
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>bulk receiver: drain</title>'
            "<style>body{font:14px system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}td.n{text-align:right}"
            "svg{max-width:100%;height:auto}.note{color:#666}</style></head><body>"
            f"<h1>Drain: accepted callbacks by key generation</h1><p class=note>as of {_minute(series.now)}, "
            "since this receiver started (per minute, bounded history)</p>"
            f"{body}<table><tr><th>generation</th><th>accepted</th><th>last minute with one</th></tr>{rows}"
            "</table></body></html>\n")


def _minute(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
